"""Deletes under concurrency: bulk deletes of overlapping ids in opposite orders, evicting
deletes, hit flushes, replaces, inserts and agent deletes, side by side on one database.

On PostgreSQL each of those takes row locks (entries, blob advisory locks, the usage
counter, the agent row) and must take them in one order, else two of them wait for each
other until PostgreSQL aborts one ("deadlock detected", a 500 before this was fixed). On
SQLite they simply queue for the write lock; the test holds there too.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from audiocache.errors import NotFound
from audiocache.storage.agents_repo import AgentRepository
from audiocache.storage.db import Database, utcnow
from audiocache.storage.entries_repo import EntryRepository
from audiocache.storage.tables import agent_usage, entries

BLOBS = 7  # few blobs, so entries, replaces and inserts share them as real audio does


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_database"))
    return f"sqlite+aiosqlite:///{tmp_path / 'audiocache.db'}"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    # One attempt: the lock order alone must keep these apart; a retry would hide a deadlock
    # (the retry itself is tested in test_postgres.py).
    database = Database(database_url, write_attempts=1)
    await database.migrate()
    yield database
    await database.close()


def _sha(n: int) -> str:
    return hashlib.sha256(str(n % BLOBS).encode()).hexdigest()


def _values(agent_id: str, n: int) -> dict[str, Any]:
    return {
        "agent_id": agent_id,
        "cache_key": f"{n:064d}",
        "transcript": f"phrase {n}",
        "provider": "fake",
        "provider_voice_id": "v",
        "language_code": "en",
        "model": "m",
        "config_json": "{}",
        "blob_sha256": _sha(n),
        "size_bytes": 100 + n,
        "duration": 1.0,
    }


async def _fill(db: Database, agent_id: str, count: int, start: int = 0) -> list[int]:
    """Rows in one statement; hit counts fall as ids rise, so the LFU index's order (which
    PostgreSQL's planner may scan a delete by) is not the id order."""
    rows = [
        {**_values(agent_id, n), "cached_at": utcnow(), "hit_count": (count - i) % 97}
        for i, n in enumerate(range(start, start + count))
    ]
    async with db.write() as conn:
        result = await conn.execute(entries.insert().returning(entries.c.id), rows)
        ids = list(result.scalars())
        await conn.execute(
            agent_usage.update()
            .where(agent_usage.c.agent_id == agent_id)
            .values(
                entry_count=agent_usage.c.entry_count + len(rows),
                total_bytes=agent_usage.c.total_bytes + sum(r["size_bytes"] for r in rows),
            )
        )
    return ids


async def _run_all(jobs: list[Awaitable[None]], errors: list[BaseException]) -> None:
    async with asyncio.timeout(120):
        await asyncio.gather(*jobs)
    counted = Counter(f"{type(e).__name__}: {str(e).splitlines()[0][:120]}" for e in errors)
    assert not errors, counted


async def test_bulk_deletes_hits_replaces_and_inserts_side_by_side(db: Database) -> None:
    repo = EntryRepository(db, history_limit=2)
    await AgentRepository(db).create(public_id="a", account_id="acme", name="a")
    ids = await _fill(db, "a", 2000)
    errors: list[BaseException] = []
    rng = random.Random(9)
    rounds = 40

    async def guarded(work: Awaitable[object]) -> None:
        try:
            await work
        except NotFound:
            pass  # a replace of an entry a delete took first
        except Exception as exc:
            errors.append(exc)

    async def deleter(descending: bool) -> None:
        for _ in range(rounds):
            pick = rng.sample(ids, min(len(ids), rng.choice([2, 5, 40, 300])))
            pick.sort(reverse=descending)
            await guarded(repo.delete("a", pick, evicting=rng.random() < 0.5))

    async def hit_flusher() -> None:
        for _ in range(rounds):
            counts = {i: 1 for i in rng.sample(ids, min(len(ids), 400))}
            await guarded(repo.add_hits(counts, utcnow()))

    async def replacer() -> None:
        for _ in range(rounds * 2):
            entry = await repo.get("a", rng.choice(ids))
            if entry is not None:
                change = {
                    "blob_sha256": _sha(rng.randrange(BLOBS)),
                    "size_bytes": 1 + rng.randrange(999),
                }
                await guarded(repo.update_audio(entry, change))

    async def inserter() -> None:
        for _ in range(rounds * 2):
            n = 10_000 + rng.randrange(100_000)
            try:
                entry, _created = await repo.insert(_values("a", n))
                ids.append(entry.id)
            except Exception as exc:
                errors.append(exc)

    await _run_all(
        [
            deleter(False),
            deleter(True),
            hit_flusher(),
            hit_flusher(),
            replacer(),
            inserter(),
            inserter(),
        ],
        errors,
    )
    async with db.read() as conn:
        count = await conn.scalar(
            sa.select(sa.func.count()).select_from(entries).where(entries.c.agent_id == "a")
        )
        usage = await conn.scalar(
            sa.select(agent_usage.c.entry_count).where(agent_usage.c.agent_id == "a")
        )
    assert usage == count  # every delete that went through counted exactly once


async def test_agent_deletes_while_evicting_and_flushing_hits(db: Database) -> None:
    repo = EntryRepository(db)
    agents = AgentRepository(db)
    errors: list[BaseException] = []
    rng = random.Random(10)

    async def one_round(r: int) -> None:
        agent_id = f"b{r}"
        await agents.create(public_id=agent_id, account_id="acme", name=agent_id)
        ids = await _fill(db, agent_id, 300, start=r * 1000)

        async def evict() -> None:
            for _ in range(4):
                pick = rng.sample(ids, 60)
                try:
                    await repo.delete(agent_id, pick, evicting=True)
                except Exception as exc:
                    errors.append(exc)

        async def hits() -> None:
            for _ in range(4):
                try:
                    await repo.add_hits({i: 1 for i in rng.sample(ids, 150)}, utcnow())
                except Exception as exc:
                    errors.append(exc)

        async def drop_agent() -> None:
            await asyncio.sleep(rng.random() * 0.02)
            try:
                await agents.delete(agent_id)
            except Exception as exc:
                errors.append(exc)

        await asyncio.gather(evict(), evict(), hits(), drop_agent())

    await _run_all([one_round(r) for r in range(12)], errors)
    async with db.read() as conn:
        left = await conn.scalar(sa.select(sa.func.count()).select_from(entries))
    assert left == 0
