"""Export, import and bulk takes of an agent's cache (``cache/transfer/``): thin routes.

Not part of the Agents API; beside its audio-cache operations with the same permissions
(export: ``audio_cache:read``; import and takes: ``audio_cache:write``) and envelope.
"""

from __future__ import annotations

import re

from fastapi import APIRouter
from starlette.responses import StreamingResponse

from audiocache.api.deps import ServicesDep, caller
from audiocache.api.docs import errors
from audiocache.cache.transfer.export import export_agent
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
    chunks = export_agent(
        services.entries, services.blobs, agent, pending_hits=services.hits.pending
    )
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", agent.public_id) + ".audiocache.tar"
    return StreamingResponse(
        chunks,
        media_type=TAR,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
