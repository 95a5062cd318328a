"""What operators' tooling calls: liveness, readiness and the Prometheus scrape.

``/healthz`` answers as long as the process serves requests (a liveness probe: restart me
if this fails). ``/readyz`` also asks the database and the blob store (a readiness probe:
send me no traffic while this fails), 503 ``NOT_READY`` with ``Retry-After`` when either
does not answer within ``AUDIOCACHE_READINESS_TIMEOUT_SECONDS``. ``/metrics`` is open on the
listening address unless ``AUDIOCACHE_METRICS_TOKEN`` is set; then it wants that bearer token.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from audiocache.api.deps import ServicesDep
from audiocache.api.errors import error_response
from audiocache.api.schemas import Error
from audiocache.cache.readiness import check_ready
from audiocache.services import Services

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    blobs: str


@router.get(
    "/healthz",
    operation_id="getHealth",
    summary="Liveness: the process answers requests",
    response_model=Health,
)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="getReadiness",
    summary="Readiness: the database and the blob store answer",
    response_model=Readiness,
    responses={503: {"model": Error, "description": "A part does not answer (see Retry-After)"}},
)
async def readyz(services: Services = ServicesDep) -> Readiness:
    parts = await check_ready(
        services.db, services.blobs, services.settings.readiness_timeout_seconds
    )
    return Readiness(status="ok", **parts)


@router.get(
    "/metrics",
    operation_id="getMetrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={
        200: {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
        401: {"model": Error, "description": "AUDIOCACHE_METRICS_TOKEN is set and not given"},
    },
)
async def metrics(request: Request, services: Services = ServicesDep) -> Response:
    token = services.settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return error_response(
                request.scope,
                401,
                "UNAUTHORIZED",
                "GET /metrics needs the metrics bearer token",
                {"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    body, content_type = services.metrics.render()
    return Response(body, media_type=content_type)
