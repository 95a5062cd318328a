"""Earlier takes of entries: pushed and trimmed inside the entry's own write transaction.

A take is a blob reference like an entry's (``references.py``): gc and ``check`` know it,
and a take dropped from the history queues its blob through ``pending.py`` like a delete.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from audiocache.models import Take
from audiocache.storage.db import Database, utcnow
from audiocache.storage.pending import queue_blob_deletes
from audiocache.storage.records import Record
from audiocache.storage.tables import takes

REASONS = ("replace", "replace_with_settings", "regenerate", "restore")
# What a take keeps of the entry it leaves, and gives back when restored.
TAKE_FIELDS = (
    "blob_sha256",
    "size_bytes",
    "duration",
    "cache_key",
    "transcript",
    "provider",
    "provider_voice_id",
    "language_code",
    "model",
    "config_json",
    "regenerated",
    "imported",
    "audio_filename",
)


@dataclass(frozen=True)
class TakeChange:
    """Why an entry's audio changes: its current take goes into the history with this
    reason; ``restoring`` is the take that becomes current (it leaves the history)."""

    reason: str
    restoring: int | None = None


class TakeNotFound(LookupError):
    """The take to restore went away (restored or trimmed by a concurrent write)."""


async def push_take(
    conn: AsyncConnection, current: Record, change: TakeChange, keep: int, *, queue: bool = True
) -> list[str]:
    """Inside the entry's write transaction: the entry's current take (``current``, its row
    as locked) goes into the history, the take being restored leaves it, and the oldest
    beyond ``keep`` are dropped. Returns the blob hashes queued for collection (with
    ``queue=False``, for the caller to queue with its own, as ``drop_takes``)."""
    entry_id = current["id"]
    if change.restoring is not None:
        gone = await conn.execute(
            takes.delete().where(takes.c.id == change.restoring, takes.c.entry_id == entry_id)
        )
        if not gone.rowcount:
            raise TakeNotFound(change.restoring)
    if keep <= 0:
        return []
    await conn.execute(
        takes.insert().values(
            entry_id=entry_id,
            agent_id=current["agent_id"],
            created_at=utcnow(),
            reason=change.reason,
            **{name: current[name] for name in TAKE_FIELDS},
        )
    )
    overflow = (
        sa.select(takes.c.id)
        .where(takes.c.entry_id == entry_id)
        .order_by(takes.c.id.desc())
        .offset(keep)
        .scalar_subquery()
    )
    dropped = list(
        (
            await conn.execute(
                takes.delete()
                .where(takes.c.entry_id == entry_id, takes.c.id.in_(overflow))
                .returning(takes.c.blob_sha256)
            )
        ).scalars()
    )
    if queue:
        await queue_blob_deletes(conn, dropped)
    return dropped


async def drop_takes(
    conn: AsyncConnection,
    *,
    entry_ids: Iterable[int] = (),
    agent_id: str | None = None,
    queue: bool = True,
) -> list[str]:
    """Delete the takes of these entries (or of the whole agent) and queue their blobs; run
    after the entries' own delete, in its transaction, so a take pushed by a replace that
    committed first is seen and goes too. ``queue=False``: the caller queues the returned
    hashes with its own, in one call (the queue's rows are then locked in one order)."""
    condition: sa.ColumnElement[bool]
    if agent_id is not None:
        condition = takes.c.agent_id == agent_id
    else:
        ids = sorted(set(entry_ids))
        if not ids:
            return []
        condition = takes.c.entry_id.in_(ids)
    shas = list(
        (
            await conn.execute(takes.delete().where(condition).returning(takes.c.blob_sha256))
        ).scalars()
    )
    if queue:
        await queue_blob_deletes(conn, shas)
    return shas


class TakeRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def of_entry(self, agent_id: str, entry_id: int) -> list[Take]:
        """Newest first (ids only grow)."""
        query = (
            sa.select(takes)
            .where(takes.c.entry_id == entry_id, takes.c.agent_id == agent_id)
            .order_by(takes.c.id.desc())
        )
        async with self.db.read() as conn:
            return [to_take(row._mapping) for row in await conn.execute(query)]

    async def get(self, agent_id: str, entry_id: int, take_id: int) -> Take | None:
        query = sa.select(takes).where(
            takes.c.id == take_id, takes.c.entry_id == entry_id, takes.c.agent_id == agent_id
        )
        row = await self.db.first(query)
        return to_take(row) if row else None


def restored_values(take: Take) -> dict[str, Any]:
    """The entry's columns a restore writes back: the take's audio and details."""
    return {
        "blob_sha256": take.blob_sha256,
        "size_bytes": take.size_bytes,
        "duration": take.duration,
        "cache_key": take.cache_key,
        "transcript": take.transcript,
        "provider": take.provider,
        "provider_voice_id": take.provider_voice_id,
        "language_code": take.language_code,
        "model": take.model,
        "config": take.config,
        "regenerated": take.regenerated,
        "imported": take.imported,
        "audio_filename": take.audio_filename,
    }


def to_take(row: Record) -> Take:
    data = dict(row)
    data["config"] = json.loads(data.pop("config_json") or "{}")
    return Take(**data)
