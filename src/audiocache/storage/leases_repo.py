"""Synthesis leases: a row per phrase being synthesized, owned by one holder until it
expires. Taking one is a single upsert that only overwrites an expired lease, so on SQLite
and PostgreSQL alike exactly one of many concurrent takers gets it."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from audiocache.storage.db import Database, utcnow
from audiocache.storage.tables import synthesis_leases as leases

_HOLDER = sa.select(leases.c.holder, leases.c.expires_at).where(
    leases.c.agent_id == sa.bindparam("agent_id"), leases.c.cache_key == sa.bindparam("cache_key")
)


class LeaseRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def try_acquire(
        self,
        agent_id: str,
        cache_key: str,
        holder: str,
        ttl_seconds: float,
        *,
        now: datetime | None = None,  # the caller's clock (the evictor's, in tests)
    ) -> bool:
        now = now or utcnow()
        expires = now + timedelta(seconds=ttl_seconds)
        insert = self.db.insert(leases).values(
            agent_id=agent_id, cache_key=cache_key, holder=holder, expires_at=expires
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[leases.c.agent_id, leases.c.cache_key],
            set_={"holder": holder, "expires_at": expires},
            where=sa.or_(leases.c.expires_at < now, leases.c.holder == holder),
        ).returning(leases.c.holder)
        async with self.db.write() as conn:
            row = (await conn.execute(upsert)).first()
        return row is not None and row.holder == holder

    async def is_live(self, agent_id: str, cache_key: str) -> bool:
        """Someone holds an unexpired lease (a cheap point read: waiters poll it)."""
        row = await self.db.first(_HOLDER, {"agent_id": agent_id, "cache_key": cache_key})
        return row is not None and row["expires_at"] >= utcnow()

    async def renew(
        self,
        agent_id: str,
        cache_key: str,
        holder: str,
        ttl_seconds: float,
        *,
        now: datetime | None = None,
    ) -> bool:
        expires = (now or utcnow()) + timedelta(seconds=ttl_seconds)
        async with self.db.write() as conn:
            result = await conn.execute(
                leases.update()
                .where(
                    leases.c.agent_id == agent_id,
                    leases.c.cache_key == cache_key,
                    leases.c.holder == holder,
                )
                .values(expires_at=expires)
            )
        return bool(result.rowcount)

    async def release(self, agent_id: str, cache_key: str, holder: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                leases.delete().where(
                    leases.c.agent_id == agent_id,
                    leases.c.cache_key == cache_key,
                    leases.c.holder == holder,
                )
            )
