"""The pending-deletes queue: a blob hash is queued in the same transaction that drops its
last reference, so a crash between commit and unlink leaves a record for the sweeper."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncConnection

from audiocache.storage.db import utcnow
from audiocache.storage.dialects import insert_for
from audiocache.storage.tables import pending_blob_deletes


async def queue_blob_deletes(conn: AsyncConnection, shas: Iterable[str]) -> None:
    unique = sorted(set(shas))
    if not unique:
        return
    now = utcnow()
    # One statement, no read first: two transactions queueing the same hash at once (two
    # deletes of entries sharing a blob) must both succeed, on PostgreSQL too.
    insert = insert_for(conn, pending_blob_deletes).on_conflict_do_nothing(
        index_elements=[pending_blob_deletes.c.sha256]
    )
    await conn.execute(insert, [{"sha256": sha, "queued_at": now} for sha in unique])
