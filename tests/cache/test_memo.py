"""The memo's rules: a new generation empties it, a stale answer is never kept, bounds."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from audiocache.cache.memo import BlobBytes, HotMemo
from audiocache.storage.db import Database


class Clock:
    def __init__(self) -> None:
        self.value: object | None = 1

    async def __call__(self) -> object | None:
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


async def test_a_new_generation_empties_it_and_a_stale_answer_is_dropped() -> None:
    clock = Clock()
    memo = HotMemo(clock, max_items=10, max_bytes=0)
    started = await memo.begin()
    memo.put("a", 1, started)
    assert memo.get("a") == 1
    clock.value = 2
    late = started  # worked out under generation 1, put after another request saw 2
    assert await memo.begin() == 2
    assert memo.get("a") is None
    memo.put("b", 2, late)
    assert memo.get("b") is None
    clock.value = RuntimeError("database busy")
    assert await memo.begin() is None
    clock.value = None
    assert await memo.begin() is None


async def test_answers_are_bounded() -> None:
    memo = HotMemo(Clock(), max_items=3, max_bytes=0)
    generation = await memo.begin()
    for n in range(4):
        memo.put(n, n, generation)
    assert len(memo) <= 3 and memo.get(3) == 3
    assert await HotMemo(Clock(), max_items=0, max_bytes=0).begin() is None


def test_blob_bytes_keep_the_most_recently_used_within_the_bound() -> None:
    blobs = BlobBytes(max_bytes=1600)  # blobs up to 100 bytes
    assert not blobs.fits(101) and blobs.fits(100)
    for n in range(16):
        blobs.put(f"{n:064x}", bytes(100))
    assert blobs.get(f"{0:064x}") is not None  # now the most recently used
    blobs.put("f" * 64, bytes(100))
    assert blobs.size <= 1600
    assert blobs.get(f"{1:064x}") is None and blobs.get(f"{0:064x}") is not None
    blobs.put("e" * 64, bytes(101))
    assert blobs.get("e" * 64) is None


async def test_sqlite_generation_moves_with_a_commit_of_another_connection(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    reader, writer = Database(url), Database(url)
    try:
        async with writer.write() as conn:
            await conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        first = await reader.generation()
        assert first is not None and await reader.generation() == first
        async with writer.write() as conn:
            await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        assert await reader.generation() != first
    finally:
        await reader.close()
        await writer.close()


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:///:memory:"])
async def test_no_generation_without_a_point_reader(url: str) -> None:
    db = Database(url)
    try:
        assert await db.generation() is None
    finally:
        await db.close()
