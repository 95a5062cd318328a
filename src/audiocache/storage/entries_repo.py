"""Audio cache entries: SQL Core queries shared by SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from audiocache.errors import Conflict, NotFound
from audiocache.models import Entry, EntryQuery, FilterClause
from audiocache.storage.db import Database, utcnow
from audiocache.storage.pending import queue_blob_deletes
from audiocache.storage.records import Record
from audiocache.storage.tables import agents, entries, phrase_requests

_SORT_COLUMNS = {
    "id": entries.c.id,
    "hit_count": entries.c.hit_count,
    "cached_at": entries.c.cached_at,
    "duration": entries.c.duration,
    "transcript": entries.c.transcript,
    "provider": entries.c.provider,
    "language_code": entries.c.language_code,
    "last_hit_at": entries.c.last_hit_at,
    "size_bytes": entries.c.size_bytes,
}


# The hot path's lookups, built once (building a statement costs more than running it).
_BY_ID = sa.select(entries).where(
    entries.c.id == sa.bindparam("entry_id"), entries.c.agent_id == sa.bindparam("agent_id")
)
_BY_KEY = sa.select(entries).where(
    entries.c.agent_id == sa.bindparam("agent_id"),
    entries.c.cache_key == sa.bindparam("cache_key"),
)
_IN_ACCOUNT = (
    sa.select(entries)
    .join(agents, agents.c.id == entries.c.agent_id)
    .where(
        entries.c.id == sa.bindparam("entry_id"),
        agents.c.public_id == sa.bindparam("agent_id"),
        agents.c.account_id == sa.bindparam("account_id"),
    )
)


class EntryRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, agent_id: str, entry_id: int) -> Entry | None:
        row = await self.db.first(_BY_ID, {"entry_id": entry_id, "agent_id": agent_id})
        return _to_entry(row) if row else None

    async def get_in_account(self, account_id: str, agent_id: str, entry_id: int) -> Entry | None:
        """One query for the hot download path: the entry, if its agent is the account's
        agent of that public id."""
        params = {"entry_id": entry_id, "agent_id": agent_id, "account_id": account_id}
        row = await self.db.first(_IN_ACCOUNT, params)
        return _to_entry(row) if row else None

    async def find_by_key(self, agent_id: str, cache_key: str) -> Entry | None:
        row = await self.db.first(_BY_KEY, {"agent_id": agent_id, "cache_key": cache_key})
        return _to_entry(row) if row else None

    async def find_page(self, agent_id: str, query: EntryQuery) -> tuple[list[Entry], int]:
        condition = sa.and_(entries.c.agent_id == agent_id, *map(_filter_sql, query.filters))
        order = [
            (_SORT_COLUMNS[key.field].desc() if key.descending else _SORT_COLUMNS[key.field].asc())
            for key in query.sort
        ]
        tiebreak = entries.c.id.desc() if query.sort and query.sort[-1].descending else entries.c.id
        select = (
            sa.select(entries)
            .where(condition)
            .order_by(*order, tiebreak)
            .limit(query.limit)
            .offset(query.offset)
        )
        count = sa.select(sa.func.count()).select_from(entries).where(condition)
        async with self.db.read() as conn:
            rows = (await conn.execute(select)).all()
            total = (await conn.execute(count)).scalar_one()
        return [_to_entry(row._mapping) for row in rows], total

    async def insert(
        self,
        values: Mapping[str, Any],
        before_commit: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[Entry, bool]:
        """Insert an entry; if its (agent, key) exists already, return that one and False.

        ``before_commit`` runs inside the write transaction, after the insert (the writer
        re-checks its blob there, where no sweep can unlink it before the row is visible).
        """
        row = _encode(values)
        row.setdefault("cached_at", utcnow())
        try:
            async with self.db.write() as conn:
                # The row as inserted, from the insert itself: read back after the commit,
                # a concurrent delete could already have taken it.
                result = await conn.execute(entries.insert().values(**row).returning(entries))
                inserted = result.one()._mapping
                await self.db.lock_blob(conn, row["blob_sha256"])
                if before_commit is not None:
                    await before_commit()
        except IntegrityError as exc:
            existing = await self.find_by_key(row["agent_id"], row["cache_key"])
            if existing is None:
                # Not a duplicate: the agent went away (deleted while this was synthesized).
                raise NotFound(f"Agent {row['agent_id']!r} no longer exists") from exc
            return existing, False
        return _to_entry(inserted), True

    async def update_audio(
        self,
        entry: Entry,
        values: Mapping[str, Any],
        before_commit: Callable[[], Awaitable[None]] | None = None,
    ) -> Entry:
        """Point the entry at new audio (and maybe new details); the old blob is queued.

        ``before_commit`` runs inside the write transaction, as for ``insert``."""
        row = _encode(values)
        try:
            async with self.db.write() as conn:
                result = await conn.execute(
                    entries.update()
                    .where(entries.c.id == entry.id, entries.c.agent_id == entry.agent_id)
                    .values(**row)
                )
                if result.rowcount and row.get("blob_sha256", entry.blob_sha256) != (
                    entry.blob_sha256
                ):
                    await queue_blob_deletes(conn, [entry.blob_sha256])
                if result.rowcount and "blob_sha256" in row:
                    await self.db.lock_blob(conn, row["blob_sha256"])
                if result.rowcount and before_commit is not None:
                    await before_commit()
        except IntegrityError as exc:
            raise Conflict(
                "Another entry of this agent already caches that text with these settings"
            ) from exc
        updated = await self.get(entry.agent_id, entry.id)
        if updated is None:
            raise NotFound("Audio cache entry not found")
        return updated

    async def set_pinned(self, entry: Entry, pinned: bool) -> Entry:
        async with self.db.write() as conn:
            await conn.execute(
                entries.update()
                .where(entries.c.id == entry.id, entries.c.agent_id == entry.agent_id)
                .values(pinned=pinned)
            )
        updated = await self.get(entry.agent_id, entry.id)
        if updated is None:
            raise NotFound("Audio cache entry not found")
        return updated

    async def delete(
        self, agent_id: str, entry_ids: list[int], *, evicting: bool = False
    ) -> list[int]:
        """Delete the given entries of the agent; returns the ids that existed and are gone.

        ``evicting``: only entries still evictable (one pinned or replaced by an upload
        since it was chosen stays), counted in the agent's ``evicted_total``."""
        if not entry_ids:
            return []
        condition = sa.and_(entries.c.agent_id == agent_id, entries.c.id.in_(entry_ids))
        if evicting:
            condition = sa.and_(
                condition, entries.c.pinned == sa.false(), entries.c.imported == sa.false()
            )
        async with self.db.write() as conn:
            found = (
                await conn.execute(sa.select(entries.c.id, entries.c.blob_sha256).where(condition))
            ).all()
            if found:
                await conn.execute(entries.delete().where(entries.c.id.in_([r.id for r in found])))
                await queue_blob_deletes(conn, [r.blob_sha256 for r in found])
            if found and evicting:
                await conn.execute(
                    agents.update()
                    .where(agents.c.id == agent_id)
                    .values(evicted_total=agents.c.evicted_total + len(found))
                )
        return [r.id for r in found]

    async def add_hits(self, counts: Mapping[int, int], at: datetime) -> None:
        if not counts:
            return
        statement = (
            entries.update()
            .where(entries.c.id == sa.bindparam("entry_id"))
            .values(hit_count=entries.c.hit_count + sa.bindparam("n"), last_hit_at=at)
        )
        async with self.db.write() as conn:
            await conn.execute(
                statement, [{"entry_id": k, "n": v} for k, v in sorted(counts.items())]
            )

    async def record_request(
        self, agent_id: str, cache_key: str, window_seconds: int, n: int = 1
    ) -> int:
        """Count n more requests for a phrase within its window; returns the count.

        One upsert: concurrent requests on several instances each add their n exactly."""
        now = utcnow()
        expired = phrase_requests.c.window_started_at < now - timedelta(seconds=window_seconds)
        insert = self.db.insert(phrase_requests).values(
            agent_id=agent_id, cache_key=cache_key, request_count=n, window_started_at=now
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[phrase_requests.c.agent_id, phrase_requests.c.cache_key],
            set_={
                "request_count": sa.case((expired, n), else_=phrase_requests.c.request_count + n),
                "window_started_at": sa.case(
                    (expired, now), else_=phrase_requests.c.window_started_at
                ),
            },
        ).returning(phrase_requests.c.request_count)
        async with self.db.write() as conn:
            return int((await conn.execute(upsert)).scalar_one())

    async def forget_request(self, agent_id: str, cache_key: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                phrase_requests.delete().where(
                    phrase_requests.c.agent_id == agent_id,
                    phrase_requests.c.cache_key == cache_key,
                )
            )

    async def count(self) -> int:
        async with self.db.read() as conn:
            return (
                await conn.execute(sa.select(sa.func.count()).select_from(entries))
            ).scalar_one()


def _filter_sql(clause: FilterClause) -> sa.ColumnElement[bool]:
    column = entries.c[clause.field]
    if clause.op == "contains":
        assert isinstance(clause.value, str)
        pattern = clause.value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return sa.func.lower(column).like(f"%{pattern.lower()}%", escape="\\")
    return column == clause.value


def _encode(values: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(values)
    if "config" in row:
        row["config_json"] = json.dumps(row.pop("config"), sort_keys=True)
    return row


def _to_entry(row: Record) -> Entry:
    data = dict(row)
    data["config"] = json.loads(data.pop("config_json") or "{}")
    return Entry(**data)


async def copy_entries(
    conn: AsyncConnection, source_agent: str, target_agent: str, rekey: Callable[[Entry], str]
) -> int:
    """Copy every entry of one agent to another inside the caller's transaction; the copies
    share the blobs (content addressed) and start with no hits. Returns how many."""
    rows = (await conn.execute(sa.select(entries).where(entries.c.agent_id == source_agent))).all()
    copies = []
    for row in rows:
        values = dict(row._mapping)
        values.pop("id")
        values.update(
            agent_id=target_agent,
            cache_key=rekey(_to_entry(row._mapping)),
            hit_count=0,
            last_hit_at=None,
        )
        copies.append(values)
    if copies:
        await conn.execute(entries.insert(), copies)
    return len(copies)
