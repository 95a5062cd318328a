"""Take history in storage: a replace keeps the take it replaces, the history is bounded,
a dropped take's blob is collected only once nothing refers to it, and gc/check know takes."""

from __future__ import annotations

import pytest
from support import Api, sine_wav

from audiocache.storage import gc
from audiocache.storage.takes_repo import TakeRepository


async def _replace(api: Api, agent: str, entry: str, freq: float) -> None:
    r = await api.client.patch(
        f"/v1/agents/{agent}/audio-cache/{entry}/file",
        content=sine_wav(freq=freq),
        headers={**api.headers, "Content-Type": "audio/wav"},
    )
    assert r.status_code == 204, r.text


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    return settings.model_copy(update={"take_history_limit": 2})


async def test_replace_keeps_the_replaced_take_bounded(api: Api) -> None:
    services = api.services
    assert services.entries.history_limit == 2
    agent = await api.create_agent("takes")
    entry = await api.seed_entry(agent, "Hello there")
    internal = (await services.agents.owned(api.account, agent)).id
    first = (await services.curation.get_entry(internal, int(entry))).blob_sha256
    for freq in (300.0, 400.0, 500.0):
        await _replace(api, agent, entry, freq)
    found = await TakeRepository(services.db).of_entry(internal, int(entry))
    assert [t.reason for t in found] == ["replace", "replace"]  # bounded: the oldest dropped
    assert first not in {t.blob_sha256 for t in found}
    assert await services.blobs.stat(first) is None  # the dropped take's blob was collected
    for take in found:
        assert await services.blobs.stat(take.blob_sha256) is not None
    report = await gc.check(services.db, services.blobs)
    assert report.healthy, report
    collected = await gc.collect(services.db, services.blobs, grace_seconds=0)
    assert collected.healthy
    for take in found:  # gc never takes a blob a take still refers to
        assert await services.blobs.stat(take.blob_sha256) is not None


async def test_deleting_the_entry_deletes_its_takes_and_their_blobs(api: Api) -> None:
    services = api.services
    agent = await api.create_agent("takes-del")
    entry = await api.seed_entry(agent, "Goodbye now")
    internal = (await services.agents.owned(api.account, agent)).id
    await _replace(api, agent, entry, 320.0)
    found = await TakeRepository(services.db).of_entry(internal, int(entry))
    assert len(found) == 1
    r = await api.client.delete(f"/v1/agents/{agent}/audio-cache/{entry}", headers=api.headers)
    assert r.status_code == 200
    assert await TakeRepository(services.db).of_entry(internal, int(entry)) == []
    assert await services.blobs.stat(found[0].blob_sha256) is None
    assert (await gc.check(services.db, services.blobs)).healthy
