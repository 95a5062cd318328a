"""Storage failures reach callers as StorageFull (507) or StorageUnavailable (503), caused by
the real thing: a full tmpfs, an immutable file, a lock held past the busy timeout."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from faults import fill, immutable, tmpfs

from audiocache.errors import StorageFull, StorageUnavailable
from audiocache.storage.blobs.base import sha256_hex
from audiocache.storage.blobs.fs import FilesystemBlobStore
from audiocache.storage.db import Database
from audiocache.storage.tables import pending_blob_deletes

AUDIO = b"RIFF" + bytes(range(256)) * 64


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp-*")]


async def test_full_blob_folder_is_storage_full_and_leaves_no_temp_file(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "blobs") as root:
        store = FilesystemBlobStore(root)
        filler = fill(root)
        with pytest.raises(StorageFull) as caught:
            await store.put(AUDIO)
        assert caught.value.status == 507 and caught.value.error_code == "STORAGE_FULL"
        assert leftovers(root) == [] and await store.stat(sha256_hex(AUDIO)) is None
        filler.unlink()  # space again: the same put now lands, no restart
        stored = await store.put(AUDIO)
        assert await store.read(stored.sha256) == AUDIO


async def test_unwritable_blob_folder_is_storage_unavailable(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    shard = store.root / sha256_hex(AUDIO)[:2]
    shard.mkdir()
    with immutable(shard), pytest.raises(StorageUnavailable) as caught:
        await store.put(AUDIO)
    assert type(caught.value) is StorageUnavailable and caught.value.status == 503
    assert leftovers(store.root) == []


async def queue(db: Database, sha: str) -> None:
    async with db.write() as conn:
        await conn.execute(
            pending_blob_deletes.insert().values(sha256=sha, queued_at=sa.func.now())
        )


@pytest.fixture
async def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", busy_timeout_seconds=0.2)
    await database.migrate()
    yield database
    await database.close()


async def test_database_locked_past_its_timeout_is_unavailable_with_retry(
    db: Database, tmp_path: Path
) -> None:
    holder = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageUnavailable, match="locked") as caught:
            await queue(db, "a" * 64)
        assert type(caught.value) is StorageUnavailable and caught.value.retry_after == 1.0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await queue(db, "a" * 64)  # the lock is gone: writes work again


async def test_read_only_database_is_unavailable_and_still_readable(
    db: Database, tmp_path: Path
) -> None:
    await queue(db, "b" * 64)
    files = [tmp_path / "m.db", tmp_path / "m.db-wal"]
    with immutable(*files):
        await db.engine.dispose()
        await db.write_engine.dispose()  # new connections: the database opens read-only
        with pytest.raises(StorageUnavailable, match="read-only"):
            await queue(db, "c" * 64)
        async with db.read() as conn:
            count = (
                await conn.execute(sa.select(sa.func.count()).select_from(pending_blob_deletes))
            ).scalar_one()
        assert count == 1


async def test_full_database_is_storage_full(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "db", size="1m") as folder:
        database = Database(f"sqlite+aiosqlite:///{folder / 'm.db'}")
        try:
            await database.migrate()
            fill(folder)
            with pytest.raises(StorageFull):
                for n in range(5000):  # pages run out within a few hundred rows
                    await queue(database, f"{n:064x}")
        finally:
            await database.close()
