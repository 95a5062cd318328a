"""The runtime path: text + voice → audio, from the cache or synthesized once."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from audiocache.api.audio_response import BlobResponse
from audiocache.api.deps import ServicesDep, caller
from audiocache.api.docs import AUDIO_WAV, errors, json_body
from audiocache.api.requests import parse_json
from audiocache.api.schemas import SpeakRequest
from audiocache.models import Principal
from audiocache.services import Services

router = APIRouter(tags=["Runtime"])

_HEADERS_DOC = {
    "X-Audio-Cache": {"description": "hit or miss", "schema": {"type": "string"}},
    "X-Audio-Cache-Entry-Id": {
        "description": "The cache entry serving (or now storing) this phrase, if any",
        "schema": {"type": "string"},
    },
}


@router.post(
    "/v1/agents/{agentId}/tts",
    operation_id="speak",
    response_model=None,
    summary="Lookup-or-synthesize: the phrase from the cache, or synthesized once",
    response_class=Response,
    responses={
        200: {"description": "WAV audio", "content": AUDIO_WAV, "headers": _HEADERS_DOC},
        **errors(400, 401, 403, 404, 502),
    },
    openapi_extra=json_body(SpeakRequest),
)
async def speak(
    request: Request,
    agentId: str,
    principal: Principal = caller("audio_cache:read"),
    services: Services = ServicesDep,
) -> Response | BlobResponse:
    body = await parse_json(request, SpeakRequest)
    agent = await services.agents.owned(principal.account_id, agentId)
    result = await services.cache.speak(
        agent,
        body.text,
        voice=body.voice,
        language=body.language,
        config=body.config.as_config() if body.config else None,
    )
    headers = {"X-Audio-Cache": "hit" if result.hit else "miss"}
    if result.entry is not None:
        headers["X-Audio-Cache-Entry-Id"] = str(result.entry.id)
    if result.audio is not None:
        return Response(result.audio, media_type="audio/wav", headers=headers)
    assert result.entry is not None
    entry, blobs = result.entry, services.blobs
    return BlobResponse(
        open=lambda start, end: blobs.open_range(entry.blob_sha256, start, end),
        size=entry.size_bytes,
        etag=entry.blob_sha256,
        media_type="audio/wav",
        extra_headers=headers,
    )
