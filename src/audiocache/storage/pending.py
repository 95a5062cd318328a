"""The pending-deletes queue: a blob hash is queued in the same transaction that drops its
last reference, so a crash between commit and unlink leaves a record for the sweeper."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from audiocache.storage.db import utcnow
from audiocache.storage.tables import pending_blob_deletes


async def queue_blob_deletes(conn: AsyncConnection, shas: Iterable[str]) -> None:
    unique = sorted(set(shas))
    if not unique:
        return
    existing = set(
        (
            await conn.execute(
                sa.select(pending_blob_deletes.c.sha256).where(
                    pending_blob_deletes.c.sha256.in_(unique)
                )
            )
        ).scalars()
    )
    now = utcnow()
    rows = [{"sha256": sha, "queued_at": now} for sha in unique if sha not in existing]
    if rows:
        await conn.execute(pending_blob_deletes.insert(), rows)
