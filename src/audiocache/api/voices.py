"""The account voice library, and the signed sample links it hands out."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from audiocache.api.audio_response import BlobResponse, blob_response
from audiocache.api.deps import ServicesDep, caller
from audiocache.api.docs import AUDIO_WAV, errors, json_body
from audiocache.api.requests import parse_json
from audiocache.api.voice_schemas import (
    CreateVoiceRequest,
    GetVoiceResponse,
    ListVoicesResponse,
    UpdateVoiceRequest,
    VoiceResponse,
    VoiceSampleResponse,
)
from audiocache.config import Settings
from audiocache.errors import NotFound
from audiocache.models import Principal
from audiocache.services import Services

router = APIRouter(tags=["Voice Library"])
READ, WRITE = "voice_library:read", "voice_library:write"
BASE = "/v1/accounts/{accountId}/voice-library"


def sample_link_base(request: Request, settings: Settings) -> str:
    """Where a sample link points: the public URL; else the request's own base URL when its
    Host is trusted; else the address this connection reached, which a client cannot forge."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    trusted = settings.trusted_host_names()
    host = (request.url.hostname or "").lower()
    if "*" in trusted or host in trusted:
        return str(request.base_url).rstrip("/")
    server = request.scope.get("server")
    address, port = (server[0], server[1]) if server else (settings.host, settings.port)
    if ":" in address:
        address = f"[{address}]"
    default_port = {"http": 80, "https": 443}.get(request.url.scheme)
    netloc = address if port in (None, default_port) else f"{address}:{port}"
    return f"{request.url.scheme}://{netloc}{request.scope.get('root_path', '')}".rstrip("/")


def _own_account(principal: Principal, account_id: str) -> None:
    if account_id != principal.account_id:
        raise NotFound("Account ID does not exist.")


@router.get(
    BASE,
    operation_id="listVoices",
    summary="List all voices in the account's voice library",
    response_model=ListVoicesResponse,
    responses=errors(400, 401, 403, 404),
)
async def list_voices(
    accountId: str,
    language: Annotated[str | None, Query(max_length=35)] = None,
    gender: Annotated[Literal["male", "female", "neutral"] | None, Query()] = None,
    provider: Annotated[str | None, Query(max_length=64)] = None,
    isPolyVoice: Annotated[bool | None, Query()] = None,
    principal: Principal = caller(READ),
    services: Services = ServicesDep,
) -> ListVoicesResponse:
    _own_account(principal, accountId)
    found = await services.voices.search(
        accountId, language=language, gender=gender, provider=provider, is_poly_voice=isPolyVoice
    )
    return ListVoicesResponse(voices=[VoiceResponse.of(v) for v in found])


@router.post(
    BASE,
    operation_id="createVoice",
    summary="Register a new voice in the voice library",
    response_model=GetVoiceResponse,
    responses=errors(400, 401, 403, 404),
    openapi_extra=json_body(CreateVoiceRequest),
)
async def create_voice(
    request: Request,
    accountId: str,
    principal: Principal = caller(WRITE),
    services: Services = ServicesDep,
) -> GetVoiceResponse:
    body = await parse_json(request, CreateVoiceRequest)
    _own_account(principal, accountId)
    voice = await services.voices.register(
        accountId,
        name=body.name,
        provider=body.provider,
        provider_voice_id=body.providerVoiceId,
        config=body.config,
        metadata=body.voiceMetadata,
    )
    return GetVoiceResponse(voice=VoiceResponse.of(voice))


@router.get(
    BASE + "/{voiceId}",
    operation_id="getVoice",
    summary="Get a single voice from the voice library",
    response_model=GetVoiceResponse,
    responses=errors(401, 403, 404),
)
async def get_voice(
    accountId: str,
    voiceId: str,
    principal: Principal = caller(READ),
    services: Services = ServicesDep,
) -> GetVoiceResponse:
    _own_account(principal, accountId)
    return GetVoiceResponse(voice=VoiceResponse.of(await services.voices.get(accountId, voiceId)))


@router.patch(
    BASE + "/{voiceId}",
    operation_id="updateVoice",
    summary="Update a voice in the voice library",
    response_model=GetVoiceResponse,
    responses=errors(400, 401, 403, 404),
    openapi_extra=json_body(UpdateVoiceRequest),
)
async def update_voice(
    request: Request,
    accountId: str,
    voiceId: str,
    principal: Principal = caller(WRITE),
    services: Services = ServicesDep,
) -> GetVoiceResponse:
    body = await parse_json(request, UpdateVoiceRequest)
    _own_account(principal, accountId)
    voice = await services.voices.get(accountId, voiceId)
    updated = await services.voices.update(voice, body.changes())
    return GetVoiceResponse(voice=VoiceResponse.of(updated))


@router.get(
    BASE + "/{voiceId}/sample",
    operation_id="getVoiceSample",
    summary="Synthesize a short audio sample of a voice",
    response_model=VoiceSampleResponse,
    responses=errors(400, 401, 403, 404, 502, 503, 504),
)
async def voice_sample(
    request: Request,
    accountId: str,
    voiceId: str,
    principal: Principal = caller(READ),
    services: Services = ServicesDep,
) -> VoiceSampleResponse:
    _own_account(principal, accountId)
    link = await services.voices.sample(await services.voices.get(accountId, voiceId))
    base = sample_link_base(request, services.settings)
    return VoiceSampleResponse(
        voiceId=link.voice_id,
        sampleUrl=base + link.url_path,
        expiresInSeconds=link.expires_in,
        text=link.text,
    )


@router.api_route(
    "/v1/voice-samples/{token}",
    methods=["GET", "HEAD"],
    operation_id="downloadVoiceSample",
    summary="A voice sample behind a signed, expiring link (no API key needed)",
    response_model=None,
    responses={200: {"description": "The sample", "content": AUDIO_WAV}, **errors(403, 404, 503)},
)
async def download_sample(token: str, services: Services = ServicesDep) -> BlobResponse:
    sample = await services.voices.open_sample(token)
    return await blob_response(
        services.blobs,
        sample.blob_sha256,
        sample.size_bytes,
        media_type="audio/wav",
        filename=f"{sample.voice_id}-sample.wav",
    )
