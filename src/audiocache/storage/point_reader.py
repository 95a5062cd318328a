"""Point lookups on SQLite through the sqlite3 module, typed as SQLAlchemy types them.

The hot path makes one or two indexed reads per request (key, agent, entry). Through
SQLAlchemy's engine each costs a pool checkout, an execution context and a Row, several
times the read itself; here a statement is compiled once (by SQLAlchemy, for the SQLite
dialect), run on a per-thread read-only connection, and its columns converted by the
very result processors SQLAlchemy would apply, so callers see the same values.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect

from audiocache.storage.plans import Plans
from audiocache.storage.records import Record

_DIALECT = sqlite_dialect.dialect()


class SqlitePointReader:
    """``first(statement, params)`` → a dict of the first row, or None."""

    def __init__(self, path: str, *, threads: int = 4) -> None:
        self.path = path
        # Its own threads: long reads queue here, not in the loop's default executor that
        # file work shares, and at most ``threads`` of them run at once.
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sqlite-read")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._plans = Plans(_DIALECT)

    async def first(
        self, statement: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> Record | None:
        """Runs right here on the event loop (no await inside): an indexed read from a WAL
        database takes tens of microseconds, less than a thread hand-off costs. Raises
        sqlite3.OperationalError if the database is busy; the caller falls back."""
        plan = self._plans.get(statement)
        row = self._connection().execute(plan.sql, plan.values(params)).fetchone()
        return plan.record(row) if row is not None else None

    async def all(
        self, statement: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> list[Record]:
        """All rows, like ``first`` but on a worker thread: a list page may count or sort
        thousands of matches (tens of ms), too long to hold the event loop."""
        plan = self._plans.get(statement)
        values = plan.values(params)
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: plan.records(self._connection().execute(plan.sql, values))
        )

    async def generation(self) -> int:
        return self.generation_now()

    def generation_now(self) -> int:
        """SQLite's ``data_version`` on this thread's read-only connection: it changes
        whenever any other connection, in this process or another, commits (this one never
        writes). A pragma, no lock: a couple of microseconds, so it is read in place."""
        row = self._connection().execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            # Autocommit (no BEGIN): every read sees the latest committed state.
            connection = sqlite3.connect(
                self.path, timeout=0.2, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA query_only=ON")  # this connection only ever reads
            connection.execute("PRAGMA busy_timeout=200")  # never hold the event loop for long
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()
