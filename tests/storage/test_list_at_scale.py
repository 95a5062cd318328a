"""The list at scale: every order is read from an index (no sort of the agent's rows), the
transcript search goes through its trigram index, and the usage counters behind the
unfiltered totalCount stay exact through every write path, on both backends."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from support import Api, sine_wav

from audiocache.cache.query import SORT_FIELDS, parse_filters
from audiocache.models import EntryQuery, Limits, SortKey, Ttl
from audiocache.storage.entries_repo import list_statements
from audiocache.storage.eviction_repo import candidate_statements
from audiocache.storage.tables import agent_usage, agents, entries
from audiocache.storage.usage import read_usage

AGENT = "scale-agent"
FIELDS = sorted(set(SORT_FIELDS.values()))


@pytest.fixture
async def agent(api: Api) -> str:
    return await api.create_agent(AGENT)


async def _plan(
    api: Api, statement: sa.Select[Any], off: tuple[str, ...] = ("sort", "seqscan")
) -> str:
    """The database's plan of the statement, as text (SQLite: EXPLAIN QUERY PLAN; PG: the
    JSON plan with sorts and sequential scans priced out, so only a usable index avoids
    them — with a few rows the planner would rightly prefer a scan)."""
    db = api.services.db
    async with db.engine.connect() as conn:
        # Bound parameters as the repository sends them (a literal could match an
        # expression index that the parameterised statement misses).
        compiled = statement.compile(dialect=conn.dialect)
        values = compiled.construct_params()
        params = tuple(values[name] for name in compiled.positiontup or ())
        sql = str(compiled)
        if conn.dialect.name == "sqlite":
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
            return "\n".join(str(row[3]) for row in rows)
        for method in off:
            await conn.exec_driver_sql(f"SET LOCAL enable_{method} = off")
        plan = (await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}", params)).scalar_one()
        return json.dumps(plan)


@pytest.mark.parametrize("offset", [0, 10_000])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("field", FIELDS)
async def test_every_sort_is_read_from_its_index(
    api: Api, agent: str, field: str, descending: bool, offset: int
) -> None:
    query = EntryQuery(sort=(SortKey(field, descending),), offset=offset)
    ids, _count = list_statements(AGENT, query, api.services.db.engine.dialect.name)
    plan = await _plan(api, ids)
    index = "ix_entries_agent_id" if field == "id" else f"ix_entries_agent_{field}"
    assert index in plan, plan
    if api.services.db.engine.dialect.name == "sqlite":
        # transcripts: only the runs of equal prefixes are sorted (by the whole text)
        partial = "USE TEMP B-TREE FOR RIGHT PART OF ORDER BY"
        assert "TEMP B-TREE" not in (plan.replace(partial, "") if field == "transcript" else plan)
    else:
        assert '"Sort"' not in plan and "Seq Scan" not in plan, plan
    if field == "transcript" and api.services.db.engine.dialect.name == "postgresql":
        # the offset is skipped in the stored prefix's index alone (migration 0012)
        assert '"Index Only Scan"' in plan, plan


async def test_contains_is_answered_by_the_trigram_index(api: Api, agent: str) -> None:
    query = EntryQuery(filters=parse_filters(["transcript:contains:order number"]))
    ids, count = list_statements(AGENT, query, api.services.db.engine.dialect.name)
    if api.services.db.engine.dialect.name == "postgresql":
        await _seed_many_postgres(api, 20_000)
    for statement in (ids, count):
        plan = await _plan(api, statement, off=())
        if api.services.db.engine.dialect.name == "sqlite":
            # the matches drive: looked up by id, never the agent's whole index
            assert "audio_cache_entries_fts" in plan and "PRIMARY KEY" in plan, plan
            assert "ix_entries_agent" not in plan, plan
        else:
            assert "ix_entries_transcript_trgm" in plan, plan


async def _seed_many_postgres(api: Api, n: int) -> None:
    """Rows enough (and statistics) for PostgreSQL's planner to weigh the trigram index;
    one in a hundred says "order number". Metadata only: no blob is read."""
    async with api.services.db.write() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO audio_cache_entries (agent_id, cache_key, transcript, provider,"
            " provider_voice_id, blob_sha256, size_bytes, duration, cached_at)"
            f" SELECT '{AGENT}', md5(g::text) || md5(g::text),"
            " CASE WHEN g % 100 = 0 THEN 'Your order number is ' || g"
            " ELSE 'Phrase ' || md5(g::text) END, 'fake', 'alpha', md5('blob'), 100, 1.0,"
            f" now() FROM generate_series(1, {n}) g"
        )
    async with api.services.db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("VACUUM ANALYZE audio_cache_entries")


async def test_short_contains_still_scans_and_matches(api: Api, agent: str) -> None:
    """Under three characters there is no trigram: the LIKE scan answers, as before."""
    for text in ("ab cd", "xab", "nothing"):
        await api.seed_entry(agent, text)
    page = await api.entries(agent, filter="transcript:contains:ab")
    assert sorted(e["transcript"] for e in page["entries"]) == ["ab cd", "xab"]
    assert page["totalCount"] == 2


# -- totalCount ----------------------------------------------------------------------------


async def test_total_count_is_exact_with_and_without_filters_on_every_page(
    api: Api, agent: str
) -> None:
    texts = [f"Your order number is {n}" if n % 3 == 0 else f"Hello there {n}" for n in range(12)]
    for text in texts:
        await api.seed_entry(agent, text)
    for params, expected in (
        ({}, 12),
        ({"filter": "transcript:contains:order number"}, 4),
        ({"filter": "transcript:contains:ORDER NUMBER IS 9"}, 1),
        ({"filter": "transcript:contains:hello and provider:eq:fake"}, 8),
        ({"filter": "transcript:contains:no such words"}, 0),
    ):
        seen = []
        for offset in range(0, 14, 5):  # the last page is past the end
            page = await api.entries(agent, limit=5, offset=offset, sort="id:asc", **params)
            assert page["totalCount"] == expected, (params, offset)
            seen += [e["id"] for e in page["entries"]]
        assert len(seen) == len(set(seen)) == expected, params
    beyond = await api.entries(agent, offset=50, filter="transcript:contains:order number")
    assert beyond == {"entries": [], "totalCount": 4}


async def test_unfiltered_total_is_the_usage_counter(api: Api, agent: str) -> None:
    """The unfiltered count comes from agent_usage: a counter set wrong shows in the list
    (so the test fails if the list counted rows instead)."""
    for n in range(3):
        await api.seed_entry(agent, f"Counted {n}")
    assert (await api.entries(agent))["totalCount"] == 3
    async with api.services.db.write() as conn:
        await conn.execute(
            agent_usage.update().where(agent_usage.c.agent_id == AGENT).values(entry_count=41)
        )
    assert (await api.entries(agent))["totalCount"] == 41
    assert (await api.entries(agent, filter="provider:eq:fake"))["totalCount"] == 3


# -- usage counters ------------------------------------------------------------------------


async def _assert_usage_exact(api: Api) -> None:
    """Every agent's counters equal its rows (and every agent has counters)."""
    async with api.services.db.read() as conn:
        actual = {
            row.agent_id: (row.n, row.size)
            for row in await conn.execute(
                sa.select(
                    agents.c.id.label("agent_id"),
                    sa.func.count(entries.c.id).label("n"),
                    sa.func.coalesce(sa.func.sum(entries.c.size_bytes), 0).label("size"),
                )
                .select_from(agents.outerjoin(entries, entries.c.agent_id == agents.c.id))
                .group_by(agents.c.id)
            )
        }
        counted = {}
        for agent_id in actual:
            usage = await read_usage(conn, agent_id)
            assert usage is not None, agent_id
            counted[agent_id] = (usage.entries, usage.bytes)
        orphans = (
            await conn.execute(
                sa.select(agent_usage.c.agent_id).where(
                    agent_usage.c.agent_id.not_in(sa.select(agents.c.id))
                )
            )
        ).all()
    assert counted == actual
    assert orphans == []


async def test_counters_follow_every_write_path(api: Api, agent: str) -> None:
    ids = [await api.seed_entry(agent, f"Phrase {n}") for n in range(6)]
    await _assert_usage_exact(api)
    base = f"/v1/agents/{agent}/audio-cache"
    assert (await api.client.delete(f"{base}/{ids[0]}", headers=api.headers)).status_code in (
        200,
        204,
    )
    await _assert_usage_exact(api)
    r = await api.client.post(
        f"{base}/bulk-delete", json={"ids": [ids[1], ids[2], ids[1], "999999"]}, headers=api.headers
    )
    assert r.status_code == 200, r.text
    await _assert_usage_exact(api)
    # a replaced file changes the entry's size
    r = await api.client.patch(
        f"{base}/{ids[3]}/file",
        content=sine_wav(2.0),
        headers={**api.headers, "Content-Type": "audio/wav"},
    )
    assert r.status_code == 204, r.text
    await _assert_usage_exact(api)
    r = await api.client.post(
        f"/v1/agents/{agent}/duplicate",
        json={"newAgentId": "copy-agent", "newAgentName": "Copy"},
        headers=api.headers,
    )
    assert r.status_code == 200, r.text
    await _assert_usage_exact(api)
    async with api.services.db.read() as conn:
        copy = await read_usage(conn, "copy-agent")
    assert copy is not None and copy.entries == 3
    r = await api.client.delete(f"/v1/agents/{agent}", headers=api.headers)
    assert r.status_code in (200, 204), r.text
    await _assert_usage_exact(api)
    assert (await api.entries("copy-agent"))["totalCount"] == 3


async def test_counters_exact_under_concurrent_writes(api: Api, agent: str) -> None:
    """Inserts and deletes (overlapping ids, so two deletes race for one row) at once."""
    ids = [int(await api.seed_entry(agent, f"Existing {n}")) for n in range(10)]
    repo = api.services.entries
    template = (await repo.get(AGENT, ids[0])).__dict__

    async def insert(n: int) -> None:
        values = {
            k: template[k]
            for k in ("agent_id", "transcript", "provider", "provider_voice_id", "config")
        }
        await repo.insert(
            {
                **values,
                "cache_key": f"{n:064x}",
                "transcript": f"Concurrent {n}",
                "blob_sha256": template["blob_sha256"],
                "size_bytes": 1000 + n,
                "duration": 1.0,
            }
        )

    async def delete(chunk: list[int]) -> None:
        await repo.delete(AGENT, chunk)

    jobs = [insert(n) for n in range(20)]
    jobs += [delete(ids[i : i + 3]) for i in range(0, 8, 2)]  # each id in up to two deletes
    await asyncio.gather(*jobs)
    await _assert_usage_exact(api)
    page = await api.entries(agent)
    assert page["totalCount"] == 20 + 10 - 9


async def test_entry_of_an_agent_deleted_meanwhile_leaves_no_counters(api: Api, agent: str) -> None:
    await api.seed_entry(agent, "Soon gone")
    r = await api.client.delete(f"/v1/agents/{agent}", headers=api.headers)
    assert r.status_code in (200, 204), r.text
    await _assert_usage_exact(api)


@pytest.mark.parametrize(
    ("scope", "limits"),
    [
        ("agent", Limits(max_entries=10, policy="lru")),
        ("agent", Limits(max_entries=10, policy="lfu")),
        ("agent", Limits(policy="lru", ttls=(Ttl(3600, "cached"), Ttl(3600, "last_hit")))),
        ("installation", Limits(max_entries=10, policy="lru")),  # the cap has no TTL
        ("installation", Limits(max_entries=10, policy="lfu")),
    ],
    ids=["agent-lru", "agent-lfu", "agent-ttls", "installation-lru", "installation-lfu"],
)
async def test_eviction_reads_its_victims_from_indexes(
    api: Api, agent: str, scope: str, limits: Limits
) -> None:
    agent_id = (await api.services.agents.owned(api.account, AGENT)).id
    statements = candidate_statements(
        agent_id if scope == "agent" else None, limits, datetime(2030, 1, 1), 500
    )
    assert len(statements) == 1 + len(limits.ttls)
    for statement in statements:
        plan = await _plan(api, statement)
        assert "ix_entries_" in plan, plan
        if api.services.db.engine.dialect.name == "sqlite":
            assert "TEMP B-TREE" not in plan, plan
        else:
            assert '"Sort"' not in plan and "Seq Scan" not in plan, plan


async def test_eviction_usage_is_the_usage_counters(api: Api, agent: str) -> None:
    for i in range(3):
        await api.seed_entry(AGENT, f"Counted {i}")
    agent_id = (await api.services.agents.owned(api.account, AGENT)).id
    repo = api.services.agents.eviction
    # The counters, not the rows, answer (made to disagree with the rows to tell).
    async with api.services.db.write() as conn:
        await conn.execute(
            agent_usage.update()
            .where(agent_usage.c.agent_id == agent_id)
            .values(entry_count=agent_usage.c.entry_count + 1000)
        )
    assert (await repo.usage(agent_id)).entries == 1003
    assert (await repo.usage(None)).entries == 1003
