"""create_app(settings): wires storage, engines and routes. Nothing happens at import time."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from audiocache import __version__
from audiocache.api import (
    agents,
    audio_cache,
    audit,
    curation,
    history,
    openai_speech,
    operations,
    runtime_store,
    speak,
    stats,
    transfer,
    voices,
    whoami,
)
from audiocache.api.docs import install_openapi
from audiocache.api.docs_pages import install_docs
from audiocache.api.errors import CorrelationMiddleware, install_error_handlers
from audiocache.api.hot_lane import HotLane
from audiocache.api.hot_path import HotPath, HotShared
from audiocache.api.observe import RequestObserver
from audiocache.api.ui import install_ui
from audiocache.config import Settings
from audiocache.metrics import mark_worker_stopped
from audiocache.services import Services, build_services


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    services = services or build_services(settings or Settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.stop()
            mark_worker_stopped()

    app = FastAPI(
        title="audiocache",
        version=__version__,
        description="Self-hosted TTS audio cache speaking the PolyAI Agents API audio cache "
        "contract (1.0.11), plus a lookup-or-synthesize runtime path.",
        lifespan=lifespan,
        docs_url=None,  # served from the package's files by install_docs, no CDN
        redoc_url=None,
        **_without_native_telemetry(),
    )
    app.state.services = services
    install_error_handlers(app)
    app.include_router(stats.router)  # before /{entryId} routes: 'stats' is no entry id
    app.include_router(transfer.router)  # before /{entryId} routes too: 'export', 'import'
    app.include_router(audio_cache.router)
    app.include_router(curation.router)
    app.include_router(history.router)
    app.include_router(runtime_store.router)
    app.include_router(agents.router)
    app.include_router(speak.router)
    app.include_router(voices.router)
    app.include_router(openai_speech.router)
    app.include_router(whoami.router)

    app.include_router(audit.router)
    app.include_router(operations.router)
    install_ui(app)
    install_docs(app)
    install_openapi(app)
    if services.settings.hot_path:
        shared = HotShared(services)
        app.add_middleware(HotPath, services=services, shared=shared)
        if services.settings.hot_lane and services.settings.offload != "x-accel-redirect":
            # (with X-Accel-Redirect every answer the lane could give is nginx's to send)
            app.state.hot_lane = HotLane(services, shared)
    app.add_middleware(
        RequestObserver,
        metrics=services.metrics,
        access_log_enabled=services.settings.access_log,
        audit=audit.recorder(services.audit),
    )
    app.add_middleware(CorrelationMiddleware)  # added last: outermost, around the hot path too
    return app


def _without_native_telemetry() -> dict[str, Any]:
    """FastAPI's native OpenTelemetry hooks (newer releases) re-check on every request
    whether a provider is configured, which costs about as much as serving a cached hit;
    audiocache has its own JSON request logs, so they are switched off where they exist."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
