"""``sort=transcript``: the order of the whole transcript (byte-wise, ties by id) on every
page, read from the stored prefix column ``transcript_sort`` (migration 0012), which the
database keeps right through every writer: runtime miss, runtime store, replace, replace
with settings (an import), duplicate — on both backends."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import Api, sine_wav

from audiocache.cache.query import parse_filters
from audiocache.models import Entry, EntryQuery, SortKey
from audiocache.storage.db import MIGRATIONS_DIR, Database, utcnow
from audiocache.storage.entries_repo import EntryRepository
from audiocache.storage.tables import TRANSCRIPT_PREFIX, agents, entries
from audiocache.storage.usage import add_usage

AGENT = "sort-agent"
P = "A" * 250 + "common"  # exactly the prefix length: long texts below share it
assert len(P) == TRANSCRIPT_PREFIX


def _texts() -> list[str]:
    long_tails = ["zeta", "alpha", "alpha", "Beta", "é", "", "alpha" + "x" * 4000, "alphb"]
    texts = [P + tail for tail in long_tails]  # one group of equal prefixes, ties included
    texts += ["Q" * 300 + "b", "Q" * 300 + "a", "Q" * 300 + "a" + "c" * 1000]
    texts += ["apple", "Apple", "apple", "Zürich", "zebra", "éclair", "Éclair", "z", "ä"]
    texts += [f"Phrase {n:03d}" for n in range(40)] + ["Phrase 007"] * 3
    random.Random(5).shuffle(texts)  # ids in no relation to the order
    return texts


TEXTS = _texts()
N = len(TEXTS)


@pytest.fixture
async def agent(api: Api) -> str:
    await api.create_agent(AGENT)
    rows = [
        {
            "agent_id": AGENT,
            "cache_key": f"{n:064d}",
            "transcript": text,
            "provider": ("espeak", "piper")[n % 2],
            "provider_voice_id": "alpha",
            "blob_sha256": f"{n % 3:064d}",
            "size_bytes": 100,
            "duration": 1.0,
            "hit_count": n % 4,
            "cached_at": datetime(2026, 1, 1),
        }
        for n, text in enumerate(TEXTS)
    ]
    async with api.services.db.write() as conn:
        await conn.execute(entries.insert(), rows)
        await add_usage(conn, AGENT, N, 100 * N)
    return AGENT


async def _all_pages(repo: EntryRepository, query: EntryQuery, limit: int) -> list[Entry]:
    """Every page of the query, to one past the end; each page's total is the same."""
    seen: list[Entry] = []
    totals = set()
    for offset in range(0, N + limit, limit):
        page, total = await repo.find_page(
            AGENT, EntryQuery(sort=query.sort, filters=query.filters, limit=limit, offset=offset)
        )
        seen += page
        totals.add(total)
    assert totals == {len(seen)}
    return seen


def _expected(rows: list[Entry], descending: bool) -> list[int]:
    return [e.id for e in sorted(rows, key=lambda e: (e.transcript, e.id), reverse=descending)]


@pytest.mark.parametrize("limit", [1, 3, 7, 50])
@pytest.mark.parametrize("descending", [False, True])
async def test_pages_follow_the_whole_transcript_ties_by_id(
    api: Api, agent: str, descending: bool, limit: int
) -> None:
    repo = EntryRepository(api.services.db)
    rows, total = await repo.find_page(AGENT, EntryQuery(limit=200, sort=(SortKey("id", False),)))
    assert total == N == len(rows)
    query = EntryQuery(sort=(SortKey("transcript", descending),))
    pages = await _all_pages(repo, query, limit)
    assert [e.id for e in pages] == _expected(rows, descending)


@pytest.mark.parametrize(
    "expression", ["provider:eq:piper", "transcript:contains:common", "transcript:contains:ALPH"]
)
@pytest.mark.parametrize("descending", [False, True])
async def test_filtered_pages_follow_the_whole_transcript(
    api: Api, agent: str, expression: str, descending: bool
) -> None:
    repo = EntryRepository(api.services.db)
    rows, _ = await repo.find_page(AGENT, EntryQuery(limit=200))
    filters = parse_filters([expression])
    matching = [
        e
        for e in rows
        if all(
            str(c.value).lower() in e.transcript.lower()
            if c.op == "contains"
            else getattr(e, c.field) == c.value
            for c in filters
        )
    ]
    assert matching
    query = EntryQuery(sort=(SortKey("transcript", descending),), filters=filters)
    for limit in (2, 5):
        pages = await _all_pages(repo, query, limit)
        assert [e.id for e in pages] == _expected(matching, descending), limit
        _, total = await repo.find_page(AGENT, EntryQuery(filters=filters, sort=query.sort))
        assert total == len(matching)


async def test_transcript_as_a_second_key(api: Api, agent: str) -> None:
    repo = EntryRepository(api.services.db)
    rows, _ = await repo.find_page(AGENT, EntryQuery(limit=200))
    query = EntryQuery(sort=(SortKey("provider", False), SortKey("transcript", True)))
    pages = await _all_pages(repo, query, 6)
    by_provider = sorted(rows, key=lambda e: e.id, reverse=True)  # ties last by id desc
    by_provider.sort(key=lambda e: e.transcript, reverse=True)
    by_provider.sort(key=lambda e: e.provider)
    assert [e.id for e in pages] == [e.id for e in by_provider]


async def test_the_api_pages_the_same_order(api: Api, agent: str) -> None:
    listed = await api.entries(AGENT, limit=200, sort="transcript:asc")
    texts = [e["transcript"] for e in listed["entries"]]
    assert texts == sorted(TEXTS)
    deep = await api.entries(AGENT, limit=4, offset=N - 3, sort="transcript:desc")
    assert [e["transcript"] for e in deep["entries"]] == sorted(TEXTS)[:3][::-1]
    assert deep["totalCount"] == N


# -- the column through every writer ----------------------------------------------------


async def _assert_column_right(api: Api) -> int:
    async with api.services.db.read() as conn:
        rows = (
            await conn.execute(sa.select(entries.c.transcript, entries.c.transcript_sort))
        ).all()
    for transcript, key in rows:
        assert key == transcript[:TRANSCRIPT_PREFIX], transcript[:40]
    return len(rows)


def _long(word: str) -> str:
    return ("Please hold the line " * 14 + word).strip()  # > 256 characters, one prefix


async def test_every_writer_keeps_the_column(api: Api) -> None:
    await api.create_agent("bot")
    first = await api.seed_entry("bot", _long("while I check"))  # runtime miss, stored
    await api.seed_entry("bot", _long("while I look"))
    assert len(_long("x")) > TRANSCRIPT_PREFIX
    store = await api.client.post(
        "/v1/agents/bot/audio-cache/store",
        files={"file": ("take.wav", sine_wav(), "audio/wav")},
        data={"settings": json.dumps({"text": _long("for the store")})},
        headers=api.headers,
    )
    assert store.status_code == 200, store.text
    assert await _assert_column_right(api) == 3
    # replace with settings: an imported take with a new text, the key follows it
    r = await api.client.put(
        f"/v1/agents/bot/audio-cache/{first}/details",
        files={"file": ("take.wav", sine_wav(), "audio/wav")},
        data={"settings": json.dumps({"text": "Ab " + _long("imported"), "config": {}})},
        headers=api.headers,
    )
    assert r.status_code == 204, r.text
    r = await api.client.patch(
        f"/v1/agents/bot/audio-cache/{first}/file",
        content=sine_wav(0.3),
        headers={**api.headers, "Content-Type": "audio/wav"},
    )
    assert r.status_code == 204, r.text
    r = await api.client.post(
        "/v1/agents/bot/duplicate",
        json={"newAgentId": "bot-2", "newAgentName": "Bot two"},
        headers=api.headers,
    )
    assert r.status_code == 200, r.text
    assert await _assert_column_right(api) == 6
    for agent in ("bot", "bot-2"):
        listed = await api.entries(agent, sort="transcript:asc", limit=2, offset=1)
        everything = await api.entries(agent, sort="transcript:asc")
        expected = sorted(e["transcript"] for e in everything["entries"])
        assert [e["transcript"] for e in everything["entries"]] == expected
        assert [e["transcript"] for e in listed["entries"]] == expected[1:3]


# -- the migration ------------------------------------------------------------------------


def _alembic(connection: sa.Connection, revision: str, down: bool = False) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    (command.downgrade if down else command.upgrade)(config, revision)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    cluster = request.getfixturevalue("postgres")
    name = f"m_{uuid.uuid4().hex[:12]}"
    yield cluster.create_database(name)
    cluster.drop_database(name)


async def test_upgrade_backfills_the_column_and_downgrade_restores_the_index(url: str) -> None:
    db = Database(url)
    try:
        async with db.write_engine.begin() as conn:
            await conn.run_sync(_alembic, "0011_take_history")
        now = utcnow()
        async with db.write() as conn:
            await conn.execute(
                agents.insert().values(
                    id=AGENT,
                    account_id="a",
                    public_id=AGENT,
                    name="a",
                    created_at=now,
                    updated_at=now,
                )
            )
            await conn.execute(
                entries.insert(),
                [
                    {
                        "agent_id": AGENT,
                        "cache_key": f"{n:064x}",
                        "transcript": text,
                        "provider": "fake",
                        "provider_voice_id": "v",
                        "blob_sha256": "0" * 64,
                        "size_bytes": 100,
                        "duration": 1.0,
                        "cached_at": now,
                    }
                    for n, text in enumerate(TEXTS)
                ],
            )
        await db.migrate()
        if db.engine.dialect.name == "postgresql":
            # the rewritten table was vacuumed: its pages are all-visible (index-only scans)
            async with db.read() as conn:
                pages, visible = (
                    await conn.execute(
                        sa.text(
                            "SELECT relpages, relallvisible FROM pg_class"
                            " WHERE relname = 'audio_cache_entries'"
                        )
                    )
                ).one()
            assert pages > 0 and visible == pages
        async with db.read() as conn:
            rows = (
                await conn.execute(sa.select(entries.c.transcript, entries.c.transcript_sort))
            ).all()
        assert len(rows) == N and all(key == text[:TRANSCRIPT_PREFIX] for text, key in rows)
        repo = EntryRepository(db)
        page, total = await repo.find_page(
            AGENT, EntryQuery(limit=200, sort=(SortKey("transcript", False),))
        )
        assert total == N and [e.transcript for e in page] == sorted(TEXTS)
        async with db.write_engine.begin() as conn:
            await conn.run_sync(_alembic, "0011_take_history", True)
        async with db.read() as conn:
            columns = await conn.run_sync(
                lambda sync: {
                    c["name"] for c in sa.inspect(sync).get_columns("audio_cache_entries")
                }
            )
            sql = (
                "SELECT sql FROM sqlite_master WHERE name = :name"
                if db.engine.dialect.name == "sqlite"
                else "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
            )
            index = (
                await conn.execute(sa.text(sql), {"name": "ix_entries_agent_transcript"})
            ).scalar_one()
        assert "transcript_sort" not in columns
        assert "substr(transcript, 1, 256)" in index, index
    finally:
        await db.close()
