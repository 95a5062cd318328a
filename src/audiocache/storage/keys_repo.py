"""API keys: only a sha256 of each key is stored; the key itself is shown once."""

from __future__ import annotations

import hashlib
import secrets

import sqlalchemy as sa

from audiocache.models import ApiKey
from audiocache.storage.db import Database, utcnow
from audiocache.storage.point_reader import Record
from audiocache.storage.tables import api_keys

KEY_PREFIX = "ack"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


_ACTIVE = sa.select(api_keys).where(
    api_keys.c.key_hash == sa.bindparam("key_hash"), api_keys.c.revoked_at.is_(None)
)


class ApiKeyRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, account_id: str, grants: set[str] | frozenset[str], label: str = ""
    ) -> tuple[ApiKey, str]:
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        now = utcnow()
        async with self.db.write() as conn:
            await conn.execute(
                api_keys.insert().values(
                    key_id=key_id,
                    account_id=account_id,
                    key_hash=hash_key(key),
                    grants=" ".join(sorted(grants)),
                    label=label,
                    created_at=now,
                )
            )
        return ApiKey(key_id, account_id, frozenset(grants), label, now, None), key

    async def find_active(self, key: str) -> ApiKey | None:
        row = await self.db.first(_ACTIVE, {"key_hash": hash_key(key)})
        return _to_key(row) if row else None

    async def list_keys(self, account_id: str | None = None) -> list[ApiKey]:
        query = sa.select(api_keys).order_by(api_keys.c.id)
        if account_id is not None:
            query = query.where(api_keys.c.account_id == account_id)
        async with self.db.read() as conn:
            return [_to_key(row._mapping) for row in await conn.execute(query)]

    async def revoke(self, key_id: str) -> bool:
        async with self.db.write() as conn:
            result = await conn.execute(
                api_keys.update()
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return result.rowcount > 0


def _to_key(row: Record) -> ApiKey:
    grants = frozenset(g for g in row["grants"].split(" ") if g)
    return ApiKey(
        row["key_id"], row["account_id"], grants, row["label"], row["created_at"], row["revoked_at"]
    )
