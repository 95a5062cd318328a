"""The in-process lookup answers what the runtime path's hit answers, and sees deletes."""

from __future__ import annotations

from support import Api

from audiocache.embedded import EmbeddedCache
from audiocache.services import Services


async def test_lookup_answers_the_hit_counts_it_and_sees_a_delete(
    api: Api, services: Services
) -> None:
    await api.create_agent("bot", voice="fake:alpha", admission="always")
    entry_id = await api.seed_entry("bot", "Thanks for calling.")
    spoken = await api.speak("bot", "Thanks for calling.")
    assert spoken.headers["x-audio-cache"] == "hit"
    cache = EmbeddedCache(services.settings, services)
    await services.hits.stop()  # counts stay pending (and the memo is not emptied by them)
    pending = services.hits.pending(int(entry_id))

    assert await cache.lookup("acme", "bot", "Thanks for calling.") == spoken.content
    cleared = cache.memo.cleared
    assert await cache.lookup("acme", "bot", "Thanks for calling.") == spoken.content
    assert len(cache.memo) == 1 and cache.memo.cleared == cleared  # the memo answered
    assert services.hits.pending(int(entry_id)) - pending == 2
    assert await cache.lookup("acme", "bot", "Never said before.") is None
    assert await cache.lookup("acme", "bot", "Thanks for calling.", voice="fake:beta") is None

    r = await api.client.delete(f"/v1/agents/bot/audio-cache/{entry_id}", headers=api.headers)
    assert r.status_code in (200, 204)
    assert await cache.lookup("acme", "bot", "Thanks for calling.") is None
