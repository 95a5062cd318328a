"""The list page in one statement: one round trip on PostgreSQL (through the point reader's
prepared statements, none through SQLAlchemy), and the same pages and exact totals as the
previous path (page ids, then their rows, then the count, each through SQLAlchemy) for
every sort, filter and offset, with ties, NULLs and non-ASCII transcripts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from support import Api

from audiocache.cache.query import SORT_FIELDS, parse_filters
from audiocache.models import Entry, EntryQuery, SortKey
from audiocache.storage.entries_repo import EntryRepository, list_statements
from audiocache.storage.tables import entries
from audiocache.storage.usage import add_usage

AGENT = "trip-agent"
FIELDS = sorted(set(SORT_FIELDS.values()))
N = 300
FILTERS = (
    None,
    "provider:eq:piper",
    "transcript:contains:ördér",  # non-ASCII, searched (trigrams)
    "transcript:contains:Zü",  # under three characters: scanned
    "transcript:contains:order and pinned:eq:true",
    "transcript:contains:no such words",
)


def _transcript(n: int) -> str:
    if n % 5 == 0:
        return f"Ihre Ördér-Nummer {n % 17}"  # repeated texts: ties on transcript
    if n % 7 == 0:
        return f"Zürich order {n}"
    return f"phrase {n:04d} ördér" if n % 3 == 0 else f"Phrase {n}"


@pytest.fixture
async def agent(api: Api) -> str:
    await api.create_agent(AGENT)
    base = datetime(2026, 1, 1)
    rows = [
        {
            "agent_id": AGENT,
            "cache_key": f"{n:064d}",
            "transcript": _transcript(n),
            "provider": ("espeak", "piper", "fake")[n % 3],
            "provider_voice_id": "alpha",
            "language_code": ("en", "de", "")[n % 4 % 3],
            "blob_sha256": f"{n % 11:064d}",
            "size_bytes": 100 + n % 13,
            "duration": float(n % 9) / 2,
            "hit_count": n % 4,
            "cached_at": base + timedelta(minutes=n % 50),
            "last_hit_at": None if n % 6 == 0 else base + timedelta(hours=n % 10),
            "pinned": n % 2 == 0,
        }
        for n in range(N)
    ]
    db = api.services.db
    async with db.write() as conn:
        await conn.execute(entries.insert(), rows)
        await add_usage(conn, AGENT, N, sum(r["size_bytes"] for r in rows))
    return AGENT


async def _old_page(api: Api, query: EntryQuery) -> tuple[list[int], int]:
    """The previous path: the page's ids, their rows, the count, three statements."""
    ids_query, count = list_statements(AGENT, query, api.services.db.engine.dialect.name)
    async with api.services.db.read() as conn:
        ids = [row.id for row in (await conn.execute(ids_query)).all()]
        found = set()
        if ids:
            found = {
                r.id
                for r in (
                    await conn.execute(sa.select(entries.c.id).where(entries.c.id.in_(ids)))
                ).all()
            }
        total = int((await conn.execute(count)).scalar_one())
    return [i for i in ids if i in found], total


def _matches(entry: Entry, expression: str | None) -> bool:
    """The filters in Python (an independent check of the totals)."""
    for clause in parse_filters([expression] if expression else []):
        value = getattr(entry, clause.field)
        if clause.op == "contains":
            assert isinstance(clause.value, str)
            if clause.value.lower() not in value.lower():
                return False
        elif value != clause.value:
            return False
    return True


async def test_pages_and_totals_equal_the_previous_path(api: Api, agent: str) -> None:
    repo = EntryRepository(api.services.db)
    everything, total = await repo.find_page(AGENT, EntryQuery(limit=200, offset=0))
    rest, _ = await repo.find_page(AGENT, EntryQuery(limit=200, offset=200))
    everything += rest
    assert total == N and len({e.id for e in everything}) == N
    sqlite = api.services.db.engine.dialect.name == "sqlite"
    checked = 0
    for expression in FILTERS:
        filters = parse_filters([expression] if expression else [])
        expected = sum(_matches(e, expression) for e in everything)
        for field in FIELDS:
            for descending in (False, True):
                for offset in (0, 37, 1000):
                    query = EntryQuery(
                        limit=25,
                        offset=offset,
                        sort=(SortKey(field, descending),),
                        filters=filters,
                    )
                    page, count = await repo.find_page(AGENT, query)
                    old_ids, old_count = await _old_page(api, query)
                    assert [e.id for e in page] == old_ids, (expression, field, descending)
                    assert count == old_count, (expression, field, descending, offset)
                    # SQLite's lower() folds ASCII only ("Ördér" is not "ördér" there)
                    if not sqlite or expression is None or expression.isascii():
                        assert count == expected, (expression, count, expected)
                    assert all(_matches(e, expression) for e in page)
                    checked += 1
    assert checked == len(FILTERS) * len(FIELDS) * 2 * 3
    # two-key sorts too, where ties of the first key are broken by the second and then id
    two = EntryQuery(sort=(SortKey("hit_count", True), SortKey("provider", False)), limit=200)
    page, _ = await repo.find_page(AGENT, two)
    assert [e.id for e in page] == (await _old_page(api, two))[0]
    keys = [(-e.hit_count, e.provider, e.id) for e in page]
    assert keys == sorted(keys)


class _CountingPool:
    """The reader's asyncpg pool, noting each statement sent through it."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.pool, name)
        if name in ("fetch", "fetchrow", "fetchval", "execute", "executemany"):
            self.calls.append(name)
        return attribute


async def test_a_list_page_is_one_round_trip_on_postgres(api: Api, agent: str) -> None:
    db = api.services.db
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no round trips (in-process)")
    repo = EntryRepository(db)
    await repo.find_page(AGENT, EntryQuery())  # opens the reader's pool
    reader: Any = db.point_reader
    pool = reader._pool
    counting = _CountingPool(pool)
    reader._pool = counting
    calls = counting.calls
    through_sqlalchemy: list[str] = []

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        through_sqlalchemy.append(statement)

    try:
        for expression in (None, "provider:eq:piper", "transcript:contains:ördér"):
            for offset in (0, 20):
                calls.clear()
                query = EntryQuery(
                    offset=offset,
                    sort=(SortKey("hit_count", True),),
                    filters=parse_filters([expression] if expression else []),
                )
                page, total = await repo.find_page(AGENT, query)
                assert page and total > 0
                assert calls == ["fetch"], (expression, offset, calls)
        # past the end: no row carries the total, so it is counted apart (two trips)
        calls.clear()
        page, total = await repo.find_page(AGENT, EntryQuery(offset=N))
        assert (page, total) == ([], N) and calls == ["fetch", "fetchrow"]
        assert through_sqlalchemy == []
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", _seen)
        reader._pool = pool
