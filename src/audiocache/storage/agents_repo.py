"""Agents of an account, their cache policy, and the cascade when one is deleted.

Clients name an agent by its public id, which is unique within its account only; entries
and cache keys refer to the internal id. The internal id is the public id when that is free
(every agent made before ids were scoped), else a generated one that no public id can take.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from audiocache.errors import Conflict
from audiocache.models import Agent, Entry
from audiocache.storage.db import Database, utcnow
from audiocache.storage.entries_repo import copy_entries
from audiocache.storage.pending import queue_blob_deletes
from audiocache.storage.tables import agent_usage, agents, entries
from audiocache.storage.takes_repo import drop_takes
from audiocache.storage.usage import create_usage

_BY_ID = sa.select(agents).where(agents.c.id == sa.bindparam("agent_id"))
_BY_PUBLIC_ID = sa.select(agents).where(
    agents.c.account_id == sa.bindparam("account_id"),
    agents.c.public_id == sa.bindparam("public_id"),
)
_ATTEMPTS = 3  # a concurrent create may take the chosen internal id between check and insert


class AgentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, **values: Any) -> Agent:
        """Insert an agent named ``values['public_id']`` in ``values['account_id']``;
        Conflict only if that account has an agent of that id already."""
        now = utcnow()
        values.setdefault("created_at", now)
        values.setdefault("updated_at", now)
        return await self._insert(values, copy_from=None)

    async def get(self, agent_id: str) -> Agent | None:
        """By internal id."""
        row = await self.db.first(_BY_ID, {"agent_id": agent_id})
        return Agent(**row) if row else None

    async def find(self, account_id: str, public_id: str) -> Agent | None:
        """The account's agent of that public id (another account's is None)."""
        row = await self.db.first(_BY_PUBLIC_ID, {"account_id": account_id, "public_id": public_id})
        return Agent(**row) if row else None

    async def with_public_id(self, public_id: str) -> list[Agent]:
        """Every account's agent of that public id (for the CLI, which has no account)."""
        query = sa.select(agents).where(agents.c.public_id == public_id).order_by(agents.c.id)
        async with self.db.read() as conn:
            return [Agent(**row._mapping) for row in await conn.execute(query)]

    async def list_for_account(self, account_id: str) -> list[Agent]:
        query = (
            sa.select(agents)
            .where(agents.c.account_id == account_id)
            .order_by(agents.c.created_at, agents.c.public_id)
        )
        async with self.db.read() as conn:
            return [Agent(**row._mapping) for row in await conn.execute(query)]

    async def update(self, agent_id: str, **values: Any) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                agents.update().where(agents.c.id == agent_id).values(updated_at=utcnow(), **values)
            )

    async def delete(self, agent_id: str) -> list[str]:
        """Remove the agent and its entries; returns the blob hashes queued for collection."""

        async def work(conn: AsyncConnection) -> list[str]:
            # The agent's row first (PostgreSQL; SQLite's write lock is the whole database):
            # an entry insert holds a key-share lock on it and then updates agent_usage, so
            # deleting agent_usage before the agent would deadlock with one under way.
            await conn.execute(
                sa.select(agents.c.id).where(agents.c.id == agent_id).with_for_update()
            )
            # Then its entries, locked in id order as every writer locks them (dialects.py),
            # not in whatever order the planner scans the delete by.
            found = (
                await conn.execute(
                    sa.select(entries.c.blob_sha256)
                    .where(entries.c.agent_id == agent_id)
                    .order_by(entries.c.id)
                    .with_for_update()
                )
            ).scalars()
            shas = sorted(set(found))
            await conn.execute(entries.delete().where(entries.c.agent_id == agent_id))
            shas += await drop_takes(conn, agent_id=agent_id, queue=False)
            await conn.execute(agent_usage.delete().where(agent_usage.c.agent_id == agent_id))
            await conn.execute(agents.delete().where(agents.c.id == agent_id))
            await queue_blob_deletes(conn, shas)
            return shas

        shas = await self.db.write_retrying(work)
        return shas

    async def duplicate(
        self, source_id: str, rekey: Callable[[Entry, str], str], **values: Any
    ) -> Agent:
        """Copy the agent (into its account, as ``values['public_id']``) and all its entries
        in one transaction; blobs are shared by hash.

        A cache key includes the agent's internal id, so the caller's ``rekey(entry,
        new_internal_id)`` computes each copy's key."""
        source = await self.get(source_id)
        assert source is not None
        now = utcnow()
        row = {
            "account_id": source.account_id,
            "greeting": source.greeting,
            "language_code": source.language_code,
            "voice_id": source.voice_id,
            "llm_model_id": source.llm_model_id,
            "admission": source.admission,
            "admission_min_hits": source.admission_min_hits,
            "admission_window_seconds": source.admission_window_seconds,
            "max_entries": source.max_entries,
            "max_bytes": source.max_bytes,
            "eviction": source.eviction,
            "ttl_seconds": source.ttl_seconds,
            "ttl_from": source.ttl_from,
            "created_at": now,
            "updated_at": now,
            **values,
        }
        return await self._insert(row, copy_from=(source_id, rekey))

    async def _insert(
        self, values: dict[str, Any], copy_from: tuple[str, Callable[[Entry, str], str]] | None
    ) -> Agent:
        account_id, public_id = values["account_id"], values["public_id"]
        for attempt in range(_ATTEMPTS):
            try:
                async with self.db.write() as conn:
                    if await self._taken_in_account(conn, account_id, public_id):
                        raise Conflict(f"Agent {public_id!r} already exists")
                    internal = await _free_internal_id(conn, public_id)
                    await conn.execute(agents.insert().values(**values, id=internal))
                    await create_usage(conn, internal)
                    if copy_from is not None:
                        source_id, rekey = copy_from
                        await copy_entries(conn, source_id, internal, _bound(rekey, internal))
            except IntegrityError:
                if attempt + 1 == _ATTEMPTS:
                    raise
                continue  # a concurrent writer won a race (PostgreSQL): look again
            created = await self.get(internal)
            if created is None:  # a concurrent DELETE came between the commit and this read
                raise Conflict(f"Agent {public_id!r} was deleted while it was being created")
            return created
        raise AssertionError("unreachable")

    @staticmethod
    async def _taken_in_account(conn: AsyncConnection, account_id: str, public_id: str) -> bool:
        found = await conn.scalar(
            sa.select(agents.c.id).where(
                agents.c.account_id == account_id, agents.c.public_id == public_id
            )
        )
        return found is not None


async def _free_internal_id(conn: AsyncConnection, public_id: str) -> str:
    """The public id itself if no agent has it as internal id, else a generated one. The
    generated kind starts with '_', which public ids may not contain: they never collide."""
    taken = await conn.scalar(sa.select(agents.c.id).where(agents.c.id == public_id))
    return public_id if taken is None else f"_{secrets.token_hex(8)}"


def _bound(rekey: Callable[[Entry, str], str], internal_id: str) -> Callable[[Entry], str]:
    return lambda entry: rekey(entry, internal_id)
