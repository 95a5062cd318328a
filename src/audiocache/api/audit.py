"""The audit log: every write request an API key made, recorded in one place, and the
account's view of it.

Recording: the permission dependency (``api/deps.py``) marks a request whose route needs a
``…:write`` permission once the key is known; the request observer (``api/observe.py``)
turns the finished request into an event here (who: key id; what: operationId, method,
route and the path's ids, with those a route noted from its body or answer: createAgent's
new agent, duplicateAgent's copy (the target), the entries a bulk delete removed; when;
from which address; the status) and hands it to the batched writer (``cache/audit.py``).
Requests without a valid key (401) name no account and are not recorded; a key refused
the permission (403) is.

Reading: ``GET /v1/accounts/{accountId}/audit-log`` needs an admin key (grant ``*``): the
log shows every key's writes in the account, whatever resource they touched.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.types import Scope

from audiocache.api.deps import ServicesDep, caller
from audiocache.api.docs import errors
from audiocache.api.errors import correlation_id
from audiocache.api.observe import AUDIT_KEY, AUDIT_NOTE_KEY, KEY_ID_KEY, route_of
from audiocache.api.schemas import BULK_DELETE_MAX_IDS, as_utc
from audiocache.cache.audit import AuditLog
from audiocache.errors import InvalidFilter, NotFound
from audiocache.models import AuditEvent, AuditQuery, Principal
from audiocache.services import Services

log = logging.getLogger("audiocache.audit")
router = APIRouter(tags=["Audit log (audiocache)"])
ADMIN = "*"
MAX_LIMIT = 200
_OPERATION = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def recorder(audit: AuditLog) -> Callable[[Scope, int], Awaitable[None]]:
    """The observer's hook: the finished request's event into the audit log."""

    async def record(scope: Scope, status: int) -> None:
        try:
            await audit.record(event_of(scope, status, audit.now()))
        except Exception:
            # The response is out; the event stays queued (within the bound) for the next
            # flush, which the background task retries.
            log.exception("audit log write failed")

    return record


def event_of(scope: Scope, status: int, at: datetime) -> AuditEvent:
    route = scope.get("route")
    params = scope.get("path_params") or {}
    noted = scope.get(AUDIT_NOTE_KEY) or {}
    client = scope.get("client")
    return AuditEvent(
        at=at,
        account_id=str(scope[AUDIT_KEY]),
        key_id=str(scope.get(KEY_ID_KEY)),
        operation=str(getattr(route, "operation_id", None) or "unknown"),
        method=str(scope["method"]),
        route=route_of(scope),
        status=status,
        correlation_id=correlation_id(scope),
        agent_id=params.get("agentId") or noted.get("agent_id"),
        entry_id=params.get("entryId"),
        # Bounded by the bulk delete's own limit, whoever noted them.
        entry_ids=tuple(noted.get("entry_ids", ()))[:BULK_DELETE_MAX_IDS],
        target_id=params.get("takeId") or params.get("voiceId") or noted.get("target_id"),
        address=str(client[0]) if client else None,
    )


class AuditEventOut(BaseModel):
    id: str
    at: datetime = Field(description="When the response went out (UTC)")
    keyId: str = Field(description="The API key's id (never the key)")
    operation: str = Field(description="The operationId of the request")
    method: str
    route: str = Field(description="The path template, e.g. /v1/agents/{agentId}")
    agentId: str | None = Field(
        description="The agentId the path named, or the agent createAgent made (or was "
        "asked to make, when refused)"
    )
    entryId: str | None = Field(description="The entryId the path named, if any")
    entryIds: list[str] = Field(
        description="The entries a bulk delete removed (at most 20, its request's limit); "
        "empty for every other operation"
    )
    targetId: str | None = Field(
        description="The takeId or voiceId the path named, if any, or the agent "
        "duplicateAgent made (or was asked to make, when refused)"
    )
    address: str | None = Field(
        description="The client's address: the connection's peer, or the address a trusted "
        "proxy (AUDIOCACHE_TRUSTED_PROXIES) forwarded in X-Forwarded-For"
    )
    status: int = Field(description="The response's HTTP status")
    correlationId: str = Field(description="The response's X-PolyAI-Correlation-Id")

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            id=str(event.id),
            at=as_utc(event.at),
            keyId=event.key_id,
            operation=event.operation,
            method=event.method,
            route=event.route,
            agentId=event.agent_id,
            entryId=event.entry_id,
            entryIds=list(event.entry_ids),
            targetId=event.target_id,
            address=event.address,
            status=event.status,
            correlationId=event.correlation_id,
        )


class AuditLogResponse(BaseModel):
    events: list[AuditEventOut] = Field(description="Newest first")
    totalCount: int = Field(description="Events the filters select (all pages)")


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value  # no zone: UTC
    return value.astimezone(UTC).replace(tzinfo=None)


@router.get(
    "/v1/accounts/{accountId}/audit-log",
    operation_id="listAuditLog",
    summary="The account's audit log: every write request, newest first",
    description="One event per write request an API key of the account made (the routes "
    "that need an audio_cache:write, agents:write or voice_library:write permission), "
    "refused ones (403) included: key id, operationId, the path's ids (and createAgent's "
    "new agent, duplicateAgent's copy, a bulk delete's removed entries), time, client "
    "address and status. Needs an admin key (grant '*'). Events are written in batches "
    "(at most AUDIOCACHE_AUDIT_FLUSH_SECONDS late from other workers) and kept "
    "AUDIOCACHE_AUDIT_RETENTION_DAYS.",
    response_model=AuditLogResponse,
    responses=errors(400, 401, 403, 404),
)
async def list_audit_log(
    accountId: str,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Events to return")] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62, description="Events to skip")] = 0,
    operation: Annotated[
        str | None, Query(max_length=64, description="Only this operationId, e.g. deleteAgent")
    ] = None,
    since: Annotated[
        datetime | None,
        Query(alias="from", description="Only events at or after this time (ISO 8601; UTC)"),
    ] = None,
    until: Annotated[
        datetime | None,
        Query(alias="to", description="Only events before this time (ISO 8601; UTC)"),
    ] = None,
    principal: Principal = caller(ADMIN),
    services: Services = ServicesDep,
) -> AuditLogResponse:
    if operation is not None and not _OPERATION.fullmatch(operation):
        raise InvalidFilter(f"operation must be an operationId, not {operation[:40]!r}")
    start, end = _naive_utc(since), _naive_utc(until)
    if start is not None and end is not None and start > end:
        raise InvalidFilter("'from' is after 'to'")
    if accountId != principal.account_id:
        raise NotFound("Account ID does not exist.")
    query = AuditQuery(limit, offset, operation, start, end)
    found, total = await services.audit.page(accountId, query)
    return AuditLogResponse(events=[AuditEventOut.of(e) for e in found], totalCount=total)
