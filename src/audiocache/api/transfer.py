"""Export, import and bulk takes of an agent's cache (``cache/transfer/``): thin routes.

Not part of the Agents API; beside its audio-cache operations with the same permissions
(export: ``audio_cache:read``; import and takes: ``audio_cache:write``) and envelope.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import StreamingResponse

from audiocache.api.deps import ServicesDep, caller
from audiocache.api.docs import errors
from audiocache.api.requests import body_chunks, refuse_declared
from audiocache.api.uploads import Spool, upload_slot
from audiocache.cache.transfer.export import export_agent
from audiocache.cache.transfer.importer import Limits, import_archive
from audiocache.cache.transfer.sources import open_archive
from audiocache.cache.transfer.takes import TakeLimits, read_mapping, upload_takes
from audiocache.errors import EmptyPayload
from audiocache.models import Principal
from audiocache.services import Services

router = APIRouter(prefix="/v1/agents/{agentId}/audio-cache", tags=["Audio Cache (audiocache)"])
READ, WRITE = "audio_cache:read", "audio_cache:write"
TAR = "application/x-tar"
TAR_BODY = {TAR: {"schema": {"type": "string", "format": "binary"}}}


@router.get(
    "/export",
    operation_id="exportAudioCache",
    description="Every entry of the agent with its audio: a tar of `audio/<sha256>.wav` files and "
    "`manifest.json` (format `audiocache-export`, version 1: transcript, voice, provider, "
    "language, tuning, flags, hit count, cachedAt and the sha256 of each file), written "
    "page by page as it streams. Import it into any instance with `POST …/import`.",
    summary="The agent's entries and audio as an archive (tar: audio/<sha256>.wav + "
    "manifest.json), streamed",
    response_class=StreamingResponse,
    responses={200: {"description": "The archive", "content": TAR_BODY}, **errors(401, 403, 404)},
)
async def export(
    agentId: str,
    principal: Principal = caller(READ),
    services: Services = ServicesDep,
) -> StreamingResponse:
    agent = await services.agents.owned(principal.account_id, agentId)
    chunks = export_agent(services.entries, services.blobs, agent, hits=services.hits)
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", agent.public_id) + ".audiocache.tar"
    return StreamingResponse(
        chunks,
        media_type=TAR,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


class ImportFailure(BaseModel):
    index: int = Field(description="The entry's place in the archive's manifest")
    transcript: str
    reason: str


class ImportResponse(BaseModel):
    total: int = Field(description="Entries in the archive")
    created: int
    replaced: int = Field(description="Entries that were there with other audio")
    unchanged: int = Field(description="Entries that were there with this audio already")
    failed: int
    failures: list[ImportFailure]
    missingAudio: int = Field(description="Entries the export left out (no audio there)")


@router.post(
    "/import",
    operation_id="importAudioCache",
    description="Restores an export archive into this agent. The whole archive is checked first "
    "(manifest, sizes, sha256, WAV); a damaged one is refused whole with 400 "
    "`INVALID_ARCHIVE` and nothing is stored. Then entry by entry: a new phrase is created, "
    "one cached already with other audio is replaced (its take kept in the history), one "
    "with the same audio is unchanged, so running it again changes nothing.",
    summary="Restore an export archive into the agent (idempotent: what is there already "
    "is unchanged); a damaged archive is refused whole (400 INVALID_ARCHIVE)",
    response_model=ImportResponse,
    responses=errors(400, 401, 403, 404, 503),
    openapi_extra={"requestBody": {"required": True, "content": TAR_BODY}},
)
async def import_(
    request: Request,
    agentId: str,
    principal: Principal = caller(WRITE),
    services: Services = ServicesDep,
) -> ImportResponse:
    agent = await services.agents.owned(principal.account_id, agentId)
    with upload_slot(request), await _received(request, services) as spool:
        report = await import_archive(services.cache, agent, spool.file(), _limits(services))
    return ImportResponse.model_validate(report.as_dict())


async def _received(request: Request, services: Services) -> Spool:
    """The request's archive, spooled to disk (refused once it passes the limit)."""
    limit = services.settings.transfer_max_archive_bytes
    refuse_declared(request, limit, "archive")
    spool = Spool(services.settings, limit, what="archive")
    try:
        async for chunk in body_chunks(request):
            spool.write(chunk)
        if spool.size == 0:
            raise EmptyPayload("The archive is empty")
    except BaseException:
        spool.close()
        raise
    return spool


def _limits(services: Services) -> Limits:
    settings = services.settings
    return Limits(settings.transfer_max_file_bytes, settings.transfer_max_manifest_bytes)


class TakeOutcome(BaseModel):
    file: str
    action: str = Field(description="created | replaced | failed | skipped")
    transcript: str | None
    entryIds: list[str]
    reason: str | None


class TakesResponse(BaseModel):
    results: list[TakeOutcome]
    created: int
    replaced: int
    failed: int
    skipped: int


@router.post(
    "/takes",
    operation_id="uploadAudioCacheTakes",
    description="Bulk takes by transcript: a tar or zip of WAV files and one CSV or JSON "
    "mapping file "
    "(file → transcript, optional voice and language). Each take replaces the audio of the "
    "agent's entries with that transcript, voice and language, or is created pinned and "
    "imported; the answer reports what happened to each file.",
    summary="Bulk takes: an archive (tar or zip) of WAVs and a CSV/JSON mapping file → "
    "transcript; each replaces its transcript's entries' audio, or is created pinned",
    response_model=TakesResponse,
    responses=errors(400, 401, 403, 404, 503),
    openapi_extra={"requestBody": {"required": True, "content": TAR_BODY}},
)
async def upload_takes_route(
    request: Request,
    agentId: str,
    voice: Annotated[
        str | None, Query(max_length=200, description="Default: the agent's voice")
    ] = None,
    language: Annotated[
        str | None, Query(max_length=35, description="Default: the agent's language")
    ] = None,
    map: Annotated[
        str | None,
        Query(max_length=255, description="The mapping member (default: the one .csv/.json)"),
    ] = None,
    principal: Principal = caller(WRITE),
    services: Services = ServicesDep,
) -> TakesResponse:
    settings = services.settings
    limits = TakeLimits(settings.transfer_max_file_bytes, settings.transfer_max_manifest_bytes)
    agent = await services.agents.owned(principal.account_id, agentId)
    with upload_slot(request), await _received(request, services) as spool:
        source = await asyncio.to_thread(open_archive, spool.file())
        try:
            rows = await read_mapping(source, limits, map)
            results = await upload_takes(
                services.cache,
                services.curation,
                agent,
                source,
                rows,
                limits,
                voice=voice,
                language=language,
            )
        finally:
            source.close()
    counts = {a: sum(r.action == a for r in results) for a in _ACTIONS}
    return TakesResponse(
        results=[TakeOutcome.model_validate(r.as_dict()) for r in results], **counts
    )


_ACTIONS = ("created", "replaced", "failed", "skipped")
