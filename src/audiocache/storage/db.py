"""The metadata database: one async engine per URL, schema migrated on open.

SQLite gets WAL + synchronous=FULL (an acknowledged write survives a crash) and its
write transactions begin IMMEDIATE, so two writers never deadlock upgrading a read lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from audiocache.errors import StorageFull, StorageUnavailable
from audiocache.storage.point_reader import Record, SqlitePointReader

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    """Naive UTC, the one form every backend stores and compares alike."""
    return datetime.now(UTC).replace(tzinfo=None)


class Database:
    def __init__(self, url: str, *, busy_timeout_seconds: float = 30.0) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.point_reader: SqlitePointReader | None = None
        if self.is_sqlite:
            _ensure_sqlite_folder(url)
            self.engine = _sqlite_engine(url, "BEGIN", busy_timeout_seconds)
            self.write_engine = _sqlite_engine(url, "BEGIN IMMEDIATE", busy_timeout_seconds)
            path = sa.make_url(url).database
            if path and path != ":memory:":
                self.point_reader = SqlitePointReader(path)
        else:
            self.engine = create_async_engine(url, pool_pre_ping=True)
            self.write_engine = self.engine

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        with map_database_errors():
            async with self.engine.connect() as conn:
                yield conn

    async def first(
        self, statement: sa.Executable, params: dict[str, Any] | None = None
    ) -> Record | None:
        """One row of a point lookup (the hot path: key, agent, entry), as a mapping.

        On SQLite it runs right here on the event loop: an indexed read from a WAL database
        takes tens of microseconds, less than the thread hand-offs of an async driver cost.
        If the database is busy (rare for a WAL reader) it falls back to the async path."""
        if self.point_reader is not None:
            try:
                return self.point_reader.first(statement, params)
            except sqlite3.OperationalError:
                pass
        async with self.read() as conn:
            row = (await conn.execute(statement, params)).first()
        return row._mapping if row is not None else None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits on exit, or rolls back if the block raises."""
        with map_database_errors():
            async with self.write_engine.begin() as conn:
                yield conn

    async def migrate(self) -> None:
        async with self.write_engine.begin() as conn:
            await conn.run_sync(_upgrade_to_head)

    async def close(self) -> None:
        if self.point_reader is not None:
            self.point_reader.close()
        await self.engine.dispose()
        if self.write_engine is not self.engine:
            await self.write_engine.dispose()


@contextmanager
def map_database_errors() -> Iterator[None]:
    """The driver's storage failures as audiocache errors: a full disk is ``StorageFull``;
    read-only, locked past the busy timeout, I/O errors are ``StorageUnavailable``.
    Constraint violations pass through (repositories turn them into Conflict/NotFound)."""
    try:
        yield
    except IntegrityError:
        raise
    except DBAPIError as exc:
        mapped = _storage_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


# SQLite primary result codes (the low byte of sqlite3.Error.sqlite_errorcode).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_FULL = 5, 6, 8, 13
# PostgreSQL SQLSTATEs: disk_full, insufficient_resources, read_only_sql_transaction,
# admin_shutdown, cannot_connect_now.
_PG_FULL = {"53100"}
_PG_UNAVAILABLE = {"53000", "25006", "57P01", "57P03"}


def _storage_error(exc: DBAPIError) -> StorageUnavailable | None:
    code = getattr(exc.orig, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if primary == _SQLITE_FULL or state in _PG_FULL:
        return StorageFull("metadata database is full")
    if primary == _SQLITE_READONLY or state == "25006":
        return StorageUnavailable("metadata database is read-only")
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
        busy = StorageUnavailable("metadata database is locked (busy beyond its timeout)")
        busy.retry_after = 1.0
        return busy
    if isinstance(exc, OperationalError) or state in _PG_UNAVAILABLE:
        return StorageUnavailable("metadata database unavailable")
    return None


def _upgrade_to_head(connection: sa.Connection) -> None:
    # Imported here: alembic costs a quarter second, and only start-up needs it.
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _ensure_sqlite_folder(url: str) -> None:
    path = sa.make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_engine(url: str, begin: str, busy_timeout_seconds: float) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": busy_timeout_seconds})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (below), so the kind of transaction is ours to pick.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine
