"""Several instances on one database and one blob store behave as one cache.

Each instance is a whole service stack of its own (its pools, its in-process single
flight, its hit counter, its engine) over the same settings, as two `audiocache serve`
processes would be; on the postgres+s3 backend they share a real server and bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from support import ALL_GRANTS, Api, assert_envelope

from audiocache.app import create_app
from audiocache.audio.wav import build_wav
from audiocache.cache.evictor import LEASE_AGENT, LEASE_KEY
from audiocache.config import Settings
from audiocache.models import Agent
from audiocache.services import Services, build_services
from audiocache.tts.base import SynthesisRequest
from audiocache.tts.fake import FakeEngine, StreamingFakeEngine, tone_for


class Instance:
    def __init__(
        self, services: Services, engine: FakeEngine, client: httpx.AsyncClient, app: Any = None
    ):
        self.services = services
        self.engine = engine
        self.client = client
        self.app = app


@pytest.fixture
def instance_settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """What both instances run with; a test changes some through indirect parametrization."""
    # The key cache at its default: a revoked key must be refused by the other instance too.
    default_key_cache = Settings.model_fields["key_cache_seconds"].default
    return settings.model_copy(
        update={
            "lease_seconds": 1.0,
            "lease_poll_seconds": 0.02,
            "key_cache_seconds": default_key_cache,
            **getattr(request, "param", {}),
        }
    )


@pytest.fixture
def make_engine(request: pytest.FixtureRequest) -> Callable[[], FakeEngine]:
    """Each instance's engine; ``streaming`` (indirect parametrization) for one that streams."""
    if getattr(request, "param", None) == "streaming":
        return lambda: StreamingFakeEngine(chunks=5, chunk_delay=0.1)
    return lambda: FakeEngine(delay_seconds=0.3)


@pytest.fixture
async def instances(
    instance_settings: Settings, make_engine: Callable[[], FakeEngine]
) -> AsyncIterator[list[Instance]]:
    settings = instance_settings
    running: list[Instance] = []
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(2):
            engine = make_engine()
            services = build_services(settings, engines=[engine])
            app = create_app(settings, services)
            manager = await stack.enter_async_context(LifespanManager(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=manager.app), base_url="http://test"
                )
            )
            running.append(Instance(services, engine, client, app))
        yield running


async def _api(instance: Instance, key: str) -> Api:
    return Api(client=instance.client, key=key, account="acme", services=instance.services)


@pytest.fixture
async def apis(instances: list[Instance]) -> list[Api]:
    _record, key = await instances[0].services.keys.create("acme", set(ALL_GRANTS))
    return [await _api(i, key) for i in instances]


async def test_fifty_requests_over_two_instances_synthesize_once(
    instances: list[Instance], apis: list[Api]
) -> None:
    await apis[0].create_agent("bot", voice="fake:alpha", admission="default")
    responses = await asyncio.gather(
        *(apis[i % 2].speak("bot", "Thanks for calling, how can I help?") for i in range(50))
    )
    assert [r.status_code for r in responses] == [200] * 50
    assert sum(len(i.engine.calls) for i in instances) == 1
    assert len({r.content for r in responses}) == 1
    ids = {r.headers.get("x-audio-cache-entry-id") for r in responses}
    assert len(ids) == 1 and None not in ids
    assert (await apis[1].entries("bot"))["totalCount"] == 1
    waited = [i.services.cache.leases.waits for i in instances]
    assert sorted(waited) == [0, 1]  # the other instance's leader waited, once


async def test_a_holder_that_died_is_taken_over_after_its_lease_expires(
    instances: list[Instance], apis: list[Api]
) -> None:
    await apis[0].create_agent("bot", voice="fake:alpha", admission="always")
    agent = await instances[0].services.agents.owned("acme", "bot")
    prepared = await instances[0].services.cache.prepare(agent, "Please hold")
    # An instance that took the lease and was killed -9: it never renews nor releases.
    repo = instances[0].services.cache.leases.repo
    assert await repo.try_acquire(agent.id, prepared.key, "dead-instance", 1.0)
    started = asyncio.get_running_loop().time()
    r = await apis[1].speak("bot", "Please hold")
    took = asyncio.get_running_loop().time() - started
    assert r.status_code == 200 and r.headers["x-audio-cache"] == "miss"
    assert 0.9 <= took < 5, took  # waited for the lease to expire, no longer
    assert len(instances[1].engine.calls) == 1 and not instances[0].engine.calls
    assert (await apis[0].entries("bot"))["totalCount"] == 1


async def test_an_instance_that_stores_nothing_lets_the_waiter_synthesize(
    instances: list[Instance], apis: list[Api]
) -> None:
    await apis[0].create_agent("bot", voice="fake:alpha", admission="never")
    responses = await asyncio.gather(*(apis[i % 2].speak("bot", "Goodbye") for i in range(4)))
    assert all(r.status_code == 200 for r in responses)
    # Nothing to share through storage: each instance synthesizes once, one after the other.
    assert [len(i.engine.calls) for i in instances] == [1, 1]


async def test_hit_counts_from_all_instances_add_up(
    instances: list[Instance], apis: list[Api]
) -> None:
    await apis[0].create_agent("bot", voice="fake:alpha", admission="always")
    entry_id = await apis[0].seed_entry("bot", "Let me transfer you")
    await asyncio.gather(*(apis[i % 2].speak("bot", "Let me transfer you") for i in range(40)))
    for instance in instances:
        await instance.services.hits.flush()
    listed = (await apis[1].entries("bot"))["entries"]
    assert [(e["id"], e["hitCount"]) for e in listed] == [(entry_id, 40)]


async def test_changes_on_one_instance_are_seen_by_the_other_at_once(
    instances: list[Instance], apis: list[Api]
) -> None:
    await apis[0].create_agent("bot", voice="fake:alpha", admission="always")
    entry_id = await apis[0].seed_entry("bot", "Hello there")
    url = f"/v1/agents/bot/audio-cache/{entry_id}/file"
    assert (await apis[1].client.get(url, headers=apis[1].headers)).status_code == 200
    # a deleted entry
    r = await apis[0].client.delete(
        f"/v1/agents/bot/audio-cache/{entry_id}", headers=apis[0].headers
    )
    assert r.status_code in (200, 204)
    assert (await apis[1].client.get(url, headers=apis[1].headers)).status_code == 404
    # a revoked key
    record, key = await instances[0].services.keys.create("acme", {"audio_cache:read"})
    listing = "/v1/agents/bot/audio-cache"
    assert (await apis[1].client.get(listing, headers={"X-API-KEY": key})).status_code == 200
    await instances[0].services.keys.revoke(record.key_id)
    assert (await apis[1].client.get(listing, headers={"X-API-KEY": key})).status_code == 401
    # a deleted agent
    r = await apis[0].client.delete("/v1/agents/bot", headers=apis[0].headers)
    assert r.status_code in (200, 204)
    assert (await apis[1].client.get(listing, headers=apis[1].headers)).status_code == 404


class Clock:
    """The evictors' clock, moved by the test (TTLs and the evictor lease read it)."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=2)

    def __call__(self) -> datetime:
        return self.at


async def _expired_entries(instances: list[Instance], apis: list[Api], n: int) -> Clock:
    """``n`` entries of agent "bot" that have all outlived its TTL on the returned clock,
    which both instances' evictors now read."""
    await apis[0].create_agent("bot", voice="fake:alpha", admission="always")
    for i in range(n):
        await apis[i % 2].seed_entry("bot", f"Phrase number {i}")
    r = await apis[0].client.put(
        "/v1/agents/bot/cache-policy",
        json={"admission": "always", "personalData": "cache", "ttlSeconds": 3600},
        headers=apis[0].headers,
    )
    assert r.status_code == 200, r.text
    clock = Clock()
    for instance in instances:
        instance.services.evictor.now = clock
    return clock


async def test_one_evictor_at_a_time_across_instances(
    instances: list[Instance], apis: list[Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    await _expired_entries(instances, apis, 6)
    first, second = (i.services.evictor for i in instances)
    # Hold the first run inside its work, lease taken, before it has evicted anything.
    inside, go = asyncio.Event(), asyncio.Event()
    agents = first.repo.agents

    async def paused() -> list[Agent]:
        inside.set()
        await go.wait()
        return await agents()

    monkeypatch.setattr(first.repo, "agents", paused)
    running = asyncio.create_task(first.run_once())
    await inside.wait()
    meanwhile = await second.run_once()  # would evict all six without the lease
    assert meanwhile.skipped and meanwhile.evicted_entries == 0
    assert (await apis[1].entries("bot"))["totalCount"] == 6
    go.set()
    done = await running
    assert not done.skipped and done.evicted_entries == 6
    # Released at the end: the other instance's next run is a run (with nothing left).
    after = await second.run_once()
    assert not after.skipped and after.evicted_entries == 0
    assert (first.counters.skipped_runs, second.counters.skipped_runs) == (0, 1)


async def test_the_lease_of_an_evictor_killed_mid_run_expires(
    instances: list[Instance], apis: list[Api]
) -> None:
    clock = await _expired_entries(instances, apis, 3)
    evictor = instances[1].services.evictor
    assert evictor.lease is not None
    # An instance killed -9 during its run: it took the lease and never renews nor releases.
    assert await evictor.lease.try_acquire(
        LEASE_AGENT, LEASE_KEY, "dead-instance", evictor.lease_seconds, now=clock()
    )
    assert (await evictor.run_once()).skipped
    clock.at += timedelta(seconds=evictor.lease_seconds * 0.9)
    assert (await evictor.run_once()).skipped
    clock.at += timedelta(seconds=evictor.lease_seconds * 0.2)
    report = await evictor.run_once()
    assert not report.skipped and report.evicted_entries == 3
    assert (await apis[0].entries("bot"))["totalCount"] == 0


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("instance_settings", [{"max_lease_waiters": 1}], indirect=True)
async def test_waiters_past_the_cap_are_refused_with_retry_after(
    instances: list[Instance], apis: list[Api]
) -> None:
    await apis[0].create_agent("bot", voice="fake:alpha", admission="always")
    agent = await instances[0].services.agents.owned("acme", "bot")
    # Another instance is synthesizing both phrases (slowly: its leases last 30 s).
    repo = instances[0].services.cache.leases.repo
    keys = [(await instances[0].services.cache.prepare(agent, t)).key for t in ("One", "Two")]
    for key in keys:
        assert await repo.try_acquire(agent.id, key, "other-instance", 30.0)
    leases = instances[1].services.cache.leases
    assert leases.timings.max_waiters == 1
    first = asyncio.create_task(apis[1].speak("bot", "One"))
    await _until(lambda: leases.waiting == 1)
    refused = await apis[1].speak("bot", "Two")
    assert_envelope(refused, 503, "LEASE_WAITERS_BUSY")
    assert refused.headers["retry-after"] == "1"
    # A request for the phrase already waited for shares that wait: it is not refused.
    joined = asyncio.create_task(apis[1].speak("bot", "One"))
    await _until(lambda: instances[1].services.cache._flights.callers((agent.id, keys[0])) == 2)
    await repo.release(agent.id, keys[0], "other-instance")  # it gave up: the waiter takes over
    responses = await asyncio.gather(first, joined)
    assert [r.status_code for r in responses] == [200, 200]
    assert len(instances[1].engine.calls) == 1 and leases.refused == 1 and leases.waiting == 0


async def test_the_hot_path_memo_never_outlives_a_change_made_on_the_other_instance(
    instances: list[Instance], apis: list[Api]
) -> None:
    from audiocache.api.hot_path import HotPath

    def hot_path(instance: Instance) -> HotPath:
        layer = instance.app.middleware_stack
        while not isinstance(layer, HotPath):
            layer = layer.app
        return layer

    for instance in instances:
        await instance.services.hits.stop()  # their flushes would empty the memo anyway
    await apis[0].create_agent("bot", voice="fake:alpha", admission="always")
    entry_id = await apis[0].seed_entry("bot", "Hello there")
    other_id = await apis[0].seed_entry("bot", "Goodbye now")
    url = f"/v1/agents/bot/audio-cache/{entry_id}/file"
    b = apis[1]
    reader_record, reader_key = await instances[0].services.keys.create(
        "acme", {"audio_cache:read"}
    )
    reader = {"X-API-KEY": reader_key}

    async def get(path: str = url, headers: dict[str, str] = b.headers) -> httpx.Response:
        return await b.client.get(path, headers=headers)

    async def memo_answers(request: object) -> int:
        before = hot_path(instances[1]).from_memo
        await request  # type: ignore[misc]
        return hot_path(instances[1]).from_memo - before

    async def memo_answers_one_of(make: Callable[[], Awaitable[object]], tries: int = 3) -> bool:
        """The memo answers one of a few repeats. On PostgreSQL the generation is the WAL
        position, which other work on the cluster (autovacuum after an earlier test) moves
        too: the memo then starts over, and the next repeat is answered from it."""
        for _ in range(tries):
            if await memo_answers(make()) == 1:
                return True
        return False

    original = (await get()).content
    assert await memo_answers_one_of(get)  # a repeat comes from the memo
    assert (await get(headers=reader)).status_code == 200
    assert await memo_answers_one_of(lambda: get(headers=reader))
    assert await memo_answers(b.speak("bot", "Hello there")) == 0
    assert await memo_answers_one_of(lambda: b.speak("bot", "Hello there"))

    # a replaced take: the new audio at once
    new_wav = (await apis[0].client.get(
        f"/v1/agents/bot/audio-cache/{other_id}/file", headers=apis[0].headers
    )).content  # fmt: skip
    r = await apis[0].client.patch(
        url, content=new_wav, headers={**apis[0].headers, "Content-Type": "audio/wav"}
    )
    assert r.status_code == 204
    assert (await get()).content == new_wav != original
    assert (await b.speak("bot", "Hello there")).content == new_wav
    # a revoked key: refused at once, though the memo knew it
    await instances[0].services.keys.revoke(reader_record.key_id)
    assert (await get(headers=reader)).status_code == 401
    # a deleted entry: 404 and no more hits
    r = await apis[0].client.delete(
        f"/v1/agents/bot/audio-cache/{entry_id}", headers=apis[0].headers
    )
    assert r.status_code in (200, 204)
    assert (await get()).status_code == 404
    assert (await b.speak("bot", "Hello there")).headers["x-audio-cache"] == "miss"
    # a deleted agent
    r = await apis[0].client.delete("/v1/agents/bot", headers=apis[0].headers)
    assert r.status_code in (200, 204)
    assert (await get(f"/v1/agents/bot/audio-cache/{other_id}/file")).status_code == 404
    assert (await b.speak("bot", "Goodbye now")).status_code == 404


@pytest.mark.parametrize("make_engine", ["streaming"], indirect=True)
async def test_a_streamed_miss_that_loses_the_lease_race_is_served_the_stored_entry(
    instances: list[Instance], apis: list[Api]
) -> None:
    await apis[0].create_agent("bot", voice="fake:alpha", admission="always")
    engines = [i.engine for i in instances]
    assert all(isinstance(e, StreamingFakeEngine) for e in engines)
    streamed = asyncio.create_task(apis[0].speak("bot", "Streamed once", stream=True))
    await _until(lambda: engines[0].streams == 1)  # lease taken, first chunks under way
    waited = await apis[1].speak("bot", "Streamed once", stream=True)
    first = await streamed
    assert first.status_code == 200 and first.headers["x-audio-cache"] == "miss"
    assert waited.status_code == 200 and waited.headers["x-audio-cache"] == "hit", waited.text
    # One synthesis in all: the loser streamed nothing of its own and got the stored clip.
    assert [len(e.calls) for e in engines] == [1, 0]
    assert instances[1].services.cache.leases.waits == 1
    request = SynthesisRequest("Streamed once", "alpha", "en-US", {})
    assert waited.content == build_wav(tone_for(request, 16000), sample_rate=16000)
    assert waited.headers["x-audio-cache-entry-id"] == str(
        (await apis[0].entries("bot"))["entries"][0]["id"]
    )
