"""What only PostgreSQL shows: instances side by side, upserts under real concurrency,
advisory locks, and a server that goes away and comes back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from realservers import PostgresCluster
from sqlalchemy.ext.asyncio import AsyncConnection

from audiocache.errors import StorageConflict, StorageUnavailable
from audiocache.storage.db import Database
from audiocache.storage.entries_repo import EntryRepository
from audiocache.storage.pending import queue_blob_deletes
from audiocache.storage.tables import agents, pending_blob_deletes, phrase_requests


@pytest.fixture
def empty_database(postgres: PostgresCluster) -> Iterator[str]:
    name = f"e_{uuid.uuid4().hex[:16]}"
    yield postgres.create_database(name)
    postgres.drop_database(name)


@pytest.fixture
async def db(postgres_database: str) -> AsyncIterator[Database]:
    database = Database(postgres_database)
    yield database
    await database.close()


async def test_instances_starting_at_once_migrate_once(empty_database: str) -> None:
    instances = [Database(empty_database) for _ in range(4)]
    try:
        # Without the advisory lock the others fail ("relation already exists") or hang.
        async with asyncio.timeout(60):
            await asyncio.gather(*(db.migrate() for db in instances))
        async with instances[0].read() as conn:
            versions = (
                await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            ).all()
            count = (await conn.execute(sa.select(sa.func.count()).select_from(agents))).scalar()
        assert len(versions) == 1 and count == 0
    finally:
        for db in instances:
            await db.close()


async def test_concurrent_request_counts_add_up_exactly(db: Database) -> None:
    repo = EntryRepository(db)
    # Separate databases = separate instances: each counts through its own pool.
    others = [Database(db.url) for _ in range(3)]
    try:
        repos = [repo, *(EntryRepository(other) for other in others)]
        await asyncio.gather(
            *(repos[i % 4].record_request("agent", "k" * 64, 3600) for i in range(60))
        )
        async with db.read() as conn:
            count = (await conn.execute(sa.select(phrase_requests.c.request_count))).scalar()
        assert count == 60
    finally:
        for other in others:
            await other.close()


async def test_the_same_blob_queued_by_two_transactions_at_once(db: Database) -> None:
    sha = "ab" * 32
    started = asyncio.Event()

    async def first() -> None:
        async with db.write() as conn:
            await queue_blob_deletes(conn, [sha])
            started.set()
            await asyncio.sleep(0.3)  # still uncommitted while the second one inserts

    async def second() -> None:
        await started.wait()
        async with db.write() as conn:
            await queue_blob_deletes(conn, [sha, "cd" * 32])

    await asyncio.gather(first(), second())
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(pending_blob_deletes.c.sha256))).scalars().all()
    assert sorted(rows) == sorted([sha, "cd" * 32])


async def test_blob_lock_makes_the_collector_wait_for_the_writer(db: Database) -> None:
    sha = "ef" * 32
    order: list[str] = []
    locked = asyncio.Event()

    async def writer() -> None:
        async with db.write() as conn:
            await db.lock_blob(conn, sha)
            locked.set()
            await asyncio.sleep(0.3)
            order.append("writer commits")

    async def collector() -> None:
        await locked.wait()
        async with db.write() as conn:
            await db.lock_blob(conn, sha)
            order.append("collector checks")

    await asyncio.gather(writer(), collector())
    assert order == ["writer commits", "collector checks"]


async def _crossed_locks(db: Database) -> list[str]:
    """Two transactions that lock two blobs in opposite orders, each waiting (on its first
    attempt) until the other holds its first lock: a deadlock PostgreSQL must break."""
    both_hold = asyncio.Barrier(2)
    done: list[str] = []

    def crossing(name: str, first: str, second: str) -> Callable[[AsyncConnection], Any]:
        attempts = 0

        async def work(conn: AsyncConnection) -> None:
            nonlocal attempts
            attempts += 1
            await db.lock_blob(conn, first)
            if attempts == 1:
                await both_hold.wait()
            await db.lock_blob(conn, second)
            done.append(f"{name} after {attempts}")

        return work

    a, b = "1a" * 32, "2b" * 32
    async with asyncio.timeout(30):
        await asyncio.gather(
            db.write_retrying(crossing("one", a, b)), db.write_retrying(crossing("two", b, a))
        )
    return done


async def test_a_deadlocked_write_is_run_again(db: Database) -> None:
    done = await _crossed_locks(db)
    # PostgreSQL aborted one of the two; it ran again once the other had committed.
    assert sorted(d.split()[-1] for d in done) == ["1", "2"], done


async def test_a_deadlock_past_the_attempts_is_a_503(postgres_database: str) -> None:
    db = Database(postgres_database, write_attempts=1)
    try:
        with pytest.raises(StorageConflict) as raised:
            await _crossed_locks(db)
        assert isinstance(raised.value, StorageUnavailable) and raised.value.retry_after
    finally:
        await db.close()


async def test_a_restarted_server_is_503_meanwhile_and_recovers_by_itself() -> None:
    cluster = PostgresCluster().start()
    try:
        url = cluster.create_database("app")
        db = Database(url)
        await db.migrate()
        repo = EntryRepository(db)
        assert await repo.find_by_key("agent", "k" * 64) is None  # the point reader is open
        cluster.stop_server()
        with pytest.raises(StorageUnavailable):
            await repo.find_by_key("agent", "k" * 64)
        with pytest.raises(StorageUnavailable):
            await repo.record_request("agent", "k" * 64, 60)
        cluster.start_server()
        # No restart of ours: the pools drop dead connections and reconnect.
        for _attempt in range(50):
            try:
                assert await repo.find_by_key("agent", "k" * 64) is None
                assert await repo.record_request("agent", "k" * 64, 60) == 1
                break
            except StorageUnavailable:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the database did not come back")
        await db.close()
    finally:
        cluster.stop()
