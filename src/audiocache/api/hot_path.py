"""The two requests a voice stack repeats all day, answered without FastAPI's machinery.

A cached file download (``GET|HEAD /v1/agents/{agentId}/audio-cache/{entryId}/file``, no
query) and a runtime-path call (``POST /v1/agents/{agentId}/tts``) run the very functions
their routes run (``file_response``, ``speak_response``) with the caller checked the same
way (401 → 403 → the handler's own 400 → 404) and errors rendered by the same envelope
function. What is skipped is the generic part: route matching over every route, dependency
solving, parameter validation objects and the exception middleware, which together cost
more than the lookup and the read (docs/benchmarks.md). Any other request, or a download
with a query string (whose parameters FastAPI validates), goes to the full app unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from audiocache.api.audio_cache import READ, file_response
from audiocache.api.errors import domain_error_response
from audiocache.api.observe import KEY_ID_KEY, ROUTE_KEY
from audiocache.api.speak import speak_response
from audiocache.auth import require
from audiocache.errors import AudioCacheError
from audiocache.models import Principal
from audiocache.services import Services

_FILE = re.compile(r"/v1/agents/([^/]+)/audio-cache/([^/]+)/file")
_SPEAK = re.compile(r"/v1/agents/([^/]+)/tts")
FILE_ROUTE = "/v1/agents/{agentId}/audio-cache/{entryId}/file"  # templates, for the metrics
SPEAK_ROUTE = "/v1/agents/{agentId}/tts"
_API_KEY = b"x-api-key"
_ACCEPT = b"accept"

Handler = Callable[[Principal], Awaitable[Response]]


class HotPath:
    """ASGI middleware: the download and runtime-path routes, short-circuited."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        self.served = 0  # requests answered here rather than by the full app (tests read it)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._handler(scope, receive) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        self.served += 1
        try:
            principal = await self.services.authenticator.authenticate(_header(scope, _API_KEY))
            scope[KEY_ID_KEY] = principal.key_id
            require(principal, READ)  # both routes need audio_cache:read
            response = await handler(principal)
        except AudioCacheError as exc:
            response = domain_error_response(scope, exc)
        await response(scope, receive, send)

    def _handler(self, scope: Scope, receive: Receive) -> Handler | None:
        method = scope["method"]
        path = scope["path"]
        if method in ("GET", "HEAD") and not scope["query_string"]:
            match = _FILE.fullmatch(path)
            if match is not None:
                agent_id, entry_id = match.groups()
                accept = _header(scope, _ACCEPT)
                scope[ROUTE_KEY] = FILE_ROUTE
                return lambda principal: file_response(
                    self.services, principal, agent_id, entry_id, None, accept
                )
        elif method == "POST":
            match = _SPEAK.fullmatch(path)
            if match is not None:
                agent_id = match.group(1)
                scope[ROUTE_KEY] = SPEAK_ROUTE
                return lambda principal: speak_response(
                    self.services, principal, agent_id, Request(scope, receive)
                )
        return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None
