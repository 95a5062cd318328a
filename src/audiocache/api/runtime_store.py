"""Cache in front of the runtime's own TTS: lookup (one phrase or a batch) and store.

Routes are thin: parse → ``cache/runtime_store.py`` → shape. A miss is 404 ``NOT_CACHED`` in
the envelope (not 204: a client that only checks the status cannot take an empty body for
audio, and the envelope says which phrase is missing by correlation id in the logs).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from audiocache.api.audio_response import audio_response
from audiocache.api.deps import ServicesDep, caller
from audiocache.api.docs import AUDIO_WAV, errors, json_body
from audiocache.api.requests import parse_json, parse_json_text
from audiocache.api.schemas import AudioCacheEntry, VoiceTuningConfig, _Strict
from audiocache.api.uploads import read_details_form, upload_slot
from audiocache.audio.formats import parse_output_format
from audiocache.cache import runtime_store
from audiocache.cache.keys import KeyParts
from audiocache.errors import InvalidInput, InvalidSettings, NotCached
from audiocache.models import Agent, Principal
from audiocache.services import Services

router = APIRouter(prefix="/v1/agents/{agentId}/audio-cache", tags=["Audio Cache (audiocache)"])
READ, WRITE = "audio_cache:read", "audio_cache:write"
MAX_LOOKUP_PHRASES = 500


class PhraseKey(_Strict):
    """The parts of the canonical key, as the runtime path (``POST /v1/agents/{id}/tts``)
    takes them: the same phrase here and there is the same entry."""

    text: str
    voice: str | None = Field(None, max_length=200)
    language: str | None = Field(None, max_length=35)
    config: VoiceTuningConfig | None = None


class LookupRequest(PhraseKey):
    output_format: str | None = Field(
        None,
        max_length=32,
        description="As the download's output_format: wav (as stored, default), "
        "wav_8000…wav_48000, pcm_8000…pcm_48000, ulaw_8000, alaw_8000, …",
    )


class LookupBatchRequest(_Strict):
    phrases: Annotated[list[PhraseKey], Field(min_length=1, max_length=MAX_LOOKUP_PHRASES)]


class PhraseStatus(BaseModel):
    index: int
    text: str
    cached: bool
    entryId: str | None = None


class LookupBatchResponse(BaseModel):
    results: list[PhraseStatus]
    cached: int
    missing: int


class StoreResponse(BaseModel):
    stored: bool = Field(description="The phrase is in the cache now (stored or already there)")
    created: bool = Field(description="This call stored it (False: cached already, or refused)")
    reason: str | None = Field(
        None, description="Why it was not stored: 'personal_data' or 'admission'"
    )
    entry: AudioCacheEntry | None = None


async def _parts(services: Services, agent: Agent, phrase: PhraseKey) -> KeyParts:
    return await runtime_store.key_parts(
        services.cache,
        agent,
        phrase.text,
        voice=phrase.voice,
        language=phrase.language,
        config=phrase.config.as_config() if phrase.config else None,
    )


@router.post(
    "/lookup",
    operation_id="lookupAudioCache",
    response_model=None,
    summary="The cached audio of a phrase, or 404 NOT_CACHED; adds no hit, count or TTL refresh",
    response_class=Response,
    responses={
        200: {"description": "The cached audio", "content": AUDIO_WAV},
        **errors(400, 401, 403, 404, 503),
    },
    openapi_extra=json_body(LookupRequest),
)
async def lookup(
    request: Request,
    agentId: str,
    principal: Principal = caller(READ),
    services: Services = ServicesDep,
) -> Response:
    body = await parse_json(request, LookupRequest)
    fmt = parse_output_format(body.output_format, request.headers.get("accept"))
    agent = await services.agents.owned(principal.account_id, agentId)
    entry = await runtime_store.lookup(services.cache, agent, await _parts(services, agent, body))
    if entry is None:
        raise NotCached()
    stored = await services.variants.stored(entry.blob_sha256, entry.size_bytes, fmt)
    headers = {"X-Audio-Cache": "hit", "X-Audio-Cache-Entry-Id": str(entry.id)}
    return await audio_response(services.blobs, stored, extra_headers=headers)


@router.post(
    "/lookup-batch",
    operation_id="lookupAudioCacheBatch",
    summary="Which of these phrases are cached (the CI check); adds no hit, count or TTL refresh",
    response_model=LookupBatchResponse,
    responses=errors(400, 401, 403, 404, 503),
    openapi_extra=json_body(LookupBatchRequest),
)
async def lookup_batch(
    request: Request,
    agentId: str,
    principal: Principal = caller(READ),
    services: Services = ServicesDep,
) -> LookupBatchResponse:
    body = await parse_json(request, LookupBatchRequest)
    agent = await services.agents.owned(principal.account_id, agentId)
    results = []
    for index, phrase in enumerate(body.phrases):
        entry = await runtime_store.lookup(
            services.cache, agent, await _parts(services, agent, phrase)
        )
        results.append(
            PhraseStatus(
                index=index,
                text=phrase.text,
                cached=entry is not None,
                entryId=str(entry.id) if entry else None,
            )
        )
    cached = sum(r.cached for r in results)
    return LookupBatchResponse(results=results, cached=cached, missing=len(results) - cached)


@router.post(
    "/store",
    operation_id="storeAudioCache",
    summary="Store audio the runtime synthesized itself, under the phrase's canonical key",
    response_model=StoreResponse,
    responses=errors(400, 401, 403, 404, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "settings"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "settings": {
                                "type": "string",
                                "description": 'JSON {"text": string, "voice"?: string, '
                                '"language"?: string, "config"?: VoiceTuningConfig}',
                            },
                        },
                    }
                }
            },
        }
    },
)
async def store(
    request: Request,
    agentId: str,
    principal: Principal = caller(WRITE),
    services: Services = ServicesDep,
) -> StoreResponse:
    with upload_slot(request):  # held until stored: the slots bound the WAVs in memory
        form = await read_details_form(request, services.settings.max_upload_bytes)
        try:
            phrase = parse_json_text(form.settings_text, PhraseKey, what="settings")
        except InvalidInput as exc:
            raise InvalidSettings(exc.message) from exc
        agent = await services.agents.owned(principal.account_id, agentId)
        parts = await _parts(services, agent, phrase)
        result = await runtime_store.store(services.cache, agent, parts, form.wav)
    return StoreResponse(
        stored=result.entry is not None,
        created=result.created,
        reason=result.reason,
        entry=AudioCacheEntry.of(result.entry) if result.entry else None,
    )
