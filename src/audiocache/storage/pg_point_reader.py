"""Point lookups on PostgreSQL straight through asyncpg, typed as SQLAlchemy types them.

Like the SQLite reader: each statement is compiled once by SQLAlchemy (for the asyncpg
dialect, so ``$n`` placeholders with casts), bound values and result columns go through
the very processors SQLAlchemy would apply, and the query runs on a small asyncpg pool
whose connections prepare each statement once and keep it (asyncpg's statement cache).
That skips SQLAlchemy's pool checkout, greenlet hop, execution context and Row per call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg

from audiocache.errors import StorageUnavailable
from audiocache.storage.records import Record

Processor = Callable[[Any], Any] | None

_DIALECT = pg_asyncpg.dialect()  # type: ignore[no-untyped-call]
_MAX_PLANS = 512
POOL_SIZE = 10


@dataclass(frozen=True)
class _Plan:
    sql: str
    binds: tuple[tuple[str, bool, Any, Processor], ...]  # name, required, value, processor
    columns: tuple[tuple[str, Processor], ...]


class PostgresPointReader:
    def __init__(self, url: sa.URL, pool_size: int = POOL_SIZE) -> None:
        self.dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._plans: dict[sa.Executable, _Plan] = {}

    async def first(
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
        pool = self._pool or await self._open()
        try:
            row = await pool.fetchrow(plan.sql, *values)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            from audiocache.storage.dialects import pg_unavailable

            mapped = pg_unavailable(exc)
            if mapped is None:
                raise
            raise mapped from exc
        if row is None:
            return None
        return {
            name: process(value) if process is not None else value
            for (name, process), value in zip(plan.columns, row, strict=True)
        }

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                try:
                    self._pool = await asyncpg.create_pool(
                        self.dsn,
                        min_size=1,
                        max_size=self.pool_size,
                        timeout=5,
                        # These connections only ever read, and the server enforces it.
                        server_settings={"default_transaction_read_only": "on"},
                    )
                except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                    raise StorageUnavailable("metadata database unavailable") from exc
        return self._pool

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
            columns.append((column.key, _result_processor(column.type)))
        plan = _Plan(compiled.string, tuple(binds), tuple(columns))
        if len(self._plans) >= _MAX_PLANS:
            self._plans.clear()
        self._plans[statement] = plan
        return plan

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


def _result_processor(type_: sa.types.TypeEngine[Any]) -> Processor:
    try:
        return type_.dialect_impl(_DIALECT).result_processor(_DIALECT, None)
    except TypeError:
        # asyncpg's numeric types pick a processor by the column's OID; a double precision
        # column (sa.Float) arrives as a Python float and needs none.
        return None
