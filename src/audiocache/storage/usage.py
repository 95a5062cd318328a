"""Per-agent usage counters (entries, bytes): kept in the transaction that changes them.

Every insert and delete of an entry adds its delta here, inside the same transaction, so
the counters are exact whenever a reader can see the rows. The list's unfiltered
``totalCount`` reads them instead of counting a million rows; quotas compare against them.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from audiocache.storage.tables import agent_usage

_ENTRY_COUNT = sa.select(agent_usage.c.entry_count).where(
    agent_usage.c.agent_id == sa.bindparam("agent_id")
)


@dataclass(frozen=True)
class Usage:
    entries: int
    bytes: int


async def create_usage(conn: AsyncConnection, agent_id: str) -> None:
    """The counters of a new agent (in the transaction that inserts the agent)."""
    await conn.execute(agent_usage.insert().values(agent_id=agent_id, entry_count=0, total_bytes=0))


async def add_usage(conn: AsyncConnection, agent_id: str, entries: int, size: int) -> None:
    """Add (or, negative, take away) entries and bytes. An agent without counters (deleted
    meanwhile) is a no-op: its rows go with it."""
    if entries == 0 and size == 0:
        return
    await conn.execute(
        agent_usage.update()
        .where(agent_usage.c.agent_id == agent_id)
        .values(
            entry_count=agent_usage.c.entry_count + entries,
            total_bytes=agent_usage.c.total_bytes + size,
        )
    )


async def entry_count(conn: AsyncConnection, agent_id: str) -> int | None:
    """The agent's entry count, or None if it has no counters."""
    value = await conn.scalar(_ENTRY_COUNT, {"agent_id": agent_id})
    return int(value) if value is not None else None


async def read_usage(conn: AsyncConnection, agent_id: str) -> Usage | None:
    row = (
        await conn.execute(sa.select(agent_usage).where(agent_usage.c.agent_id == agent_id))
    ).first()
    return Usage(int(row.entry_count), int(row.total_bytes)) if row is not None else None
