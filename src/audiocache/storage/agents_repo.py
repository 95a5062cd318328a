"""Agents of an account, their cache policy, and the cascade when one is deleted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from audiocache.errors import Conflict
from audiocache.models import Agent, Entry
from audiocache.storage.db import Database, utcnow
from audiocache.storage.entries_repo import copy_entries
from audiocache.storage.pending import queue_blob_deletes
from audiocache.storage.tables import agents, entries

_BY_ID = sa.select(agents).where(agents.c.id == sa.bindparam("agent_id"))


class AgentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, **values: Any) -> Agent:
        now = utcnow()
        values.setdefault("created_at", now)
        values.setdefault("updated_at", now)
        try:
            async with self.db.write() as conn:
                await conn.execute(agents.insert().values(**values))
        except IntegrityError as exc:
            raise Conflict(f"Agent {values['id']!r} already exists") from exc
        agent = await self.get(values["id"])
        assert agent is not None
        return agent

    async def get(self, agent_id: str) -> Agent | None:
        row = await self.db.first(_BY_ID, {"agent_id": agent_id})
        return Agent(**row) if row else None

    async def exists(self, agent_id: str) -> bool:
        return await self.get(agent_id) is not None

    async def list_for_account(self, account_id: str) -> list[Agent]:
        query = (
            sa.select(agents)
            .where(agents.c.account_id == account_id)
            .order_by(agents.c.created_at, agents.c.id)
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
        async with self.db.write() as conn:
            shas = list(
                (
                    await conn.execute(
                        sa.select(entries.c.blob_sha256)
                        .where(entries.c.agent_id == agent_id)
                        .distinct()
                    )
                ).scalars()
            )
            await conn.execute(entries.delete().where(entries.c.agent_id == agent_id))
            await conn.execute(agents.delete().where(agents.c.id == agent_id))
            await queue_blob_deletes(conn, shas)
        return shas

    async def duplicate(
        self, source_id: str, rekey: Callable[[Entry], str], **values: Any
    ) -> Agent:
        """Copy the agent and all its entries in one transaction; blobs are shared by hash.

        The entries keep their cache keys' inputs; keys are recomputed by the caller's
        ``rekey`` (which sees the new agent id in ``values``) because a key includes the agent.
        """
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
            "created_at": now,
            "updated_at": now,
            **values,
        }
        try:
            async with self.db.write() as conn:
                await conn.execute(agents.insert().values(**row))
                await copy_entries(conn, source_id, values["id"], rekey)
        except IntegrityError as exc:
            raise Conflict(f"Agent {values['id']!r} already exists") from exc
        created = await self.get(values["id"])
        assert created is not None
        return created
