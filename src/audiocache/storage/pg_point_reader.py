"""Point lookups on PostgreSQL straight through asyncpg, typed as SQLAlchemy types them.

Like the SQLite reader: each statement is compiled once by SQLAlchemy (for the asyncpg
dialect, so ``$n`` placeholders with casts), bound values and result columns go through
the very processors SQLAlchemy would apply, and the query runs on a small asyncpg pool
whose connections prepare each statement once and keep it (asyncpg's statement cache).
That skips SQLAlchemy's pool checkout, greenlet hop, execution context and Row per call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg

from audiocache.errors import StorageUnavailable
from audiocache.storage.plans import Plans, Processor
from audiocache.storage.records import Record

_DIALECT = pg_asyncpg.dialect()  # type: ignore[no-untyped-call]
POOL_SIZE = 10


class PostgresPointReader:
    def __init__(self, url: sa.URL, pool_size: int = POOL_SIZE) -> None:
        self.dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._plans = Plans(_DIALECT, _result_processor)

    async def first(
        self, statement: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> Record | None:
        plan = self._plans.get(statement)
        row = await self._run("fetchrow", plan.sql, plan.values(params))
        return plan.record(row) if row is not None else None

    async def all(
        self, statement: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> list[Record]:
        plan = self._plans.get(statement)
        return plan.records(await self._run("fetch", plan.sql, plan.values(params)))

    async def generation(self) -> str:
        """The WAL insert position: it moves on with every commit to the cluster (whichever
        instance made it) before that commit returns; one round trip for the questions of
        a whole request. Other databases of the cluster move it too, which only costs the
        memo some refills."""
        return str(await self._run("fetchval", "SELECT pg_current_wal_insert_lsn()", []))

    def generation_now(self) -> None:
        """Not known without a round trip: the caller reads ``generation`` instead."""
        return None

    async def _run(self, method: str, sql: str, values: list[Any]) -> Any:
        pool = self._pool or await self._open()
        try:
            return await getattr(pool, method)(sql, *values)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            from audiocache.storage.dialects import pg_unavailable

            mapped = pg_unavailable(exc)
            if mapped is None:
                raise
            raise mapped from exc

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
                        # A list page's plan depends on its values (a rare or a common
                        # word in a contains filter, the offset): plan each execution with
                        # them, never with a generic plan made for any value.
                        server_settings={
                            "default_transaction_read_only": "on",
                            "plan_cache_mode": "force_custom_plan",
                        },
                    )
                except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                    raise StorageUnavailable("metadata database unavailable") from exc
        return self._pool

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
