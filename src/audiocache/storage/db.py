"""The metadata database: engines per URL, schema migrated on open, errors translated."""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from audiocache.errors import StorageConflict, StorageUnavailable
from audiocache.storage.dialects import dialect_for
from audiocache.storage.records import Record

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
T = TypeVar("T")
log = logging.getLogger("audiocache.storage")


def utcnow() -> datetime:
    """Naive UTC, the one form every backend stores and compares alike."""
    return datetime.now(UTC).replace(tzinfo=None)


class Database:
    """The engines, point reader and driver quirks come from the URL's dialect
    (``dialects.py``); everything else is the same on every database."""

    def __init__(
        self,
        url: str,
        *,
        busy_timeout_seconds: float = 30.0,
        read_threads: int = 4,
        write_attempts: int = 4,
    ) -> None:
        self.url = url
        self.write_attempts = write_attempts  # of ``write_retrying``
        self.dialect = dialect_for(
            url, busy_timeout_seconds=busy_timeout_seconds, read_threads=read_threads
        )
        self.is_sqlite = self.dialect.name == "sqlite"
        self.engine = self.dialect.engine
        self.write_engine = self.dialect.write_engine
        self.point_reader = self.dialect.point_reader

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        with self.map_errors():
            async with self.engine.connect() as conn:
                yield conn

    async def first(
        self, statement: sa.Executable, params: dict[str, Any] | None = None
    ) -> Record | None:
        """One row of a point lookup (the hot path: key, agent, entry), as a mapping,
        through the dialect's point reader; if that one is busy, through SQLAlchemy."""
        if self.point_reader is not None:
            try:
                return await self.point_reader.first(statement, params)
            except sqlite3.OperationalError:
                pass
        async with self.read() as conn:
            row = (await conn.execute(statement, params)).first()
        return row._mapping if row is not None else None

    async def generation(self) -> object | None:
        """A value that changes whenever anything is committed to the database, by any
        connection of any instance; None where it cannot be known (the hot path's memo,
        ``cache/memo.py``, is then not used)."""
        if self.point_reader is None:
            return None
        return await self.point_reader.generation()

    def generation_now(self) -> object | None:
        """``generation`` where it is read without waiting (SQLite); None otherwise."""
        if self.point_reader is None:
            return None
        return self.point_reader.generation_now()

    async def all(
        self, statement: sa.Executable, params: dict[str, Any] | None = None
    ) -> list[Record]:
        """Every row of one statement (a list page), in one round trip through the point
        reader; if that one is busy, through SQLAlchemy."""
        if self.point_reader is not None:
            try:
                return await self.point_reader.all(statement, params)
            except sqlite3.OperationalError:
                pass
        async with self.read() as conn:
            return [row._mapping for row in (await conn.execute(statement, params)).all()]

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits on exit, or rolls back if the block raises."""
        with self.map_errors():
            async with self.write_engine.begin() as conn:
                yield conn

    async def write_retrying(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``work`` in a write transaction, run again from the start (at most
        ``write_attempts`` times in all) if the database aborts it for a conflicting one
        (``StorageConflict``: a PostgreSQL deadlock or serialization failure). ``work``
        must be safe to re-run: anything it keeps outside the transaction starts afresh."""
        for attempt in range(1, self.write_attempts + 1):
            try:
                async with self.write() as conn:
                    return await work(conn)
            except StorageConflict as exc:
                if attempt >= self.write_attempts:
                    raise
                log.info("write transaction aborted (%s); attempt %d again", exc, attempt + 1)
                # Jittered, so the two that collided do not meet again at once.
                await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise AssertionError("unreachable")

    def insert(self, table: sa.Table) -> Any:
        """INSERT with ``on_conflict_do_nothing`` / ``on_conflict_do_update`` (upserts)."""
        return self.dialect.insert(table)

    async def lock_blob(self, conn: AsyncConnection, sha256: str) -> None:
        """Serialise, until ``conn`` commits, with any other transaction that writes a row
        referring to this blob or collects it (see ``dialects.py``)."""
        await self.dialect.lock_blob(conn, sha256)

    async def migrate(self) -> None:
        """Upgrade to head; with several instances starting at once one migrates and the
        others wait for it, then find nothing to do.

        A migration that rewrites a table names it in ``VACUUM_AFTER``: once the upgrade
        has committed, the dialect vacuums it (PostgreSQL: a rewritten table has no
        visibility map, so until a VACUUM every index-only scan reads the heap too)."""
        with self.map_errors():
            async with self.write_engine.begin() as conn:
                await self.dialect.lock_migrations(conn)
                rewritten = await conn.run_sync(_upgrade_to_head)
            if rewritten:
                await self.dialect.vacuum(sorted(rewritten))

    @contextmanager
    def map_errors(self) -> Iterator[None]:
        """The driver's storage failures as audiocache errors: a full disk is
        ``StorageFull``; read-only, locked past the busy timeout, a lost server are
        ``StorageUnavailable``. Constraint violations pass through (repositories turn them
        into Conflict/NotFound)."""
        try:
            yield
        except IntegrityError:
            raise
        except DBAPIError as exc:
            mapped = self.dialect.storage_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        except OSError as exc:  # the server went away between pool checkout and query
            raise StorageUnavailable("metadata database unavailable") from exc

    async def close(self) -> None:
        await self.dialect.close()


def _upgrade_to_head(connection: sa.Connection) -> set[str]:
    """Upgrades; returns the tables that the migrations it ran list in ``VACUUM_AFTER``."""
    # Imported here: alembic costs a quarter second, and only start-up needs it.
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    current = MigrationContext.configure(connection).get_current_revision()
    command.upgrade(config, "head")
    applied = ScriptDirectory.from_config(config).iterate_revisions("head", current or "base")
    return {table for script in applied for table in getattr(script.module, "VACUUM_AFTER", ())}
