"""audiocache's own curation actions on cache entries: regenerate, pin, warm up.

Not part of the Agents API; they sit beside its audio-cache operations and use the same
permissions (``audio_cache:write``) and envelope.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from audiocache.api.deps import ServicesDep, caller
from audiocache.api.docs import errors, json_body
from audiocache.api.requests import parse_json
from audiocache.api.schemas import AudioCacheEntry, SpeakRequest
from audiocache.cache.query import parse_entry_id
from audiocache.models import Principal
from audiocache.services import Services

router = APIRouter(prefix="/v1/agents/{agentId}/audio-cache", tags=["Audio Cache (audiocache)"])
WRITE = "audio_cache:write"
MAX_WARM_PHRASES = 100


class WarmRequest(BaseModel):
    phrases: list[SpeakRequest] = Field(min_length=1, max_length=MAX_WARM_PHRASES)
    pin: bool = True


class WarmResponse(BaseModel):
    entries: list[AudioCacheEntry]
    synthesized: int = Field(description="How many phrases were not cached before")


@router.post(
    "/{entryId}/regenerate",
    operation_id="regenerateAudioCacheEntry",
    summary="Synthesize the entry's text again in place (sets regenerated)",
    response_model=AudioCacheEntry,
    responses=errors(400, 401, 403, 404, 409, 502, 503, 504),
)
async def regenerate(
    agentId: str,
    entryId: str,
    principal: Principal = caller(WRITE),
    services: Services = ServicesDep,
) -> AudioCacheEntry:
    entry_id = parse_entry_id(entryId)
    agent = await services.agents.owned(principal.account_id, agentId)
    entry = await services.curation.get_entry(agent.id, entry_id)
    return AudioCacheEntry.of(await services.curation.regenerate(entry))


async def _pin(
    principal: Principal, services: Services, agent_id: str, entry_id: str, pinned: bool
) -> AudioCacheEntry:
    parsed = parse_entry_id(entry_id)
    agent = await services.agents.owned(principal.account_id, agent_id)
    entry = await services.curation.get_entry(agent.id, parsed)
    return AudioCacheEntry.of(await services.curation.set_pinned(entry, pinned))


@router.put(
    "/{entryId}/pin",
    operation_id="pinAudioCacheEntry",
    summary="Pin an entry (never evicted)",
    response_model=AudioCacheEntry,
    responses=errors(400, 401, 403, 404),
)
async def pin(
    agentId: str,
    entryId: str,
    principal: Principal = caller(WRITE),
    services: Services = ServicesDep,
) -> AudioCacheEntry:
    return await _pin(principal, services, agentId, entryId, True)


@router.delete(
    "/{entryId}/pin",
    operation_id="unpinAudioCacheEntry",
    summary="Unpin an entry",
    response_model=AudioCacheEntry,
    responses=errors(400, 401, 403, 404),
)
async def unpin(
    agentId: str,
    entryId: str,
    principal: Principal = caller(WRITE),
    services: Services = ServicesDep,
) -> AudioCacheEntry:
    return await _pin(principal, services, agentId, entryId, False)


@router.post(
    "/warm",
    operation_id="warmAudioCache",
    summary="Synthesize and store phrases ahead of time (pinned by default)",
    response_model=WarmResponse,
    responses=errors(400, 401, 403, 404, 502, 503, 504),
    openapi_extra=json_body(WarmRequest),
)
async def warm(
    request: Request,
    agentId: str,
    principal: Principal = caller(WRITE),
    services: Services = ServicesDep,
) -> WarmResponse:
    body = await parse_json(request, WarmRequest)
    agent = await services.agents.owned(principal.account_id, agentId)
    warmed, synthesized = [], 0
    for phrase in body.phrases:
        entry, created = await services.cache.warm(
            agent,
            phrase.text,
            voice=phrase.voice,
            language=phrase.language,
            config=phrase.config.as_config() if phrase.config else None,
            pin=body.pin,
        )
        warmed.append(AudioCacheEntry.of(entry))
        synthesized += created
    return WarmResponse(entries=warmed, synthesized=synthesized)
