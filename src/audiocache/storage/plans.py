"""Statements compiled once by SQLAlchemy and run by a driver directly (the point readers).

A plan holds the compiled SQL, the bound parameters in order with SQLAlchemy's own bind
processors, and the selected columns with its result processors: the driver's rows come
back as the very values SQLAlchemy would have produced. Shared by the SQLite and the
PostgreSQL reader; only the dialect and how a column's result processor is found differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from audiocache.storage.records import Record

Processor = Callable[[Any], Any] | None

# Statements built per call (not prebuilt) must not pile up.
MAX_PLANS = 512


@dataclass(frozen=True)
class Plan:
    sql: str
    binds: tuple[tuple[str, bool, Any, Processor], ...]  # name, required, value, processor
    columns: tuple[tuple[str, Processor], ...]  # name, result processor

    def values(self, params: Mapping[str, Any] | None) -> list[Any]:
        """The positional values of the statement, from the caller's named ones."""
        values = []
        for name, required, default, process in self.binds:
            if params is not None and name in params:
                value = params[name]
            elif required:
                raise KeyError(f"missing value for bound parameter {name!r}")
            else:
                value = default
            values.append(process(value) if process is not None else value)
        return values

    def record(self, row: Sequence[Any]) -> Record:
        return {
            name: process(value) if process is not None else value
            for (name, process), value in zip(self.columns, row, strict=True)
        }

    def records(self, rows: Iterable[Sequence[Any]]) -> list[Record]:
        return [self.record(row) for row in rows]


class Plans:
    """The plans of one reader, by statement (statements are built once, at import or per
    query shape, so identity is the key)."""

    def __init__(
        self,
        dialect: sa.Dialect,
        result_processor: Callable[[sa.types.TypeEngine[Any]], Processor] | None = None,
    ) -> None:
        self.dialect = dialect
        self._result_processor = result_processor or self._default_result_processor
        self._plans: dict[sa.Executable, Plan] = {}

    def get(self, statement: sa.Executable) -> Plan:
        return self._plans.get(statement) or self._compile(statement)

    def _default_result_processor(self, type_: sa.types.TypeEngine[Any]) -> Processor:
        return type_.dialect_impl(self.dialect).result_processor(self.dialect, None)

    def _compile(self, statement: sa.Executable) -> Plan:
        compiled = statement.compile(dialect=self.dialect)  # type: ignore[attr-defined]
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("expanding parameters (IN lists) are not supported here")
        binds = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(self.dialect).bind_processor(self.dialect)
            binds.append((name, bind.required, bind.value, process))
        columns = []
        for column in statement.selected_columns:  # type: ignore[attr-defined]
            columns.append((column.key, self._result_processor(column.type)))
        plan = Plan(compiled.string, tuple(binds), tuple(columns))
        if len(self._plans) >= MAX_PLANS:
            self._plans.clear()
        self._plans[statement] = plan
        return plan
