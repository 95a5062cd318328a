"""Blob collection and consistency checks.

Deletes never unlink first: the row goes and the hash is queued in one transaction
(``pending.py``); ``sweep_pending`` then unlinks a queued blob only if no entry refers to it.
A writer that re-used a hash the sweeper just removed puts it back after its commit
(``CacheService._ensure_blob``), so a row never points at nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from audiocache.storage.blobs.base import BlobStore
from audiocache.storage.db import Database
from audiocache.storage.tables import entries, pending_blob_deletes


@dataclass
class Report:
    entries: int = 0
    blobs: int = 0
    pending: int = 0
    rows_without_blob: list[int] = field(default_factory=list)
    blobs_without_row: list[str] = field(default_factory=list)
    swept: int = 0
    collected: int = 0
    temp_files_removed: int = 0

    @property
    def healthy(self) -> bool:
        return not self.rows_without_blob and not self.blobs_without_row and not self.pending


async def sweep_pending(
    db: Database, blobs: BlobStore, only: list[str] | None = None, limit: int = 1000
) -> int:
    """Unlink queued blobs that no entry refers to any more; returns how many were removed."""
    query = sa.select(pending_blob_deletes.c.sha256).limit(limit)
    if only is not None:
        query = query.where(pending_blob_deletes.c.sha256.in_(only))
    async with db.read() as conn:
        shas = list((await conn.execute(query)).scalars())
    removed = 0
    for sha in shas:
        async with db.write() as conn:
            referenced = (
                await conn.execute(
                    sa.select(entries.c.id).where(entries.c.blob_sha256 == sha).limit(1)
                )
            ).first()
            if referenced is None:
                await blobs.delete(sha)
                removed += 1
            await conn.execute(
                pending_blob_deletes.delete().where(pending_blob_deletes.c.sha256 == sha)
            )
    return removed


async def check(db: Database, blobs: BlobStore, grace_seconds: float = 0) -> Report:
    """Compare rows with blobs; blobs younger than the grace period are not reported."""
    report = Report()
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(entries.c.id, entries.c.blob_sha256))).all()
        report.pending = (
            await conn.execute(sa.select(sa.func.count()).select_from(pending_blob_deletes))
        ).scalar_one()
    report.entries = len(rows)
    referenced = {row.blob_sha256 for row in rows}
    present: set[str] = set()
    async for blob in blobs.iter_blobs():
        present.add(blob.sha256)
        if blob.sha256 not in referenced and blob.age_seconds >= grace_seconds:
            report.blobs_without_row.append(blob.sha256)
    report.blobs = len(present)
    report.rows_without_blob = sorted(row.id for row in rows if row.blob_sha256 not in present)
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
            still_unreferenced = (
                await conn.execute(
                    sa.select(entries.c.id).where(entries.c.blob_sha256 == sha).limit(1)
                )
            ).first() is None
            if still_unreferenced:
                await blobs.delete(sha)
    removed_tmp = 0
    remove_temp = getattr(blobs, "remove_stale_temp_files", None)
    if remove_temp is not None:
        removed_tmp = remove_temp(grace_seconds)
    after = await check(db, blobs, grace_seconds)
    after.swept = swept
    after.collected = len(before.blobs_without_row)
    after.temp_files_removed = removed_tmp
    return after
