"""The point readers (sqlite3, asyncpg) return what SQLAlchemy returns for the same statement."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from support import Api

from audiocache.storage import agents_repo, entries_repo, keys_repo, voices_repo
from audiocache.storage.keys_repo import hash_key
from audiocache.storage.tables import entries


async def through_sqlalchemy(api: Api, statement: Any, params: dict[str, Any]) -> Any:
    async with api.services.db.read() as conn:
        row = (await conn.execute(statement, params)).first()
    return dict(row._mapping) if row is not None else None


async def seeded(api: Api) -> dict[str, Any]:
    agent = await api.create_agent("reader-agent")
    entry_id = int(await api.seed_entry(agent, "Let me transfer you."))
    await api.speak(agent, "Let me transfer you.")  # a hit: hit_count, last_hit_at
    await api.services.hits.flush()
    entry = await api.services.entries.get(agent, entry_id)
    await api.services.entries.set_pinned(entry, True)
    revoked, revoked_key = await api.services.keys.create("acme", {"audio_cache:read"})
    await api.services.keys.revoke(revoked.key_id)
    r = await api.client.post(
        "/v1/accounts/acme/voice-library",
        json={"name": "Ava", "provider": "espeak", "providerVoiceId": "en-us", "config": {}},
        headers=api.headers,
    )
    assert r.status_code in (200, 201), r.text
    return {
        "agent": agent,
        "entry": entry_id,
        "cache_key": entry.cache_key,
        "voice": r.json()["voice"]["id"],
        "revoked_key": revoked_key,
    }


async def test_every_point_statement_reads_alike(api: Api) -> None:
    world = await seeded(api)
    cases = [
        (keys_repo._ACTIVE, {"key_hash": hash_key(api.key)}),
        (keys_repo._ACTIVE, {"key_hash": hash_key(world["revoked_key"])}),  # no row
        (sa.select(keys_repo.api_keys), {}),  # a revoked_at that is set
        (agents_repo._BY_ID, {"agent_id": world["agent"]}),
        (entries_repo._BY_ID, {"entry_id": world["entry"], "agent_id": world["agent"]}),
        (entries_repo._BY_KEY, {"agent_id": world["agent"], "cache_key": world["cache_key"]}),
        (
            entries_repo._IN_ACCOUNT,
            {"entry_id": world["entry"], "agent_id": world["agent"], "account_id": "acme"},
        ),
        (
            entries_repo._IN_ACCOUNT,
            {"entry_id": world["entry"], "agent_id": world["agent"], "account_id": "other"},
        ),
        (voices_repo._VOICE, {"voice_id": world["voice"], "account_id": "acme"}),
    ]
    reader = api.services.db.point_reader
    assert reader is not None
    for statement, params in cases:
        expected = await through_sqlalchemy(api, statement, params)
        got = await reader.first(statement, params)
        assert (dict(got) if got is not None else None) == expected, statement
        if expected is not None:
            assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]
    row = await reader.first(
        entries_repo._BY_ID, {"entry_id": world["entry"], "agent_id": world["agent"]}
    )
    assert row["pinned"] is True and row["hit_count"] >= 1 and row["last_hit_at"] is not None


async def test_a_committed_write_is_seen_by_the_next_read(api: Api) -> None:
    world = await seeded(api)
    reader = api.services.db.point_reader
    params = {"entry_id": world["entry"], "agent_id": world["agent"]}
    assert await reader.first(entries_repo._BY_ID, params) is not None
    async with api.services.db.write() as conn:
        await conn.execute(sa.update(entries).values(hit_count=4242))
    assert (await reader.first(entries_repo._BY_ID, params))["hit_count"] == 4242
    async with api.services.db.write() as conn:
        await conn.execute(sa.delete(entries))
    assert await reader.first(entries_repo._BY_ID, params) is None


async def test_a_missing_parameter_is_an_error_not_a_null(api: Api) -> None:
    reader = api.services.db.point_reader
    with pytest.raises(KeyError, match="agent_id"):
        await reader.first(entries_repo._BY_ID, {"entry_id": 1})


async def test_the_reader_never_writes(api: Api) -> None:
    reader = api.services.db.point_reader
    with pytest.raises(Exception, match=r"readonly|read-only|query_only"):
        if api.services.db.is_sqlite:
            reader._connection().execute("DELETE FROM audio_cache_entries")
        else:
            await reader.first(entries_repo._BY_ID, {"entry_id": 1, "agent_id": "x"})
            await reader._pool.execute("DELETE FROM audio_cache_entries")


async def test_sqlite_list_reads_run_on_their_own_bounded_threads(tmp_path: Any) -> None:
    """Eight slow reads at once on a reader of two threads: two threads (hence two
    connections) do them all, none of them the event loop's default executor."""
    import asyncio
    import sqlite3
    import threading

    from audiocache.storage.point_reader import SqlitePointReader

    path = str(tmp_path / "r.db")
    sqlite3.connect(path).close()
    reader = SqlitePointReader(path, threads=2)
    names: set[str] = set()
    original = reader._connection

    def connection() -> sqlite3.Connection:
        names.add(threading.current_thread().name)
        return original()

    reader._connection = connection  # type: ignore[method-assign]
    n = sa.select(sa.literal(1).label("i")).cte("n", recursive=True)
    n = n.union_all(sa.select(n.c.i + 1).where(n.c.i < 200000))
    slow = sa.select(sa.func.count().label("c")).select_from(n)
    try:
        results = await asyncio.gather(*(reader.all(slow) for _ in range(8)))
    finally:
        await reader.close()
    assert [r[0]["c"] for r in results] == [200000] * 8
    assert len(names) <= 2, names
    assert all(name.startswith("sqlite-read") for name in names), names
