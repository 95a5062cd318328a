"""Blob collection and consistency checks.

Deletes never unlink first: the row goes and the hash is queued in one transaction
(``pending.py``); ``sweep_pending`` then unlinks a queued blob only if no entry refers to it.
A writer that re-used a hash the sweeper just removed puts it back inside its row's write
transaction (``cache/blob_writer.py``), so a row never points at nothing, even if the
process dies right after the commit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from audiocache.storage.blobs.base import BlobStore
from audiocache.storage.db import Database
from audiocache.storage.references import (
    all_references,
    drop_variants_of,
    is_referenced,
    referenced_among,
)
from audiocache.storage.tables import pending_blob_deletes, word_timings


@dataclass
class Report:
    entries: int = 0
    blobs: int = 0
    pending: int = 0
    rows_without_blob: list[int | str] = field(default_factory=list)
    blobs_without_row: list[str] = field(default_factory=list)
    swept: int = 0
    collected: int = 0
    temp_files_removed: int = 0

    @property
    def healthy(self) -> bool:
        return not self.rows_without_blob and not self.blobs_without_row and not self.pending


async def sweep_pending(
    db: Database,
    blobs: BlobStore,
    only: list[str] | None = None,
    limit: int = 1000,
    batch: int = 100,
    concurrency: int = 16,
) -> int:
    """Unlink queued blobs that nothing refers to any more (their converted copies go with
    them, in the same pass); returns how many blobs were removed.

    ``batch`` hashes per write transaction, checked with one query per referring table:
    a transaction (and, on SQLite, an fsync) per blob made a 500-entry delete take
    seconds. Their blob locks are taken in hash order, as every writer takes them, and
    held until the commit, so the batch's objects are deleted ``concurrency`` at a time: a
    writer of one of them waits for one round trip to the store, not for the batch's."""
    query = sa.select(pending_blob_deletes.c.sha256).limit(limit)
    if only is not None:
        query = query.where(pending_blob_deletes.c.sha256.in_(only))
    async with db.read() as conn:
        work = sorted(set((await conn.execute(query)).scalars()))
    removed = 0
    while work:
        chunk, work = work[:batch], work[batch:]

        async def sweep(conn: AsyncConnection, chunk: list[str] = chunk) -> tuple[int, list[str]]:
            for sha in chunk:  # no writer may re-check these blobs meanwhile
                await db.lock_blob(conn, sha)
            referenced = await referenced_among(conn, chunk)
            gone = [sha for sha in chunk if sha not in referenced]
            copies = await drop_variants_of(conn, *gone)
            if gone:
                await conn.execute(
                    word_timings.delete().where(word_timings.c.blob_sha256.in_(gone))
                )
            # a re-run after an abort finds them gone already: no harm
            await delete_blobs(blobs, gone, concurrency)
            await conn.execute(
                pending_blob_deletes.delete().where(pending_blob_deletes.c.sha256.in_(chunk))
            )
            return len(gone), copies

        count, copies = await db.write_retrying(sweep)
        removed += count
        if copies:
            work = sorted(set(work) | set(copies))
    return removed


async def delete_blobs(blobs: BlobStore, shas: list[str], concurrency: int) -> None:
    """Delete ``shas`` from the store, at most ``concurrency`` at once; the first error is
    raised once every delete has ended (none is left running behind the caller)."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(sha: str) -> None:
        async with gate:
            await blobs.delete(sha)

    results = await asyncio.gather(*(one(sha) for sha in shas), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def check(db: Database, blobs: BlobStore, grace_seconds: float = 0) -> Report:
    """Compare rows with blobs; blobs younger than the grace period are not reported."""
    report = Report()
    async with db.read() as conn:
        rows = await all_references(conn)
        report.pending = (
            await conn.execute(sa.select(sa.func.count()).select_from(pending_blob_deletes))
        ).scalar_one()
    report.entries = sum(1 for row_id, _sha in rows if isinstance(row_id, int))
    referenced = {sha for _row_id, sha in rows}
    present: set[str] = set()
    async for blob in blobs.iter_blobs():
        present.add(blob.sha256)
        if blob.sha256 not in referenced and blob.age_seconds >= grace_seconds:
            report.blobs_without_row.append(blob.sha256)
    report.blobs = len(present)
    report.rows_without_blob = sorted(
        (row_id for row_id, sha in rows if sha not in present), key=str
    )
    return report


async def collect(db: Database, blobs: BlobStore, grace_seconds: float) -> Report:
    """Sweep the queue, remove unreferenced blobs older than the grace period, then re-check.

    Rows without blobs are reported, never deleted: they mean lost audio, which an operator
    must see rather than have tidied away.
    """
    swept = await sweep_pending(db, blobs)
    before = await check(db, blobs, grace_seconds)
    for sha in before.blobs_without_row:
        async with db.write() as conn:
            await db.lock_blob(conn, sha)  # no writer may re-check this blob meanwhile
            if not await is_referenced(conn, sha):
                await drop_variants_of(conn, sha)
                await blobs.delete(sha)
    await sweep_pending(db, blobs)  # the copies of what was just collected
    removed_tmp = 0
    remove_temp = getattr(blobs, "remove_stale_temp_files", None)
    if remove_temp is not None:
        removed_tmp = remove_temp(grace_seconds)
    after = await check(db, blobs, grace_seconds)
    after.swept = swept
    after.collected = len(before.blobs_without_row)
    after.temp_files_removed = removed_tmp
    return after
