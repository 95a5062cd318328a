"""The queries eviction needs: usage, and candidates in policy order (never all rows).

Usage is an aggregate over ``audio_cache_entries`` (indexed by agent); a per-agent counters
table, once there, should answer ``usage`` instead.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from audiocache.models import Agent, Candidate, Limits, Usage
from audiocache.storage.db import Database
from audiocache.storage.tables import agents, entries

_LAST_USED = sa.func.coalesce(entries.c.last_hit_at, entries.c.cached_at)
_EVICTABLE = sa.and_(entries.c.pinned == sa.false(), entries.c.imported == sa.false())
_FIELDS = (
    entries.c.id,
    entries.c.agent_id,
    entries.c.size_bytes,
    entries.c.hit_count,
    entries.c.cached_at,
    entries.c.last_hit_at,
)


class EvictionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def usage(self, agent_id: str | None) -> Usage:
        """Entries and bytes of one agent (None: of the whole installation), pinned and
        imported included."""
        query = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(entries.c.size_bytes), 0))
        if agent_id is not None:
            query = query.where(entries.c.agent_id == agent_id)
        async with self.db.read() as conn:
            count, size = (await conn.execute(query)).one()
        return Usage(int(count), int(size))

    async def candidates(
        self, agent_id: str | None, limits: Limits, now: datetime, limit: int
    ) -> list[Candidate]:
        """Up to ``limit`` evictable entries, expired first, then in the policy's order
        (the order of ``eviction.sort_key``)."""
        order: list[sa.ColumnElement[object]] = []
        if limits.ttls:
            expired = sa.or_(
                *(_since(t.since) <= now - timedelta(seconds=t.seconds) for t in limits.ttls)
            )
            order.append(sa.case((expired, 0), else_=1))
        if limits.policy == "lfu":
            order.append(entries.c.hit_count)
        order += [_LAST_USED, entries.c.id]
        query = sa.select(*_FIELDS).where(_EVICTABLE).order_by(*order).limit(limit)
        if agent_id is not None:
            query = query.where(entries.c.agent_id == agent_id)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [Candidate(**row._mapping) for row in rows]

    async def agents(self) -> list[Agent]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(agents).order_by(agents.c.id))).all()
        return [Agent(**row._mapping) for row in rows]


def _since(since: str) -> sa.ColumnElement[datetime]:
    return entries.c.cached_at if since == "cached" else _LAST_USED
