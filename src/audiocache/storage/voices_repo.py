"""The account voice library and the one cached sample of each voice."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from audiocache.storage.db import Database, utcnow
from audiocache.storage.pending import queue_blob_deletes
from audiocache.storage.point_reader import Record
from audiocache.storage.tables import voice_samples, voices

_VOICE = sa.select(voices).where(
    voices.c.id == sa.bindparam("voice_id"), voices.c.account_id == sa.bindparam("account_id")
)


@dataclass(frozen=True)
class LibraryVoice:
    id: str
    account_id: str
    name: str
    provider: str
    provider_voice_id: str
    config: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class VoiceSample:
    voice_id: str
    sample_key: str
    text: str
    blob_sha256: str
    size_bytes: int


class VoiceRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, values: Mapping[str, Any]) -> LibraryVoice:
        now = utcnow()
        async with self.db.write() as conn:
            await conn.execute(
                voices.insert().values(**_encode(values), created_at=now, updated_at=now)
            )
        voice = await self.get(values["account_id"], values["id"])
        assert voice is not None
        return voice

    async def get(self, account_id: str, voice_id: str) -> LibraryVoice | None:
        row = await self.db.first(_VOICE, {"voice_id": voice_id, "account_id": account_id})
        return _to_voice(row) if row else None

    async def list_for_account(self, account_id: str) -> list[LibraryVoice]:
        query = (
            sa.select(voices)
            .where(voices.c.account_id == account_id)
            .order_by(voices.c.created_at, voices.c.id)
        )
        async with self.db.read() as conn:
            return [_to_voice(row._mapping) for row in await conn.execute(query)]

    async def update(self, voice: LibraryVoice, values: Mapping[str, Any]) -> LibraryVoice:
        if values:
            async with self.db.write() as conn:
                await conn.execute(
                    voices.update()
                    .where(voices.c.id == voice.id)
                    .values(**_encode(values), updated_at=utcnow())
                )
        updated = await self.get(voice.account_id, voice.id)
        assert updated is not None
        return updated

    async def sample(self, voice_id: str) -> VoiceSample | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(voice_samples).where(voice_samples.c.voice_id == voice_id)
                )
            ).first()
        return _to_sample(row._mapping) if row else None

    async def save_sample(self, sample: VoiceSample, before_commit: Any = None) -> None:
        """Point the voice at its new sample; the previous sample's blob is queued."""
        async with self.db.write() as conn:
            old = (
                await conn.execute(
                    sa.select(voice_samples.c.blob_sha256).where(
                        voice_samples.c.voice_id == sample.voice_id
                    )
                )
            ).scalar()
            await conn.execute(
                voice_samples.delete().where(voice_samples.c.voice_id == sample.voice_id)
            )
            await conn.execute(
                voice_samples.insert().values(**sample.__dict__, created_at=utcnow())
            )
            if old and old != sample.blob_sha256:
                await queue_blob_deletes(conn, [old])
            if before_commit is not None:
                await before_commit()


def _encode(values: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(values)
    if "config" in row:
        row["config_json"] = json.dumps(row.pop("config"), sort_keys=True)
    if "metadata" in row:
        row["metadata_json"] = json.dumps(row.pop("metadata"), sort_keys=True)
    return row


def _to_sample(row: Record) -> VoiceSample:
    data = dict(row)
    data.pop("created_at")
    return VoiceSample(**data)


def _to_voice(row: Record) -> LibraryVoice:
    data = dict(row)
    data["config"] = json.loads(data.pop("config_json") or "{}")
    data["metadata"] = json.loads(data.pop("metadata_json") or "{}")
    return LibraryVoice(**data)
