"""Around every HTTP request, the hot path's included: the Prometheus request and byte
counts and the access log line.

Routes are labelled by their template (``/v1/agents/{agentId}/audio-cache/{entryId}/file``),
never the raw path, so the label set stays bounded; a request no route matched is
``unmatched``. The hot path names its template in the scope itself (``ROUTE_KEY``), since no
router ran. The caller's key id (never the key) is put in the scope once the key is known
(``KEY_ID_KEY``, by the auth dependency and the hot path); for a route that needs a write
permission the dependency also marks the request for the audit log (``AUDIT_KEY``, the
key's account), and its event is handed to the audit log here once the status is known.
A route whose ids are in its body or answer rather than its path adds them to that event
with ``note_for_audit`` (the new agent of createAgent, the copy duplicateAgent made, the
entries a bulk delete removed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audiocache.api.errors import correlation_id
from audiocache.metrics import Metrics

ROUTE_KEY = "audiocache.route"
KEY_ID_KEY = "audiocache.key_id"
AUDIT_KEY = "audiocache.audit_account"  # set: a write by a known key, to be audited
AUDIT_NOTE_KEY = "audiocache.audit_note"  # ids the route adds to its audit event
UNMATCHED = "unmatched"

access_log = logging.getLogger("audiocache.access")


def note_for_audit(
    scope: Scope,
    *,
    agent_id: str | None = None,
    target_id: str | None = None,
    entry_ids: Sequence[str] | None = None,
) -> None:
    """Ids of the request's audit event that its path does not name (a later note of the
    same id replaces an earlier one)."""
    noted = scope.setdefault(AUDIT_NOTE_KEY, {})
    if agent_id is not None:
        noted["agent_id"] = agent_id
    if target_id is not None:
        noted["target_id"] = target_id
    if entry_ids is not None:
        noted["entry_ids"] = tuple(entry_ids)


def route_of(scope: Scope) -> str:
    named = scope.get(ROUTE_KEY)
    if named is not None:
        return str(named)
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class RequestObserver:
    """ASGI middleware: inside the correlation middleware (the id is known), outside the
    hot path (which it counts like any route)."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        access_log_enabled: bool,
        audit: Callable[[Scope, int], Awaitable[None]] | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log_enabled = access_log_enabled
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the correlation middleware answers if the app raises first
        sent = 0

        async def observed(message: Message) -> None:
            nonlocal status, sent
            kind = message["type"]
            if kind == "http.response.body":
                sent += len(message.get("body", b""))
            elif kind == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            route = route_of(scope)
            self.metrics.request(route, status, sent)
            if self.audit is not None and AUDIT_KEY in scope:
                await self.audit(scope, status)
            if self.access_log_enabled:
                log_access(
                    scope["method"],
                    route,
                    scope["path"],
                    status,
                    started,
                    sent,
                    correlation_id(scope),
                    scope.get(KEY_ID_KEY),
                )


def log_access(
    method: str,
    route: str,
    path: str,
    status: int,
    started: float,
    sent: int,
    correlation: str,
    key_id: str | None,
) -> None:
    """The access log line of one request (``started``: its ``time.perf_counter()``)."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    access_log.info(
        "%s %s %d",
        method,
        route,
        status,
        extra={
            "method": method,
            "route": route,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "bytes": sent,
            "correlation_id": correlation,
            "key_id": key_id,
        },
    )
