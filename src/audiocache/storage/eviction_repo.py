"""The queries eviction needs: usage, and candidates in policy order (never all rows).

Usage is read from the per-agent counters (``storage/usage.py``): one row per agent, the
installation's total a sum over those rows. Candidates are read from indexes in the order
they are wanted, so choosing a batch reads the batch, whatever the agent's size: each TTL's
expired entries through the index of its column (``cached_at``, or ``last used`` =
coalesce(last_hit_at, cached_at)), then the policy's order through its own index (lru:
last used; lfu: hit count, then last used), per agent and across agents (migration 0015).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from audiocache.models import Agent, Candidate, Limits, Usage
from audiocache.storage.db import Database
from audiocache.storage.tables import LAST_USED, agent_usage, agents, entries
from audiocache.storage.usage import read_usage

_EVICTABLE = sa.and_(entries.c.pinned == sa.false(), entries.c.imported == sa.false())
_FIELDS = (
    entries.c.id,
    entries.c.agent_id,
    entries.c.size_bytes,
    entries.c.hit_count,
    entries.c.cached_at,
    entries.c.last_hit_at,
)
_TOTALS = sa.select(
    sa.func.coalesce(sa.func.sum(agent_usage.c.entry_count), 0),
    sa.func.coalesce(sa.func.sum(agent_usage.c.total_bytes), 0),
)


def candidate_statements(
    agent_id: str | None, limits: Limits, now: datetime, limit: int
) -> list[sa.Select[tuple[object, ...]]]:
    """Expired entries of each TTL, then the policy's order; each read from an index and
    stopped after ``limit`` rows."""

    def ordered(*order: sa.ColumnElement[object]) -> sa.Select[tuple[object, ...]]:
        query = sa.select(*_FIELDS).where(_EVICTABLE)
        if agent_id is not None:
            query = query.where(entries.c.agent_id == agent_id)
        return query.order_by(*order, entries.c.id).limit(limit)

    statements = []
    for ttl in limits.ttls:
        since = entries.c.cached_at if ttl.since == "cached" else LAST_USED
        cutoff = now - timedelta(seconds=ttl.seconds)
        statements.append(ordered(since).where(since <= cutoff))
    if limits.policy == "lfu":
        statements.append(ordered(entries.c.hit_count, LAST_USED))
    else:
        statements.append(ordered(LAST_USED))
    return statements


class EvictionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def usage(self, agent_id: str | None) -> Usage:
        """Entries and bytes of one agent (None: of the whole installation), pinned and
        imported included, from the usage counters."""
        async with self.db.read() as conn:
            if agent_id is None:
                count, size = (await conn.execute(_TOTALS)).one()
                return Usage(int(count), int(size))
            counted = await read_usage(conn, agent_id)
            if counted is not None:
                return Usage(counted.entries, counted.bytes)
            # No counters (an agent deleted meanwhile): counted row by row.
            query = sa.select(
                sa.func.count(), sa.func.coalesce(sa.func.sum(entries.c.size_bytes), 0)
            ).where(entries.c.agent_id == agent_id)
            count, size = (await conn.execute(query)).one()
        return Usage(int(count), int(size))

    async def candidates(
        self, agent_id: str | None, limits: Limits, now: datetime, limit: int
    ) -> list[Candidate]:
        """Up to ``limit`` evictable entries, expired first, then in the policy's order
        (the order of ``eviction.sort_key``)."""
        found: dict[int, Candidate] = {}
        async with self.db.read() as conn:
            for statement in candidate_statements(agent_id, limits, now, limit):
                for row in (await conn.execute(statement)).all():
                    found.setdefault(row.id, Candidate(**row._mapping))
                if len(found) >= limit:
                    break
        chosen = list(found.values())[:limit]
        expired = [c for c in chosen if _expired(c, limits, now)]
        return expired + [c for c in chosen if not _expired(c, limits, now)]

    async def agents(self) -> list[Agent]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(agents).order_by(agents.c.id))).all()
        return [Agent(**row._mapping) for row in rows]


def _expired(candidate: Candidate, limits: Limits, now: datetime) -> bool:
    """``eviction.expired``, which this layer cannot import."""
    for ttl in limits.ttls:
        since = candidate.cached_at if ttl.since == "cached" else candidate.last_used
        if since <= now - timedelta(seconds=ttl.seconds):
            return True
    return False
