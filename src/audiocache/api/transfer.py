"""Export, import and bulk takes of an agent's cache (``cache/transfer/``): thin routes.

Not part of the Agents API; beside its audio-cache operations with the same permissions
(export: ``audio_cache:read``; import and takes: ``audio_cache:write``) and envelope.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import StreamingResponse

from audiocache.api.deps import ServicesDep, caller
from audiocache.api.docs import errors
from audiocache.api.requests import body_chunks, refuse_declared
from audiocache.api.uploads import Spool, upload_slot
from audiocache.cache.transfer.export import export_agent
from audiocache.cache.transfer.importer import Limits, import_archive
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
    settings = services.settings
    agent = await services.agents.owned(principal.account_id, agentId)
    with upload_slot(request):
        limit = settings.transfer_max_archive_bytes
        refuse_declared(request, limit, "archive")
        with Spool(settings, limit, what="archive") as spool:
            async for chunk in body_chunks(request):
                spool.write(chunk)
            if spool.size == 0:
                raise EmptyPayload("The archive is empty")
            report = await import_archive(services.cache, agent, spool.file(), _limits(services))
    return ImportResponse.model_validate(report.as_dict())


def _limits(services: Services) -> Limits:
    settings = services.settings
    return Limits(settings.transfer_max_file_bytes, settings.transfer_max_manifest_bytes)
