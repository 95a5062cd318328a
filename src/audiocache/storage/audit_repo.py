"""The audit log in SQL: batches of events in one transaction, an account's page newest
first, and retention deletes in bounded batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import datetime

import sqlalchemy as sa

from audiocache.models import AuditEvent, AuditQuery
from audiocache.storage.db import Database
from audiocache.storage.records import Record
from audiocache.storage.tables import audit_log

_LIMITS = {c.name: c.type.length for c in audit_log.columns if isinstance(c.type, sa.String)}


class AuditRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, events: Sequence[AuditEvent]) -> None:
        """Store a batch in one transaction (one multi-row INSERT)."""
        if not events:
            return
        rows = [_row(e) for e in events]
        async with self.db.write() as conn:
            await conn.execute(audit_log.insert(), rows)

    async def page(self, account_id: str, query: AuditQuery) -> tuple[list[AuditEvent], int]:
        """The account's events the query selects, newest first, and how many there are."""
        condition = _condition(account_id, query)
        select = (
            sa.select(audit_log)
            .where(condition)
            .order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
            .limit(query.limit)
            .offset(query.offset)
        )
        count = sa.select(sa.func.count()).select_from(audit_log).where(condition)
        async with self.db.read() as conn:
            found = [_event(row._mapping) for row in await conn.execute(select)]
            total = (await conn.execute(count)).scalar_one()
        return found, int(total)

    async def delete_before(self, cutoff: datetime, batch: int) -> int:
        """Delete at most ``batch`` events older than ``cutoff``, oldest first, in one
        short transaction; returns how many went."""
        oldest = (
            sa.select(audit_log.c.id)
            .where(audit_log.c.at < cutoff)
            .order_by(audit_log.c.id)
            .limit(batch)
            .scalar_subquery()
        )
        async with self.db.write() as conn:
            result = await conn.execute(audit_log.delete().where(audit_log.c.id.in_(oldest)))
        return int(result.rowcount or 0)


def _condition(account_id: str, query: AuditQuery) -> sa.ColumnElement[bool]:
    clauses = [audit_log.c.account_id == account_id]
    if query.operation is not None:
        clauses.append(audit_log.c.operation == query.operation)
    if query.since is not None:
        clauses.append(audit_log.c.at >= query.since)
    if query.until is not None:
        clauses.append(audit_log.c.at < query.until)
    return sa.and_(*clauses)


def _row(event: AuditEvent) -> dict[str, object]:
    row = {k: v for k, v in asdict(event).items() if k != "id"}
    row["entry_ids"] = ",".join(event.entry_ids) or None  # numeric ids: no comma in one
    for name, length in _LIMITS.items():  # ids come from paths: never longer than a column
        value = row.get(name)
        if isinstance(value, str) and length is not None and len(value) > length:
            row[name] = value[:length]
    return row


_FIELDS = {f.name for f in fields(AuditEvent)}


def _event(row: Record) -> AuditEvent:
    values = {k: v for k, v in dict(row).items() if k in _FIELDS}
    values["entry_ids"] = tuple(values["entry_ids"].split(",")) if values["entry_ids"] else ()
    return AuditEvent(**values)
