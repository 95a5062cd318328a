"""Lookup counts in SQL: hourly rows (``lookup_stats``) and all-time ones (``lookup_totals``).

A batch is one transaction of upserts that add to what is stored, so any number of
processes and instances flushing at once add up exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from audiocache.storage.db import Database
from audiocache.storage.tables import entries, lookup_stats, lookup_totals
from audiocache.storage.usage import Usage, read_usage

RETAINED_HOURS = 31 * 24  # hourly rows older than this are deleted (the month window is 30 days)


@dataclass
class Counts:
    """What one (agent, hour, provider) adds up; also the all-time totals' shape."""

    lookups: int = 0
    hits: int = 0
    lookup_chars: int = 0
    hit_chars: int = 0
    syntheses: int = 0
    synthesis_chars: int = 0
    synthesis_seconds: float = 0.0
    privacy_skipped: int = 0

    def add(self, other: Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_values(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


Key = tuple[str, datetime, str]  # agent id, start of the hour (naive UTC), provider


def hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


COUNT_NAMES = tuple(f.name for f in fields(Counts))


class LookupRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._pruned_hour: datetime | None = None

    async def add(self, batch: Mapping[Key, Counts]) -> None:
        if not batch:
            return
        totals: dict[tuple[str, str], Counts] = {}
        for (agent_id, _hour, provider), counts in batch.items():
            totals.setdefault((agent_id, provider), Counts()).add(counts)
        async with self.db.write() as conn:
            for (agent_id, hour, provider), counts in sorted(batch.items()):
                await conn.execute(
                    self._upsert(lookup_stats, ("agent_id", "hour", "provider")),
                    {"agent_id": agent_id, "hour": hour, "provider": provider} | counts.as_values(),
                )
            for (agent_id, provider), counts in sorted(totals.items()):
                await conn.execute(
                    self._upsert(lookup_totals, ("agent_id", "provider")),
                    {"agent_id": agent_id, "provider": provider} | counts.as_values(),
                )
            newest = max(hour for _agent, hour, _provider in batch)
            if self._pruned_hour != newest:  # once an hour per process is enough
                await conn.execute(
                    lookup_stats.delete().where(
                        lookup_stats.c.hour < newest - timedelta(hours=RETAINED_HOURS)
                    )
                )
                self._pruned_hour = newest

    def _upsert(self, table: sa.Table, keys: tuple[str, ...]) -> sa.Executable:
        insert = self.db.insert(table)
        statement: sa.Executable = insert.on_conflict_do_update(
            index_elements=[table.c[k] for k in keys],
            set_={name: table.c[name] + insert.excluded[name] for name in COUNT_NAMES},
        )
        return statement

    async def window(self, agent_id: str, since: datetime) -> Counts:
        """Summed counts of the agent's hours from ``since``'s hour on."""
        columns = [sa.func.coalesce(sa.func.sum(lookup_stats.c[n]), 0) for n in COUNT_NAMES]
        query = sa.select(*columns).where(
            lookup_stats.c.agent_id == agent_id, lookup_stats.c.hour >= hour_of(since)
        )
        async with self.db.read() as conn:
            row = (await conn.execute(query)).one()
        return _counts(row)

    async def totals(self, agent_id: str) -> dict[str, Counts]:
        """All-time counts of the agent, by provider."""
        query = sa.select(lookup_totals).where(lookup_totals.c.agent_id == agent_id)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return {row.provider: _counts([row._mapping[n] for n in COUNT_NAMES]) for row in rows}

    async def usage(self, agent_id: str) -> tuple[Usage, int]:
        """Entries and bytes from the usage counters, and the pinned count (a partial index)."""
        pinned = sa.select(sa.func.count()).where(entries.c.agent_id == agent_id, entries.c.pinned)
        async with self.db.read() as conn:
            usage = await read_usage(conn, agent_id) or Usage(0, 0)
            return usage, int(await conn.scalar(pinned) or 0)

    async def top_phrases(self, agent_id: str, limit: int) -> list[tuple[int, str, int]]:
        """(id, transcript, hit count) of the most hit entries, read in index order."""
        query = (
            sa.select(entries.c.id, entries.c.transcript, entries.c.hit_count)
            .where(entries.c.agent_id == agent_id)
            .order_by(entries.c.hit_count.desc(), entries.c.id.desc())
            .limit(limit)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [(int(r.id), str(r.transcript), int(r.hit_count)) for r in rows]


def _counts(values: Sequence[Any]) -> Counts:
    parsed = dict(zip(COUNT_NAMES, values, strict=True))
    return Counts(
        **{name: int(value or 0) for name, value in parsed.items() if name != "synthesis_seconds"},
        synthesis_seconds=float(parsed["synthesis_seconds"] or 0.0),
    )
