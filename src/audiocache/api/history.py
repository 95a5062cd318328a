"""An entry's take history (audiocache's own): list the earlier takes, download one, restore
one. What keeps them and how a restore is written: ``cache/history.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from audiocache.api.audio_response import BlobResponse, audio_response
from audiocache.api.deps import ServicesDep, caller
from audiocache.api.docs import AUDIO_WAV, errors
from audiocache.api.schemas import AudioCacheEntry, as_utc
from audiocache.audio.formats import parse_output_format
from audiocache.cache.query import parse_entry_id
from audiocache.cache.variants import filename_for
from audiocache.errors import InvalidId
from audiocache.models import Entry, Principal, Take
from audiocache.services import Services

router = APIRouter(
    prefix="/v1/agents/{agentId}/audio-cache/{entryId}/history",
    tags=["Audio Cache (audiocache)"],
)
READ, WRITE = "audio_cache:read", "audio_cache:write"


class TakeSettings(BaseModel):
    text: str = Field(description="The transcript the take was made or uploaded with")
    config: dict[str, Any] = Field(description="Its voice tuning (VoiceTuningConfig fields)")


class TakeOut(BaseModel):
    id: str = Field(description="The take's id (numeric string), unique per installation")
    createdAt: datetime = Field(description="When it left the entry (was replaced)")
    reason: str = Field(
        description="What replaced it: replace, replace_with_settings, regenerate or restore"
    )
    transcript: str
    duration: float
    size: int = Field(description="Bytes of the take's WAV")
    sha256: str = Field(description="sha256 of the take's WAV (its blob)")
    provider: str
    providerVoiceId: str
    languageCode: str
    regenerated: bool
    imported: bool
    audioFilename: str | None
    settings: TakeSettings

    @classmethod
    def of(cls, take: Take) -> TakeOut:
        return cls(
            id=str(take.id),
            createdAt=as_utc(take.created_at),
            reason=take.reason,
            transcript=take.transcript,
            duration=round(take.duration, 6),
            size=take.size_bytes,
            sha256=take.blob_sha256,
            provider=take.provider,
            providerVoiceId=take.provider_voice_id,
            languageCode=take.language_code,
            regenerated=take.regenerated,
            imported=take.imported,
            audioFilename=take.audio_filename,
            settings=TakeSettings(text=take.transcript, config=take.config),
        )


class TakeHistoryResponse(BaseModel):
    takes: list[TakeOut] = Field(description="Newest first")
    historyLimit: int = Field(description="Takes kept per entry (AUDIOCACHE_TAKE_HISTORY_LIMIT)")


def parse_take_id(value: str) -> int:
    try:
        return parse_entry_id(value)
    except InvalidId as exc:
        raise InvalidId(f"Invalid ID: {value[:40]!r} is not a numeric take ID") from exc


async def _entry(services: Services, principal: Principal, agent_id: str, entry_id: str) -> Entry:
    parsed = parse_entry_id(entry_id)
    agent = await services.agents.owned(principal.account_id, agent_id)
    return await services.curation.get_entry(agent.id, parsed)


@router.get(
    "",
    operation_id="listAudioCacheEntryTakes",
    summary="Earlier takes of an entry, newest first",
    description="What replace, replace-with-settings, regenerate and restore moved out of "
    "the entry, at most AUDIOCACHE_TAKE_HISTORY_LIMIT per entry (the oldest goes first).",
    response_model=TakeHistoryResponse,
    responses=errors(400, 401, 403, 404),
)
async def list_takes(
    agentId: str,
    entryId: str,
    principal: Principal = caller(READ),
    services: Services = ServicesDep,
) -> TakeHistoryResponse:
    entry = await _entry(services, principal, agentId, entryId)
    takes = await services.history.of_entry(entry)
    return TakeHistoryResponse(
        takes=[TakeOut.of(t) for t in takes],
        historyLimit=services.settings.take_history_limit,
    )


@router.get(
    "/{takeId}/file",
    operation_id="downloadAudioCacheEntryTake",
    response_model=None,
    summary="Download an earlier take's audio",
    description="Served like the entry's own file: ETag, byte ranges, output_format. An "
    "unknown take is 404 TAKE_NOT_FOUND.",
    response_class=Response,
    responses={
        200: {"description": "The take's WAV audio", "content": AUDIO_WAV},
        206: {"description": "Part of it (Range)", "content": AUDIO_WAV},
        **errors(400, 401, 403, 404, 416, 503),
    },
)
async def download_take(
    request: Request,
    agentId: str,
    entryId: str,
    takeId: str,
    output_format: Annotated[
        str | None,
        Query(description="As for the entry's file: wav, wav_8000, ulaw_8000, …", max_length=32),
    ] = None,
    principal: Principal = caller(READ),
    services: Services = ServicesDep,
) -> BlobResponse:
    take_id = parse_take_id(takeId)
    fmt = parse_output_format(output_format, request.headers.get("accept"))
    entry = await _entry(services, principal, agentId, entryId)
    take = await services.history.get(entry, take_id)
    audio = await services.variants.stored(take.blob_sha256, take.size_bytes, fmt)
    filename = filename_for(take.audio_filename or f"{entry.id}-take-{take.id}.wav", fmt)
    return await audio_response(services.blobs, audio, filename=filename)


@router.post(
    "/{takeId}/restore",
    operation_id="restoreAudioCacheEntryTake",
    summary="Bring an earlier take back as the entry's audio",
    description="The take's audio and details (transcript, tuning, flags) become the "
    "entry's again and the take leaves the history; the audio it replaces joins the history "
    "with reason 'restore'. Crash safe: either all of it happens or none. 404 "
    "TAKE_NOT_FOUND for an unknown take; 409 if another entry of the agent now caches the "
    "take's text with its settings.",
    response_model=AudioCacheEntry,
    responses=errors(400, 401, 403, 404, 409, 503),
)
async def restore_take(
    agentId: str,
    entryId: str,
    takeId: str,
    principal: Principal = caller(WRITE),
    services: Services = ServicesDep,
) -> AudioCacheEntry:
    take_id = parse_take_id(takeId)
    entry = await _entry(services, principal, agentId, entryId)
    return AudioCacheEntry.of(await services.history.restore(entry, take_id))
