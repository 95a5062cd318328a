"""Eviction over the real stack, on every backend: the evictor with a controlled clock picks
exactly the policy's entries, spares pinned and uploaded ones, and collects their audio."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from audio_cache_helpers import assert_json, replace_file
from support import Api, assert_envelope, sine_wav

from audiocache.models import Limits, Ttl
from audiocache.services import installation_limits
from audiocache.storage.tables import entries

T0 = datetime(2030, 1, 1)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def seed(api: Api, agent: str, n: int) -> list[int]:
    return [int(await api.seed_entry(agent, f"Phrase number {i} " + "x" * i)) for i in range(n)]


async def set_stats(
    api: Api, entry_id: int, *, cached: float = 0, hit: float | None = None, hits: int = 0
) -> None:
    """Give an entry a history (when cached, last hit, how often) without waiting for it."""
    async with api.services.db.write() as conn:
        await conn.execute(
            entries.update()
            .where(entries.c.id == entry_id)
            .values(
                cached_at=at(cached),
                last_hit_at=None if hit is None else at(hit),
                hit_count=hits,
            )
        )


async def put_policy(api: Api, agent: str, **fields: Any) -> Any:
    r = await api.client.put(
        f"/v1/agents/{agent}/cache-policy",
        json={"admission": "always", **fields},
        headers=api.headers,
    )
    return assert_json(r)


async def policy(api: Api, agent: str) -> Any:
    r = await api.client.get(f"/v1/agents/{agent}/cache-policy", headers=api.headers)
    return assert_json(r)


async def remaining(api: Api, agent: str) -> list[int]:
    listed = await api.entries(agent, sort="id:asc", limit=200)
    return [int(e["id"]) for e in listed["entries"]]


async def evict(api: Api, now: float) -> int:
    evictor = api.services.evictor
    evictor.now = lambda: at(now)
    return (await evictor.run_once()).evicted_entries


async def test_lru_evicts_the_least_recently_used_and_counts_it(api: Api, agent: str) -> None:
    ids = await seed(api, agent, 5)
    for entry_id, (cached, hit) in zip(
        ids, [(0, 50), (10, None), (0, 5), (0, 40), (0, 60)], strict=True
    ):
        await set_stats(api, entry_id, cached=cached, hit=hit)
    await put_policy(api, agent, maxEntries=2, eviction="lru")
    assert await evict(api, now=70) == 3
    assert await remaining(api, agent) == [ids[0], ids[4]]
    shown = await policy(api, agent)
    assert shown["evictedTotal"] == 3
    assert shown["usage"]["entries"] == 2
    assert await evict(api, now=71) == 0  # within its limit now: nothing more goes


async def test_lfu_evicts_the_fewest_hits_ties_by_oldest_last_hit(api: Api, agent: str) -> None:
    ids = await seed(api, agent, 5)
    history = [(9, 1), (1, 30), (1, 20), (0, None), (2, 10)]
    for entry_id, (hits, hit) in zip(ids, history, strict=True):
        await set_stats(api, entry_id, hits=hits, hit=hit)
    await put_policy(api, agent, maxEntries=2, eviction="lfu")
    assert await evict(api, now=60) == 3
    assert await remaining(api, agent) == [ids[0], ids[4]]  # 3 (never), 2 (hit 20), 1 (hit 30)


async def test_max_bytes_evicts_until_the_agent_fits(api: Api, agent: str) -> None:
    ids = await seed(api, agent, 4)
    listed = (await api.entries(agent, sort="id:asc"))["entries"]
    sizes = {int(e["id"]): await _size(api, int(e["id"])) for e in listed}
    for minute, entry_id in enumerate(ids):
        await set_stats(api, entry_id, hit=minute)
    # Room for the two most recently used, not for a third.
    room = sizes[ids[2]] + sizes[ids[3]]
    await put_policy(api, agent, maxBytes=room)
    assert await evict(api, now=60) == 2
    assert await remaining(api, agent) == ids[2:]
    assert (await policy(api, agent))["usage"] == {"entries": 2, "bytes": room}


async def _size(api: Api, entry_id: int) -> int:
    async with api.services.db.read() as conn:
        query = sa.select(entries.c.size_bytes).where(entries.c.id == entry_id)
        return int((await conn.execute(query)).scalar_one())


@pytest.mark.parametrize(("ttl_from", "gone"), [("cached", [0, 2]), ("last_hit", [2])])
async def test_ttl_from_cached_at_or_sliding_from_the_last_hit(
    api: Api, agent: str, ttl_from: str, gone: list[int]
) -> None:
    ids = await seed(api, agent, 3)
    await set_stats(api, ids[0], cached=0, hit=55)  # old, but used a moment ago
    await set_stats(api, ids[1], cached=50)  # young
    await set_stats(api, ids[2], cached=0)  # old, never used
    await put_policy(api, agent, ttlSeconds=1800, ttlFrom=ttl_from)
    assert await evict(api, now=29) == 0
    assert await evict(api, now=60) == len(gone)
    assert await remaining(api, agent) == [i for n, i in enumerate(ids) if n not in gone]


async def test_pinned_and_uploaded_entries_are_never_evicted(api: Api, agent: str) -> None:
    ids = await seed(api, agent, 4)
    for entry_id in ids:
        await set_stats(api, entry_id, cached=0)  # all old, never hit
    r = await api.client.put(f"/v1/agents/{agent}/audio-cache/{ids[0]}/pin", headers=api.headers)
    assert r.status_code == 200, r.text
    assert (await replace_file(api, str(ids[1]), sine_wav(freq=330.0))).status_code == 204
    warmed = await api.client.post(
        f"/v1/agents/{agent}/audio-cache/warm",
        json={"phrases": [{"text": "A warmed phrase"}]},
        headers=api.headers,
    )
    assert warmed.status_code == 200, warmed.text
    warm_id = int(warmed.json()["entries"][0]["id"])
    await set_stats(api, warm_id, cached=0)
    await put_policy(api, agent, maxEntries=1, ttlSeconds=60)
    internal = (await api.services.agents.owned(api.account, agent)).id
    limits = Limits(max_entries=1, ttls=(Ttl(60),))
    found = await api.services.evictor.repo.candidates(internal, limits, at(600), 100)
    assert sorted(c.id for c in found) == ids[2:]  # the query never offers protected ones
    assert await evict(api, now=600) == 2
    assert await remaining(api, agent) == [ids[0], ids[1], warm_id]
    assert (await policy(api, agent))["usage"]["entries"] == 3  # still over: nothing else may go


async def test_installation_quota_applies_and_an_agent_can_only_tighten_it(api: Api) -> None:
    agents = {name: await api.create_agent(name) for name in ("loose", "tight", "plain")}
    seeded = {name: await seed(api, name, 4) for name in agents}
    for ids in seeded.values():
        for minute, entry_id in enumerate(ids):
            await set_stats(api, entry_id, hit=minute)
    settings = api.services.settings.model_copy(update={"eviction_agent_max_entries": 2})
    api.services.evictor.installation = installation_limits(settings)
    await put_policy(api, "loose", maxEntries=10)  # cannot lift the quota of 2
    await put_policy(api, "tight", maxEntries=1)
    assert await evict(api, now=60) == 2 + 3 + 2
    assert await remaining(api, "loose") == seeded["loose"][2:]
    assert await remaining(api, "tight") == seeded["tight"][3:]
    assert await remaining(api, "plain") == seeded["plain"][2:]


async def test_installation_wide_cap_evicts_across_agents_in_policy_order(api: Api) -> None:
    one, two = await api.create_agent("one"), await api.create_agent("two")
    a, b = await seed(api, one, 3), await seed(api, two, 3)
    for minute, entry_id in enumerate([a[0], b[0], a[1], b[1], a[2], b[2]]):
        await set_stats(api, entry_id, hit=minute)
    settings = api.services.settings.model_copy(update={"eviction_total_max_entries": 3})
    api.services.evictor.installation = installation_limits(settings)
    assert await evict(api, now=60) == 3
    assert await remaining(api, one) == [a[2]]
    assert await remaining(api, two) == [b[1], b[2]]


async def test_the_background_evictor_runs_and_collects_the_audio(api: Api, agent: str) -> None:
    ids = await seed(api, agent, 3)
    for minute, entry_id in enumerate(ids):
        await set_stats(api, entry_id, hit=minute)
    listed = {int(e["id"]): e for e in (await api.entries(agent))["entries"]}
    victim_sha = await _sha(api, ids[0])
    await put_policy(api, agent, maxEntries=2)
    evictor = api.services.evictor
    await evictor.stop()
    evictor.interval_seconds = 0.05
    evictor.start()
    for _ in range(200):
        if evictor.counters.evicted_entries:
            break
        await asyncio.sleep(0.05)
    assert evictor.counters.runs >= 1 and evictor.counters.evicted_entries == 1
    assert ids[0] in listed and await remaining(api, agent) == ids[1:]
    r = await api.client.get(f"/v1/agents/{agent}/audio-cache/{ids[0]}/file", headers=api.headers)
    assert_envelope(r, 404, "NOT_FOUND")
    assert await api.services.blobs.stat(victim_sha) is None
    kept = await api.client.get(
        f"/v1/agents/{agent}/audio-cache/{ids[1]}/file", headers=api.headers
    )
    assert kept.status_code == 200


async def _sha(api: Api, entry_id: int) -> str:
    async with api.services.db.read() as conn:
        query = sa.select(entries.c.blob_sha256).where(entries.c.id == entry_id)
        return str((await conn.execute(query)).scalar_one())


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"maxEntries": 0}, "maxEntries"),
        ({"maxEntries": "ten"}, "maxEntries"),
        ({"maxBytes": -5}, "maxBytes"),
        ({"maxEntries": 2**31}, "maxEntries"),
        ({"maxBytes": 2**63}, "maxBytes"),
        ({"maxBytes": 1.5}, "maxBytes"),
        ({"eviction": "fifo"}, "eviction"),
        ({"ttlSeconds": 0}, "ttlSeconds"),
        ({"ttlFrom": "forever"}, "ttlFrom"),
    ],
)
async def test_bad_eviction_fields_are_400_naming_the_field(
    api: Api, agent: str, fields: dict[str, Any], named: str
) -> None:
    r = await api.client.put(
        f"/v1/agents/{agent}/cache-policy",
        json={"admission": "always", **fields},
        headers=api.headers,
    )
    body = assert_envelope(r, 400, "INVALID_REQUEST")
    assert named in body["error_message"]


async def test_a_policy_round_trips_and_null_clears_a_limit(api: Api, agent: str) -> None:
    first = await put_policy(api, agent, maxEntries=5, maxBytes=10**9, eviction="lfu",
                             ttlSeconds=3600, ttlFrom="last_hit")  # fmt: skip
    assert (first["maxEntries"], first["eviction"], first["ttlFrom"]) == (5, "lfu", "last_hit")
    again = await api.client.put(  # what GET gave, read-only fields included, is accepted
        f"/v1/agents/{agent}/cache-policy", json=await policy(api, agent), headers=api.headers
    )
    assert assert_json(again) == first
    cleared = await put_policy(api, agent, maxEntries=None)
    assert cleared["maxEntries"] is None and cleared["eviction"] is None


async def test_expired_entries_come_first_even_in_small_batches(api: Api, agent: str) -> None:
    ids = await seed(api, agent, 3)
    await set_stats(api, ids[0], cached=0, hit=59, hits=50)  # expired by cachedAt, most hits
    await set_stats(api, ids[1], cached=40)
    await set_stats(api, ids[2], cached=45)
    await put_policy(api, agent, eviction="lfu", ttlSeconds=1800)
    api.services.evictor.batch_size = 1  # the query must offer the expired one first
    assert await evict(api, now=60) == 1
    assert await remaining(api, agent) == ids[1:]


async def test_an_entry_pinned_after_it_was_chosen_is_spared(api: Api, agent: str) -> None:
    ids = await seed(api, agent, 2)
    pinned = await api.services.curation.get_entry(agent, ids[0])
    await api.services.curation.set_pinned(pinned, True)  # as if pinned while a run was deciding
    internal = (await api.services.agents.owned(api.account, agent)).id
    deleted = await api.services.curation.delete_entries(internal, ids, evicting=True)
    assert deleted == [ids[1]]
    assert await remaining(api, agent) == [ids[0]]
    assert (await policy(api, agent))["evictedTotal"] == 1
