"""What differs between SQLite and PostgreSQL, in one object that ``Database`` owns.

A dialect builds the engines (and how a write transaction begins), the point reader of the
hot path, the upsert construct (``INSERT … ON CONFLICT``), the lock that serialises a blob's
writer with its collector, the lock that lets one instance of many run the migrations, and
the translation of the driver's failures into audiocache's errors. Callers never ask which
database they are on.

Blob locks: a writer re-checks its blob inside the row's transaction, and the collector
checks references and unlinks inside its own; the two must not interleave. SQLite has one
writer at a time, so its write transaction is the lock. PostgreSQL runs transactions side
by side, so both take a transaction-scoped advisory lock on the blob's hash.

Lock order (PostgreSQL; SQLite's one writer needs none): a write transaction takes its
locks in this order, each kind in ascending key order, so no two wait for each other: the
agent's row (an agent's delete, an evicting delete) → entry rows by id (a bulk delete
locks them with ``SELECT … ORDER BY id FOR UPDATE``; hit flushes update in id order) →
blob advisory locks by hash → the agent's usage counter → the pending-deletes queue's rows
by hash (one ``queue_blob_deletes`` per transaction). What still conflicts (shared blobs
across agents, a plan nobody foresaw) is aborted by PostgreSQL as a deadlock, translated to
``StorageConflict`` here, and run again by ``Database.write_retrying``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from audiocache.errors import StorageConflict, StorageFull, StorageUnavailable
from audiocache.storage.records import Record

# Any constant will do; it only has to be the same in every instance of this program.
_MIGRATION_LOCK_KEY = 0x61756469_6F636163  # "audiocac"


class PointReader(Protocol):
    async def first(
        self, statement: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> Record | None: ...

    async def all(
        self, statement: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> list[Record]: ...

    async def generation(self) -> object | None: ...

    def generation_now(self) -> object | None:
        """The generation if it can be read without waiting (no I/O to await), else None."""
        ...

    async def close(self) -> None: ...


class Dialect(Protocol):
    name: str
    engine: AsyncEngine
    write_engine: AsyncEngine
    point_reader: PointReader | None

    def insert(self, table: sa.Table) -> Any:
        """An INSERT that supports ``on_conflict_do_nothing/do_update`` (both dialects'
        constructs take the same arguments)."""
        ...

    async def lock_blob(self, conn: AsyncConnection, sha256: str) -> None: ...

    async def lock_migrations(self, conn: AsyncConnection) -> None: ...

    def storage_error(self, exc: DBAPIError) -> StorageUnavailable | None: ...

    async def vacuum(self, tables: list[str]) -> None:
        """After a migration rewrote these tables (outside any transaction)."""
        ...

    async def close(self) -> None: ...


def dialect_for(url: str, *, busy_timeout_seconds: float = 30.0, read_threads: int = 4) -> Dialect:
    if url.startswith("sqlite"):
        return SqliteDialect(url, busy_timeout_seconds, read_threads)
    if url.startswith("postgresql"):
        return PostgresDialect(url)
    raise ValueError(f"unsupported database URL {url.split(':', 1)[0]!r}: use sqlite or postgresql")


# -- SQLite --------------------------------------------------------------------------------

# SQLite primary result codes (the low byte of sqlite3.Error.sqlite_errorcode).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_FULL = 5, 6, 8, 13


class SqliteDialect:
    """WAL + synchronous=FULL (an acknowledged write survives a crash); write transactions
    begin IMMEDIATE, so two writers never deadlock upgrading a read lock."""

    name = "sqlite"

    def __init__(self, url: str, busy_timeout_seconds: float, read_threads: int = 4) -> None:
        path = sa.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.engine = _sqlite_engine(url, "BEGIN", busy_timeout_seconds)
        self.write_engine = _sqlite_engine(url, "BEGIN IMMEDIATE", busy_timeout_seconds)
        self.point_reader: PointReader | None = None
        if path and path != ":memory:":
            from audiocache.storage.point_reader import SqlitePointReader

            self.point_reader = SqlitePointReader(path, threads=read_threads)

    def insert(self, table: sa.Table) -> Any:
        return sqlite.insert(table)

    async def lock_blob(self, conn: AsyncConnection, sha256: str) -> None:
        return None  # the write transaction (BEGIN IMMEDIATE) already excludes the collector

    async def lock_migrations(self, conn: AsyncConnection) -> None:
        return None  # likewise: migrations run in a write transaction

    def storage_error(self, exc: DBAPIError) -> StorageUnavailable | None:
        code = getattr(exc.orig, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary == _SQLITE_FULL:
            return StorageFull("metadata database is full")
        if primary == _SQLITE_READONLY:
            return StorageUnavailable("metadata database is read-only")
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
            busy = StorageUnavailable("metadata database is locked (busy beyond its timeout)")
            busy.retry_after = 1.0
            return busy
        if isinstance(exc, OperationalError) or isinstance(exc.orig, sqlite3.OperationalError):
            return StorageUnavailable("metadata database unavailable")
        return None

    async def vacuum(self, tables: list[str]) -> None:
        return None  # SQLite's rewrites keep nothing PostgreSQL's VACUUM would restore

    async def close(self) -> None:
        if self.point_reader is not None:
            await self.point_reader.close()
        await self.engine.dispose()
        await self.write_engine.dispose()


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


# -- PostgreSQL ----------------------------------------------------------------------------

# SQLSTATEs: disk_full; insufficient_resources, read_only_sql_transaction, admin_shutdown,
# crash_shutdown, cannot_connect_now; class 08 is connection exceptions.
_PG_FULL = {"53100"}
_PG_READ_ONLY = "25006"
_PG_UNAVAILABLE = {"53000", "57P01", "57P02", "57P03"}
# deadlock_detected, serialization_failure: the transaction was aborted for another's sake
# and is safe to run again from its start (``Database.write_retrying``).
_PG_CONFLICT = {"40P01", "40001"}


class PostgresDialect:
    """asyncpg under SQLAlchemy; point lookups through asyncpg's own prepared statements."""

    name = "postgresql"

    def __init__(self, url: str) -> None:
        from audiocache.storage.pg_point_reader import PostgresPointReader

        sa_url = sa.make_url(url)
        if sa_url.drivername in ("postgresql", "postgres"):
            sa_url = sa_url.set(drivername="postgresql+asyncpg")
        # A dead connection (server restarted) is noticed at checkout, not by a request.
        self.engine = create_async_engine(sa_url, pool_pre_ping=True, pool_size=10)
        self.write_engine = self.engine
        self.point_reader: PointReader | None = PostgresPointReader(sa_url)

    def insert(self, table: sa.Table) -> Any:
        return postgresql.insert(table)

    async def lock_blob(self, conn: AsyncConnection, sha256: str) -> None:
        await lock_blob(conn, sha256)

    async def lock_migrations(self, conn: AsyncConnection) -> None:
        # Held to the end of the migrating transaction: the others wait, then find the
        # schema at head and do nothing.
        await conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
        )

    def storage_error(self, exc: DBAPIError) -> StorageUnavailable | None:
        state = pg_sqlstate(exc.orig)
        return _pg_error(state, connection_lost=exc.connection_invalidated)

    async def vacuum(self, tables: list[str]) -> None:
        # VACUUM sets the visibility map (index-only scans) and hint bits; ANALYZE the
        # statistics of the new columns. It cannot run inside a transaction.
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in tables:
                await conn.exec_driver_sql(f'VACUUM (ANALYZE) "{table}"')

    async def close(self) -> None:
        if self.point_reader is not None:
            await self.point_reader.close()
        await self.engine.dispose()


def pg_sqlstate(error: BaseException | None) -> str | None:
    """The SQLSTATE of an asyncpg error, through SQLAlchemy's adaptation if wrapped."""
    for candidate in (error, getattr(error, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def _pg_error(state: str | None, *, connection_lost: bool) -> StorageUnavailable | None:
    if state in _PG_FULL:
        return StorageFull("metadata database is full")
    if state == _PG_READ_ONLY:
        return StorageUnavailable("metadata database is read-only")
    if state in _PG_CONFLICT:
        conflict = StorageConflict(f"metadata database aborted a conflicting transaction ({state})")
        conflict.retry_after = 1.0
        return conflict
    if connection_lost or state in _PG_UNAVAILABLE or (state or "").startswith("08"):
        unavailable = StorageUnavailable("metadata database unavailable")
        unavailable.retry_after = 1.0
        return unavailable
    return None


def pg_unavailable(exc: BaseException) -> StorageUnavailable | None:
    """For errors raised by asyncpg directly (the point reader): the same mapping."""
    import asyncpg

    if isinstance(exc, OSError | asyncpg.exceptions.ConnectionDoesNotExistError):
        return _pg_error(None, connection_lost=True)
    if isinstance(exc, asyncpg.exceptions.InterfaceError):
        return _pg_error(None, connection_lost=True)
    if isinstance(exc, asyncpg.PostgresError):
        return _pg_error(pg_sqlstate(exc), connection_lost=False)
    return None


# -- for code that holds a connection, not the Database --------------------------------


def insert_for(conn: AsyncConnection, table: sa.Table) -> Any:
    """The upsert-capable INSERT of the connection's database."""
    return postgresql.insert(table) if _is_postgres(conn) else sqlite.insert(table)


async def lock_blob(conn: AsyncConnection, sha256: str) -> None:
    """See the module docstring: a no-op on SQLite, an advisory lock on PostgreSQL."""
    if _is_postgres(conn):
        key = int(sha256[:15], 16)  # 60 bits: a collision only makes two blobs wait
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _is_postgres(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"
