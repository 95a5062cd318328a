"""Point lookups on SQLite through the sqlite3 module, typed as SQLAlchemy types them.

The hot path makes one or two indexed reads per request (key, agent, entry). Through
SQLAlchemy's engine each costs a pool checkout, an execution context and a Row, several
times the read itself; here a statement is compiled once (by SQLAlchemy, for the SQLite
dialect), run on a per-thread read-only connection, and its columns converted by the
very result processors SQLAlchemy would apply, so callers see the same values.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect

# Any keys: SQLAlchemy's RowMapping is one too, and Mapping is invariant in its key type.
Record = Mapping[Any, Any]
Processor = Callable[[Any], Any] | None

_DIALECT = sqlite_dialect.dialect()
_MAX_PLANS = 512  # statements built per call (not prebuilt) must not pile up


@dataclass(frozen=True)
class _Plan:
    sql: str
    binds: tuple[tuple[str, bool, Any, Processor], ...]  # name, required, value, processor
    columns: tuple[tuple[str, Processor], ...]  # name, result processor


class SqlitePointReader:
    """``first(statement, params)`` → a dict of the first row, or None."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._plans: dict[sa.Executable, _Plan] = {}

    def first(
        self, statement: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> Record | None:
        plan = self._plans.get(statement) or self._compile(statement)
        values = []
        for name, required, default, process in plan.binds:
            if params is not None and name in params:
                value = params[name]
            elif required:
                raise KeyError(f"missing value for bound parameter {name!r}")
            else:
                value = default
            values.append(process(value) if process is not None else value)
        row = self._connection().execute(plan.sql, values).fetchone()
        if row is None:
            return None
        return {
            name: process(value) if process is not None else value
            for (name, process), value in zip(plan.columns, row, strict=True)
        }

    def _compile(self, statement: sa.Executable) -> _Plan:
        compiled = statement.compile(dialect=_DIALECT)  # type: ignore[attr-defined]
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("expanding parameters (IN lists) are not supported here")
        binds = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
            binds.append((name, bind.required, bind.value, process))
        columns = []
        for column in statement.selected_columns:  # type: ignore[attr-defined]
            process = column.type.dialect_impl(_DIALECT).result_processor(_DIALECT, None)
            columns.append((column.key, process))
        plan = _Plan(compiled.string, tuple(binds), tuple(columns))
        if len(self._plans) >= _MAX_PLANS:
            self._plans.clear()
        self._plans[statement] = plan
        return plan

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

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()
