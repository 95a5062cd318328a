"""Audio cache entries: SQL Core queries shared by SQLite and PostgreSQL."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from audiocache.errors import Conflict, NotFound, UnknownTake
from audiocache.models import Entry, EntryQuery, FilterClause, SortKey
from audiocache.storage.db import Database, utcnow
from audiocache.storage.pending import queue_blob_deletes
from audiocache.storage.records import Record
from audiocache.storage.tables import (
    TRANSCRIPT_PREFIX,
    agent_usage,
    agents,
    entries,
    phrase_requests,
    transcript_sort_key,
)
from audiocache.storage.takes_repo import TakeChange, TakeNotFound, drop_takes, push_take
from audiocache.storage.transcript_order import anchored_page_ids, transcript_order
from audiocache.storage.usage import add_usage

# SQLite's FTS5 trigram index of transcripts (migration 0005): rowid is the entry id.
_FTS = sa.table("audio_cache_entries_fts", sa.column("rowid", sa.Integer), sa.column("transcript"))

# Each matches an index (agent_id, <key>, id). Transcripts sort by the whole text, read
# from the index of their stored prefix (storage/transcript_order.py).
_SORT_KEYS: dict[str, sa.ColumnElement[Any]] = {
    "id": entries.c.id,
    "hit_count": entries.c.hit_count,
    "cached_at": entries.c.cached_at,
    "duration": entries.c.duration,
    "provider": entries.c.provider,
    "language_code": entries.c.language_code,
    "last_hit_at": entries.c.last_hit_at,
    "size_bytes": entries.c.size_bytes,
    "provider_voice_id": entries.c.provider_voice_id,
}


# The hot path's lookups, built once (building a statement costs more than running it).
_BY_ID = sa.select(entries).where(
    entries.c.id == sa.bindparam("entry_id"), entries.c.agent_id == sa.bindparam("agent_id")
)
_BY_KEY = sa.select(entries).where(
    entries.c.agent_id == sa.bindparam("agent_id"),
    entries.c.cache_key == sa.bindparam("cache_key"),
)
# Exports walk an agent's entries in id order, a page at a time (the primary key's order).
_AFTER = (
    sa.select(entries)
    .where(entries.c.agent_id == sa.bindparam("agent_id"), entries.c.id > sa.bindparam("after"))
    .order_by(entries.c.id)
    .limit(sa.bindparam("limit", type_=sa.Integer))
)
# Takes uploads find entries by their text and voice; the transcript prefix index selects.
_WITH_TEXT = (
    sa.select(entries)
    .where(
        entries.c.agent_id == sa.bindparam("agent_id"),
        transcript_sort_key == sa.bindparam("prefix", type_=sa.Text),
        entries.c.transcript == sa.bindparam("text", type_=sa.Text),
        entries.c.provider == sa.bindparam("provider"),
        entries.c.provider_voice_id == sa.bindparam("voice"),
        entries.c.language_code == sa.bindparam("language"),
    )
    .order_by(entries.c.id)
    .limit(sa.bindparam("limit", type_=sa.Integer))
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
    def __init__(self, db: Database, *, history_limit: int = 0) -> None:
        self.db = db
        self.history_limit = history_limit  # earlier takes kept per entry (takes_repo.py)

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

    async def page_after(self, agent_id: str, after_id: int, limit: int) -> list[Entry]:
        """The agent's entries with ids above ``after_id``, in id order (an export's walk)."""
        params = {"agent_id": agent_id, "after": after_id, "limit": limit}
        return [_to_entry(row) for row in await self.db.all(_AFTER, params)]

    async def with_text(
        self, agent_id: str, text: str, provider: str, voice: str, language: str, limit: int
    ) -> list[Entry]:
        """The agent's entries of exactly this transcript in this voice and language (any
        tuning), oldest first."""
        params = {
            "agent_id": agent_id,
            "prefix": text[:TRANSCRIPT_PREFIX],
            "text": text,
            "provider": provider,
            "voice": voice,
            "language": language,
            "limit": limit,
        }
        return [_to_entry(row) for row in await self.db.all(_WITH_TEXT, params)]

    async def find_page(self, agent_id: str, query: EntryQuery) -> tuple[list[Entry], int]:
        """One page in the query's order and the exact number of entries it selects, in
        one statement (one round trip, prepared once per connection by the point reader).

        The page's ids come from the sort order's index alone (at offset 10,000 only ids
        are skipped, not rows), then their rows are joined; the total rides along on each
        row: the agent's usage counter when unfiltered, the matches' window count when a
        search index selects them, else a count through the indexes. An empty page has no
        row to carry it: then the count is a second statement."""
        shape = _shape(_shape_key(query), self.db.engine.dialect.name)
        params = _params(agent_id, query)
        rows = await self.db.all(shape.page, params)
        if rows:
            total = int(rows[0]["total"])
        elif query.offset == 0 and any(_searches(c) for c in query.filters):
            total = 0
        else:
            counted = await self.db.first(shape.count, params)
            total = int(counted["total"]) if counted else 0
        return [_to_entry(row) for row in rows], total

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

        async def work(conn: AsyncConnection) -> Record:
            # The row as inserted, from the insert itself: read back after the commit,
            # a concurrent delete could already have taken it.
            result = await conn.execute(entries.insert().values(**row).returning(entries))
            inserted: Record = result.one()._mapping
            await self.db.lock_blob(conn, row["blob_sha256"])
            if before_commit is not None:
                await before_commit()
            # Last: on PostgreSQL the counter row stays locked until the commit.
            await add_usage(conn, inserted["agent_id"], 1, inserted["size_bytes"])
            return inserted

        try:
            inserted = await self.db.write_retrying(work)
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
        history: TakeChange | None = None,
    ) -> tuple[Entry, list[str]]:
        """Point the entry at new audio (and maybe new details); the old blob is queued.

        With ``history`` the take being replaced goes into the entry's history in the same
        transaction (takes_repo.py). Returns the entry and the blob hashes queued for the
        sweep. ``before_commit`` runs inside the write transaction, as for ``insert``."""
        row = _encode(values)

        async def work(conn: AsyncConnection) -> list[str]:
            released: list[str] = []
            # The row as stored now (the caller's copy may be stale); FOR UPDATE makes a
            # concurrent replacement wait on PostgreSQL (SQLite has one writer anyway).
            current = (
                await conn.execute(
                    sa.select(entries)
                    .where(entries.c.id == entry.id, entries.c.agent_id == entry.agent_id)
                    .with_for_update()
                )
            ).first()
            result = await conn.execute(
                entries.update()
                .where(entries.c.id == entry.id, entries.c.agent_id == entry.agent_id)
                .values(**row)
            )
            if not result.rowcount or current is None:
                return released
            # The blobs' locks before the usage counter, in hash order, as an insert takes
            # its blob's lock before the counter: else an insert of the same audio and this
            # replace each hold what the other waits for. The take leaving keeps its blob
            # referenced, so it is locked like the new one (a sweep checking it waits).
            blobs = {row["blob_sha256"]} if "blob_sha256" in row else set()
            if history is not None:
                blobs.add(current.blob_sha256)
            for sha in sorted(blobs):
                await self.db.lock_blob(conn, sha)
            if "size_bytes" in row:
                await add_usage(conn, entry.agent_id, 0, row["size_bytes"] - current.size_bytes)
            if history is not None:
                released += await push_take(
                    conn, current._mapping, history, self.history_limit, queue=False
                )
            if row.get("blob_sha256", entry.blob_sha256) != entry.blob_sha256:
                released.append(entry.blob_sha256)
            await queue_blob_deletes(conn, released)  # once: the queue's rows in hash order
            if before_commit is not None:
                await before_commit()
            return released

        try:
            released = await self.db.write_retrying(work)
        except IntegrityError as exc:
            raise Conflict(
                "Another entry of this agent already caches that text with these settings"
            ) from exc
        except TakeNotFound as exc:
            raise UnknownTake("Take not found: restored or trimmed meanwhile") from exc
        updated = await self.get(entry.agent_id, entry.id)
        if updated is None:
            raise NotFound("Audio cache entry not found")
        return updated, released

    async def set_pinned(self, entry: Entry, pinned: bool) -> Entry:
        return await self.set_flags(entry, pinned=pinned)

    async def set_flags(self, entry: Entry, **flags: bool) -> Entry:
        """Set ``pinned`` and/or ``warmed``; the entry as stored afterwards."""
        async with self.db.write() as conn:
            await conn.execute(
                entries.update()
                .where(entries.c.id == entry.id, entries.c.agent_id == entry.agent_id)
                .values(**flags)
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

        async def work(conn: AsyncConnection) -> list[Any]:
            if evicting:  # the agent's row before its entries, as an agent's delete does
                await conn.execute(
                    sa.select(agents.c.id)
                    .where(agents.c.id == agent_id)
                    .with_for_update(key_share=True)
                )
            # Rows locked in id order (PostgreSQL; hit flushes lock in it too), not in
            # whatever index order the planner scans the delete by: two deletes, or a
            # delete and a hit flush, never hold each other's next row. A concurrent delete
            # of the same id waits here, then finds nothing.
            locked = list(
                (
                    await conn.execute(
                        sa.select(entries.c.id)
                        .where(condition)
                        .order_by(entries.c.id)
                        .with_for_update()
                    )
                ).scalars()
            )
            if not locked:
                return []
            gone = (
                await conn.execute(
                    entries.delete()
                    .where(entries.c.agent_id == agent_id, entries.c.id.in_(locked))
                    .returning(entries.c.id, entries.c.blob_sha256, entries.c.size_bytes)
                )
            ).all()
            if gone:
                await add_usage(conn, agent_id, -len(gone), -sum(r.size_bytes for r in gone))
                shas = [r.blob_sha256 for r in gone]
                shas += await drop_takes(conn, entry_ids=[r.id for r in gone], queue=False)
                await queue_blob_deletes(conn, shas)  # once: the queue's rows in hash order
            if gone and evicting:
                await conn.execute(
                    agents.update()
                    .where(agents.c.id == agent_id)
                    .values(evicted_total=agents.c.evicted_total + len(gone))
                )
            return list(gone)

        gone = await self.db.write_retrying(work)
        return sorted(r.id for r in gone)

    async def add_hits(self, counts: Mapping[int, int], at: datetime) -> None:
        if not counts:
            return
        statement = (
            entries.update()
            .where(entries.c.id == sa.bindparam("entry_id"))
            .values(hit_count=entries.c.hit_count + sa.bindparam("n"), last_hit_at=at)
        )
        # In id order: the order every writer locks entry rows in (``dialects.py``).
        params = [{"entry_id": k, "n": v} for k, v in sorted(counts.items())]

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(statement, params)

        await self.db.write_retrying(work)

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


@dataclass(frozen=True)
class _Shape:
    """A list query's statements for one shape (sort keys, filtered fields and ops), its
    values left as parameters: built and compiled once, prepared once per connection."""

    ids: sa.Select[Any]  # the page's ids in order (and ``total`` when a search selects)
    page: sa.Select[Any]  # the page's rows in order, each with ``total``
    count: sa.Select[Any]  # ``total`` alone (for an empty page)


_ShapeKey = tuple[tuple[SortKey, ...], tuple[tuple[str, str, bool], ...]]


def _shape_key(query: EntryQuery) -> _ShapeKey:
    return query.sort, tuple((c.field, c.op, _searches(c)) for c in query.filters)


def _params(agent_id: str, query: EntryQuery) -> dict[str, Any]:
    params: dict[str, Any] = {"agent_id": agent_id, "limit": query.limit, "offset": query.offset}
    for i, clause in enumerate(query.filters):
        if clause.op == "contains":
            assert isinstance(clause.value, str)
            params[f"v{i}"] = _like_pattern(clause.value)
            params[f"fts{i}"] = _fts_phrase(clause.value)
        else:
            params[f"v{i}"] = clause.value
    return params


@functools.lru_cache(maxsize=256)  # shapes are few: sort keys by filtered fields
def _shape(key: _ShapeKey, dialect: str) -> _Shape:
    sort, filters = key
    searched = any(s for _f, _o, s in filters)
    condition = sa.and_(
        _agent_sql(searched, dialect),
        *(_filter_sql(i, field, op, s, dialect) for i, (field, op, s) in enumerate(filters)),
    )
    order = [term for k in sort for term in _order_terms(k, dialect)]
    tiebreak = entries.c.id.desc() if sort and sort[-1].descending else entries.c.id
    ids: sa.Select[Any]
    if len(sort) == 1 and sort[0].field == "transcript" and not searched:
        ids = anchored_page_ids(condition, sort[0].descending, dialect)
    else:
        ids = (
            sa.select(entries.c.id)
            .where(condition)
            .order_by(*order, tiebreak)
            .limit(sa.bindparam("limit", type_=sa.Integer))
            .offset(sa.bindparam("offset", type_=sa.Integer))
        )
    counted = sa.select(sa.func.count()).select_from(entries).where(condition).scalar_subquery()
    total: sa.ColumnElement[Any] = counted
    if not filters:
        # The agent's usage counter (exact, kept with the rows); an agent without one is
        # counted (the planner runs the count only if the counter is missing).
        counter = (
            sa.select(agent_usage.c.entry_count)
            .where(agent_usage.c.agent_id == sa.bindparam("agent_id", type_=sa.String))
            .scalar_subquery()
        )
        total = sa.func.coalesce(counter, counted)
    if searched:
        # The matches drive the plan (a search index): counting them in the same pass
        # that sorts them costs one walk over them instead of two.
        ids = ids.add_columns(sa.func.count().over().label("total"))
    page_ids = ids.subquery("page")
    page = (
        sa.select(*entries.c, (page_ids.c.total if searched else total).label("total"))
        .join_from(entries, page_ids, page_ids.c.id == entries.c.id)
        .order_by(*order, tiebreak)
    )
    return _Shape(ids, page, sa.select(total.label("total")))


def _order_terms(key: SortKey, dialect: str) -> list[sa.ColumnElement[Any]]:
    if key.field == "transcript":
        return transcript_order(key.descending, dialect)
    column = _SORT_KEYS[key.field]
    return [column.desc() if key.descending else column.asc()]


def list_statements(
    agent_id: str, query: EntryQuery, dialect: str
) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """The page's ids and the count of what the query selects, with the query's values
    bound (to look at their plans)."""
    shape = _shape(_shape_key(query), dialect)
    params = _params(agent_id, query)
    return shape.ids.params(params), shape.count.params(params)


def _agent_sql(searched: bool, dialect: str) -> sa.ColumnElement[bool]:
    """The agent's rows. When the FTS index selects them, SQLite's unary ``+`` keeps its
    planner from walking the agent's whole index instead and probing each id against the
    matches: the matches (few) drive, looked up by id, whatever the sort."""
    agent_id = sa.bindparam("agent_id", type_=sa.String)
    if dialect == "sqlite" and searched:
        return sa.literal_column(f"+{entries.name}.agent_id", sa.String) == agent_id
    return entries.c.agent_id == agent_id


def _searches(clause: FilterClause) -> bool:
    """A contains filter the trigram indexes answer (three characters make a trigram)."""
    return clause.op == "contains" and isinstance(clause.value, str) and len(clause.value) >= 3


def _filter_sql(
    i: int, field: str, op: str, searched: bool, dialect: str
) -> sa.ColumnElement[bool]:
    column = entries.c[field]
    if op == "contains":
        return _contains(
            sa.bindparam(f"v{i}", type_=sa.String),
            sa.bindparam(f"fts{i}", type_=sa.String),
            searched,
            dialect,
        )
    return column == sa.bindparam(f"v{i}", type_=column.type)


def contains_sql(value: str, dialect: str) -> sa.ColumnElement[bool]:
    """``transcript contains value``: case-insensitive as far as the database's lower()
    folds case (SQLite: ASCII letters), with %, _ and backslashes taken literally.

    The LIKE is what decides. On PostgreSQL a pg_trgm index answers it; on SQLite the FTS5
    trigram index first narrows the rows to those holding the text's trigrams (it folds
    case at least as widely as lower(), so it never drops a match), for texts of three
    characters or more — shorter ones have no trigram and scan the agent's rows."""
    searched = _searches(FilterClause("transcript", "contains", value))
    return _contains(
        sa.literal(_like_pattern(value)), sa.literal(_fts_phrase(value)), searched, dialect
    )


def _contains(
    pattern: sa.ColumnElement[str], phrase: sa.ColumnElement[str], searched: bool, dialect: str
) -> sa.ColumnElement[bool]:
    # lower() on both sides in SQL: Python's lower() folds more than SQLite's (ASCII only),
    # so a pattern lowered here missed its own text ("É" did not find "É").
    like = sa.func.lower(entries.c.transcript).like(sa.func.lower(pattern), escape="\\")
    if dialect != "sqlite" or not searched:
        return like
    candidates = sa.select(_FTS.c.rowid).where(_FTS.c.transcript.op("MATCH")(phrase))
    return sa.and_(entries.c.id.in_(candidates), like)


def _like_pattern(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _fts_phrase(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _encode(values: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(values)
    if "config" in row:
        row["config_json"] = json.dumps(row.pop("config"), sort_keys=True)
    return row


def _to_entry(row: Record) -> Entry:
    data = dict(row)
    data.pop("total", None)  # a list page's rows carry it
    data.pop("transcript_sort", None)  # the database's sort key (transcript_order.py)
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
        values.pop("transcript_sort")  # generated by the database
        values.update(
            agent_id=target_agent,
            cache_key=rekey(_to_entry(row._mapping)),
            hit_count=0,
            last_hit_at=None,
        )
        copies.append(values)
    if copies:
        await conn.execute(entries.insert(), copies)
        await add_usage(conn, target_agent, len(copies), sum(c["size_bytes"] for c in copies))
    return len(copies)
