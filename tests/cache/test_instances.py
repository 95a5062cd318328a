"""Several instances on one database and one blob store behave as one cache.

Each instance is a whole service stack of its own (its pools, its in-process single
flight, its hit counter, its engine) over the same settings, as two `audiocache serve`
processes would be; on the postgres+s3 backend they share a real server and bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from support import ALL_GRANTS, Api

from audiocache.app import create_app
from audiocache.config import Settings
from audiocache.services import Services, build_services
from audiocache.tts.fake import FakeEngine


class Instance:
    def __init__(
        self, services: Services, engine: FakeEngine, client: httpx.AsyncClient, app: Any = None
    ):
        self.services = services
        self.engine = engine
        self.client = client
        self.app = app


@pytest.fixture
async def instances(settings: Settings) -> AsyncIterator[list[Instance]]:
    # The key cache at its default: a revoked key must be refused by the other instance too.
    default_key_cache = Settings.model_fields["key_cache_seconds"].default
    settings = settings.model_copy(
        update={
            "lease_seconds": 1.0,
            "lease_poll_seconds": 0.02,
            "key_cache_seconds": default_key_cache,
        }
    )
    running: list[Instance] = []
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(2):
            engine = FakeEngine(delay_seconds=0.3)
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

    original = (await get()).content
    assert await memo_answers(get()) == 1  # the second one came from the memo
    assert (await get(headers=reader)).status_code == 200
    assert await memo_answers(get(headers=reader)) == 1
    assert await memo_answers(b.speak("bot", "Hello there")) == 0
    assert await memo_answers(b.speak("bot", "Hello there")) == 1

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
