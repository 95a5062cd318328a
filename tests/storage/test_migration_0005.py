"""Upgrading a database that already holds entries to 0005: every agent gets exact usage
counters and the existing transcripts are searchable, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from audiocache.cache.query import parse_filters
from audiocache.models import EntryQuery
from audiocache.storage.db import MIGRATIONS_DIR, Database, utcnow
from audiocache.storage.entries_repo import EntryRepository
from audiocache.storage.tables import agents, entries
from audiocache.storage.usage import read_usage


def _upgrade(connection: sa.Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    cluster = request.getfixturevalue("postgres")
    name = f"m_{uuid.uuid4().hex[:12]}"
    yield cluster.create_database(name)
    cluster.drop_database(name)


async def test_upgrade_backfills_counters_and_search(url: str) -> None:
    db = Database(url)
    try:
        async with db.write_engine.begin() as conn:
            await conn.run_sync(_upgrade, "0004")
        now = utcnow()
        async with db.write() as conn:
            for agent in ("full", "empty"):
                await conn.execute(
                    agents.insert().values(
                        id=agent,
                        account_id="a",
                        public_id=agent,
                        name=agent,
                        created_at=now,
                        updated_at=now,
                    )
                )
            await conn.execute(
                entries.insert(),
                [
                    {
                        "agent_id": "full",
                        "cache_key": f"{n:064x}",
                        "transcript": f"Your order number is {n}" if n % 2 else f"Hi {n}",
                        "provider": "fake",
                        "provider_voice_id": "v",
                        "blob_sha256": "0" * 64,
                        "size_bytes": 100 + n,
                        "duration": 1.0,
                        "cached_at": now,
                    }
                    for n in range(10)
                ],
            )
        await db.migrate()
        async with db.read() as conn:
            full, empty = await read_usage(conn, "full"), await read_usage(conn, "empty")
        assert full is not None and (full.entries, full.bytes) == (10, sum(range(100, 110)))
        assert empty is not None and (empty.entries, empty.bytes) == (0, 0)
        query = EntryQuery(filters=parse_filters(["transcript:contains:ORDER NUMBER"]))
        found, total = await EntryRepository(db).find_page("full", query)
        assert total == 5
        assert sorted(e.transcript for e in found) == [
            f"Your order number is {n}" for n in (1, 3, 5, 7, 9)
        ]
    finally:
        await db.close()
