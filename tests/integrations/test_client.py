"""The plugins' httpx helper against the real routes (ASGI client, one backend)."""

from __future__ import annotations

import pytest
from support import Api, sine_wav

from audiocache.client import Unauthorized
from audiocache.integrations.client import AudioCacheClient, Phrase

AGENT = "bot"


@pytest.fixture
def backend() -> str:
    return "sqlite+fs"


async def test_lookup_store_and_batch_round_trip(api: Api) -> None:
    await api.create_agent(AGENT)
    cache = AudioCacheClient(api.client, AGENT, api_key=api.key, lookup_budget_s=5.0)
    hello, bye = Phrase("Hello from the plugin"), Phrase("Goodbye from the plugin")
    assert await cache.lookup(hello) is None
    assert await cache.lookup_batch([hello, bye]) == [False, False]
    wav = sine_wav(0.3)
    first = await cache.store(hello, wav)
    assert first.stored and first.created and first.entry is not None
    again = await cache.store(hello, wav)
    assert again.stored and not again.created
    audio = await cache.lookup(hello)
    assert audio is not None and audio[:4] == b"RIFF"
    assert await cache.lookup_batch([hello, bye]) == [True, False]


async def test_errors_other_than_not_cached_raise(api: Api) -> None:
    await api.create_agent(AGENT)
    cache = AudioCacheClient(api.client, AGENT, api_key="wrong-key", lookup_budget_s=5.0)
    with pytest.raises(Unauthorized) as denied:
        await cache.lookup(Phrase("Hello"))
    assert denied.value.status == 401 and denied.value.error_code == "UNAUTHORIZED"
