"""The seven Audio Cache operations of the Agents API: parse → one domain call → shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from audiocache.api.audio_response import BlobResponse, audio_response, offload_of
from audiocache.api.deps import RouteSpec, ServicesDep, caller
from audiocache.api.docs import AUDIO_WAV, errors, json_body
from audiocache.api.observe import note_for_audit
from audiocache.api.presign import presigner_of
from audiocache.api.requests import parse_json, parse_json_text, sanitize_filename
from audiocache.api.schemas import (
    AudioCacheEntry,
    BulkDeleteAudioCacheRequest,
    BulkDeleteAudioCacheResponse,
    DeleteAudioCacheEntryResponse,
    DetailsSettings,
    ListAudioCacheResponse,
    SynthesizeAudioRequest,
)
from audiocache.api.uploads import read_details_form, read_upload, upload_slot
from audiocache.audio.formats import parse_output_format
from audiocache.audio.wav import parse_wav
from audiocache.cache.query import parse_entry_id, parse_filters, parse_sort
from audiocache.cache.variants import filename_for
from audiocache.errors import (
    InvalidId,
    InvalidInput,
    InvalidSettings,
    NotFound,
    StorageUnavailable,
)
from audiocache.models import EntryQuery, Principal
from audiocache.services import Services

PREFIX = "/v1/agents/{agentId}/audio-cache"
router = APIRouter(prefix=PREFIX, tags=["Audio Cache"])
READ, WRITE = "audio_cache:read", "audio_cache:write"
DOWNLOAD = RouteSpec(PREFIX, "/{entryId}/file", READ)  # also answered by api/hot_path.py


@router.get(
    "",
    operation_id="listAudioCacheEntries",
    summary="List cached audio entries",
    response_model=ListAudioCacheResponse,
    responses=errors(400, 401, 403, 404),
)
async def list_entries(
    agentId: str,
    limit: Annotated[int, Query(ge=1, le=200, description="Max entries to return (1-200)")] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62, description="Pagination offset")] = 0,
    sort: Annotated[
        str | None, Query(description="e.g. 'hit_count:desc', 'duration:asc'", max_length=200)
    ] = None,
    filter: Annotated[
        list[str] | None,
        Query(
            description="field:op:value, e.g. 'transcript:contains:thanks', 'provider:eq:espeak',"
            " 'language:eq:en-US', 'voice:eq:en-us', 'imported:eq:true'; repeat or join with"
            " ' and '",
            max_length=500,
        ),
    ] = None,
    principal: Principal = caller(READ),
    services: Services = ServicesDep,
) -> ListAudioCacheResponse:
    query = EntryQuery(limit, offset, parse_sort(sort), parse_filters(filter or []))
    agent = await services.agents.owned(principal.account_id, agentId)
    found, total = await services.curation.list_entries(agent.id, query)
    return ListAudioCacheResponse(
        entries=[AudioCacheEntry.of(e) for e in found],
        totalCount=total,
    )


@router.delete(
    "/{entryId}",
    operation_id="deleteAudioCacheEntry",
    summary="Delete a cached audio entry",
    response_model=DeleteAudioCacheEntryResponse,
    responses=errors(400, 401, 403, 404),
)
async def delete_entry(
    agentId: str,
    entryId: str,
    principal: Principal = caller(WRITE),
    services: Services = ServicesDep,
) -> DeleteAudioCacheEntryResponse:
    entry_id = parse_entry_id(entryId)
    agent = await services.agents.owned(principal.account_id, agentId)
    if not await services.curation.delete_entries(agent.id, [entry_id]):
        raise NotFound("Audio cache entry not found")
    return DeleteAudioCacheEntryResponse(success=True)


@router.head(
    DOWNLOAD.path,
    operation_id="headAudioCacheFile",  # one operationId per method: OpenAPI wants them unique
    response_model=None,
    summary="Headers of the cached audio file",
    response_class=Response,
    responses={
        200: {"description": "The WAV audio's headers"},
        206: {"description": "Headers of part of the WAV audio (Range)"},
        **errors(400, 401, 403, 404, 416, 503),
    },
)
@router.get(
    DOWNLOAD.path,
    operation_id="downloadAudioCacheFile",
    response_model=None,
    summary="Download cached audio file",
    response_class=Response,
    responses={
        200: {"description": "The WAV audio", "content": AUDIO_WAV},
        206: {"description": "Part of the WAV audio (Range)", "content": AUDIO_WAV},
        307: {
            "description": "Only with AUDIOCACHE_OFFLOAD=s3-presigned: Location is a presigned "
            "S3 URL of the audio, valid for AUDIOCACHE_OFFLOAD_PRESIGN_SECONDS"
        },
        **errors(400, 401, 403, 404, 416, 503),
    },
)
async def download_file(
    request: Request,
    agentId: str,
    entryId: str,
    output_format: Annotated[
        str | None,
        Query(
            description="wav (as stored), wav_8000…wav_48000, pcm_8000…pcm_48000, ulaw_8000, "
            "alaw_8000, wav_ulaw_8000, wav_alaw_8000 (Accept: audio/basic = ulaw_8000)",
            max_length=32,
        ),
    ] = None,
    principal: Principal = DOWNLOAD.caller(),
    services: Services = ServicesDep,
) -> BlobResponse:
    return await file_response(
        services, principal, agentId, entryId, output_format, request.headers.get("accept")
    )


async def file_response(
    services: Services,
    principal: Principal,
    agent_id: str,
    entry_id_text: str,
    output_format: str | None,
    accept: str | None,
) -> BlobResponse:
    """The download, past auth: shared by the route and the hot path (api/hot_path.py)."""
    entry_id = parse_entry_id(entry_id_text)
    fmt = parse_output_format(output_format, accept)
    entry = await services.entries.get_in_account(principal.account_id, agent_id, entry_id)
    while True:
        if entry is None:
            raise NotFound("Audio cache entry not found")
        filename = filename_for(entry.audio_filename or f"{entry.id}.wav", fmt)
        try:
            audio = await services.variants.stored(entry.blob_sha256, entry.size_bytes, fmt)
            offload = offload_of(services.settings)
            presigner = presigner_of(services.settings, services.blobs)
            return await audio_response(
                services.blobs, audio, filename=filename, offload=offload, presigner=presigner
            )
        except StorageUnavailable:
            # A delete or replace that committed after the lookup may have collected the
            # blob: then it is a 404 (or the new audio), not a lost-audio 503.
            now = await services.entries.get_in_account(principal.account_id, agent_id, entry_id)
            if now is not None and now.blob_sha256 == entry.blob_sha256:
                raise
            entry = now


@router.patch(
    "/{entryId}/file",
    operation_id="replaceAudioCacheFile",
    summary="Replace cached audio file",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Audio file replaced"}, **errors(400, 401, 403, 404)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def replace_file(
    request: Request,
    agentId: str,
    entryId: str,
    x_filename: Annotated[str | None, Header(alias="X-Filename")] = None,
    principal: Principal = caller(WRITE),
    services: Services = ServicesDep,
) -> Response:
    entry_id = parse_entry_id(entryId)
    with upload_slot(request):  # held until stored: the slots bound the WAVs in memory
        wav = await read_upload(request, services.settings.max_upload_bytes)
        filename = sanitize_filename(_header_text(x_filename), f"{entry_id}.wav")
        parse_wav(wav)  # 400 before 404, as the contract orders the checks
        agent = await services.agents.owned(principal.account_id, agentId)
        entry = await services.curation.get_entry(agent.id, entry_id)
        await services.curation.replace_audio(entry, wav, filename)
    return Response(status_code=204)


@router.put(
    "/{entryId}/details",
    operation_id="replaceAudioCacheDetails",
    summary="Replace audio file and voice tuning settings",
    status_code=204,
    response_class=Response,
    responses={
        204: {"description": "Audio and settings updated"},
        **errors(400, 401, 403, 404, 409),
    },
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
                                "description": 'JSON {"text": string, "config": VoiceTuningConfig}',
                            },
                        },
                    }
                }
            },
        }
    },
)
async def replace_details(
    request: Request,
    agentId: str,
    entryId: str,
    x_filename: Annotated[str | None, Header(alias="X-Filename")] = None,
    principal: Principal = caller(WRITE),
    services: Services = ServicesDep,
) -> Response:
    entry_id = parse_entry_id(entryId)
    with upload_slot(request):
        form = await read_details_form(request, services.settings.max_upload_bytes)
        try:
            settings = parse_json_text(form.settings_text, DetailsSettings, what="settings")
        except InvalidInput as exc:
            raise InvalidSettings(exc.message) from exc
        filename = sanitize_filename(_header_text(x_filename) or form.filename, f"{entry_id}.wav")
        parse_wav(form.wav)
        agent = await services.agents.owned(principal.account_id, agentId)
        entry = await services.curation.get_entry(agent.id, entry_id)
        await services.curation.replace_details(
            entry, form.wav, filename, settings.text, settings.config.as_config()
        )
    return Response(status_code=204)


@router.post(
    "/{entryId}/synthesize",
    operation_id="synthesizeAudioCachePreview",
    summary="Synthesize audio preview",
    response_class=Response,
    responses={
        200: {"description": "Synthesized audio", "content": AUDIO_WAV},
        **errors(400, 401, 403, 404, 502, 503, 504),
    },
    openapi_extra=json_body(SynthesizeAudioRequest),
)
async def synthesize_preview(
    request: Request,
    agentId: str,
    entryId: str,
    principal: Principal = caller(READ),
    services: Services = ServicesDep,
) -> Response:
    entry_id = parse_entry_id(entryId)
    body = await parse_json(request, SynthesizeAudioRequest)
    agent = await services.agents.owned(principal.account_id, agentId)
    entry = await services.curation.get_entry(agent.id, entry_id)
    config = body.config.as_config()
    audio = await services.curation.preview(entry, body.text, config, body.language)
    return Response(audio, media_type="audio/wav")


@router.post(
    "/bulk-delete",
    operation_id="bulkDeleteAudioCacheEntries",
    summary="Bulk delete cached audio entries",
    response_model=BulkDeleteAudioCacheResponse,
    responses=errors(400, 401, 403, 404),
    openapi_extra=json_body(BulkDeleteAudioCacheRequest),
)
async def bulk_delete(
    request: Request,
    agentId: str,
    principal: Principal = caller(WRITE),
    services: Services = ServicesDep,
) -> BulkDeleteAudioCacheResponse:
    body = await parse_json(request, BulkDeleteAudioCacheRequest)
    agent = await services.agents.owned(principal.account_id, agentId)
    numeric: dict[str, int] = {}
    for raw in body.ids:
        try:
            numeric[raw] = parse_entry_id(raw)
        except InvalidId:
            continue
    ids = sorted(set(numeric.values()))
    deleted_ids = set(await services.curation.delete_entries(agent.id, ids))
    note_for_audit(request.scope, entry_ids=[str(i) for i in sorted(deleted_ids)])
    deleted: list[str] = []
    failed: list[str] = []
    seen: set[str] = set()
    for raw in body.ids:
        if raw in seen:
            continue
        seen.add(raw)
        (deleted if numeric.get(raw) in deleted_ids else failed).append(raw)
    return BulkDeleteAudioCacheResponse(deleted=deleted, failed=failed)


def _header_text(value: str | None) -> str | None:
    """Header values arrive as latin-1; a UTF-8 filename is re-read as UTF-8 when it can be."""
    if value is None:
        return None
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value
