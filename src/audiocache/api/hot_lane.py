"""The hot lane: what the memo already holds, answered by the HTTP protocol itself.

``api/hot_path.py`` answers a download or a runtime-path hit without the generic routing,
but still as an ASGI app: uvicorn builds a scope, starts a task, and the request passes the
correlation, metrics and error middlewares, then the hot path, and every message goes back
through them. For an answer the memo holds whole (the key's principal, and the finished
response with its bytes in memory) none of that is needed. The server's protocol
(``server.EdgeProtocol``) asks the lane first, synchronously, as soon as a request is
complete; the lane answers only when every question has an answer in memory and the
database's generation can be read at once (SQLite's ``data_version``: a pragma on the
event loop's own read-only connection), and otherwise says None and the request goes the
usual way, unchanged. So the lane never answers anything the hot path would not answer
the same way: same status, same headers (uvicorn's ``date``/``server``, the response's
prebuilt block, the correlation id), same body, a hit counted as a hit, the request counted
in the metrics and written to the access log under the same route. Errors, ranges,
conditional requests, anything not yet memo'd: the usual way, which also fills the memo.

The protocol asks in one of two ways: a plain request that arrived whole in one read (the
usual shape of a runtime's hit) is parsed by ``api/lane_request.py`` and answered before
httptools sees it, which saves as much again as the lane itself costs; anything else is
parsed by httptools and held until complete, then asked about.

PostgreSQL's generation needs a round trip, so with PostgreSQL the lane stays out of the way
and the hot path answers as before. With X-Accel-Redirect every answer is nginx's to send,
and with a presigned S3 offload every download a redirect: the lane leaves those alone.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from audiocache.api.audio_cache import DOWNLOAD
from audiocache.api.audio_response import BlobResponse
from audiocache.api.blob_files import BlobFiles
from audiocache.api.deps import RouteSpec
from audiocache.api.errors import CORRELATION_HEADER, correlation_bytes
from audiocache.api.hot_path import (
    FILE_ROUTE,
    MEMO_BODY_BYTES,
    SPEAK_ROUTE,
    HotShared,
    file_key,
    principal_key,
    speak_key,
)
from audiocache.api.observe import log_access
from audiocache.api.speak import SPEAK, ServedHit
from audiocache.models import Principal
from audiocache.services import Services

STATUS_200 = b"HTTP/1.1 200 OK\r\n"
CONNECTION_CLOSE = b"connection: close\r\n"
CORRELATION_FIELD = CORRELATION_HEADER.lower().encode()
# A request carrying any of these is answered the usual way (304, ranges, If-Range).
_CONDITIONAL = frozenset((b"range", b"if-none-match", b"if-range"))
ROUTES_KEPT = 1024  # routes of request targets remembered (then forgotten all at once)


class LaneRoute(NamedTuple):
    """A request the lane may answer: which route, its path's ids."""

    spec: RouteSpec
    template: str
    agent_id: str
    entry_id: str | None  # the download's; None for a runtime-path call
    has_body: bool  # a runtime-path call's


# The response's head, its body, and a descriptor of the body's blob file for sendfile
# (None: send the body). A plain tuple: made once per answer, for a few microseconds.
LaneAnswer = tuple[bytes, bytes, int | None]


class HotLane:
    """``route(method, target)`` when the request head is in, ``answer(...)`` when the
    request is complete; either may say None: then it goes to the app as usual."""

    def __init__(self, services: Services, shared: HotShared) -> None:
        self.services = services
        self.shared = shared
        self.memo = shared.memo
        settings = services.settings
        self.access_log = settings.access_log
        self.answered = 0  # requests the lane answered (tests read it)
        self.unparsed = 0  # of those, answered before the HTTP parser saw them (server.py)
        # a presigned offload answers downloads with a redirect to S3: not the lane's to give
        self.downloads = settings.offload == "off"
        self.files = BlobFiles(services.blobs.local_path, settings.hot_lane_open_files)
        self.hold_seconds = settings.hot_lane_hold_seconds  # server.EdgeProtocol reads it
        self.hits = services.hits
        self.accounting = services.cache.accounting
        self.metrics = services.metrics
        self._routes: dict[tuple[bytes, bytes], LaneRoute | None] = {}
        # uvicorn's date and server fields, rendered once for each list it makes (a second)
        self._defaults: tuple[list[tuple[bytes, bytes]], bytes] = ([], b"")

    def route(self, method: bytes, target: bytes) -> LaneRoute | None:
        known = (method, target)
        try:
            return self._routes[known]
        except KeyError:
            pass
        if len(self._routes) >= ROUTES_KEPT:
            self._routes.clear()
        route = self._routes[known] = self._route(method, target)
        return route

    def _route(self, method: bytes, target: bytes) -> LaneRoute | None:
        if b"?" in target or b"%" in target:  # queries are validated, escapes decoded: the app
            return None
        if method == b"POST":
            params = SPEAK.match(target.decode("latin-1"))
            if params is not None:
                return LaneRoute(SPEAK, SPEAK_ROUTE, params["agentId"], None, True)
        elif (method == b"GET" or method == b"HEAD") and self.downloads:
            params = DOWNLOAD.match(target.decode("latin-1"))
            if params is not None:
                return LaneRoute(DOWNLOAD, FILE_ROUTE, params["agentId"], params["entryId"], False)
        return None

    @staticmethod
    def body_fits(declared: int) -> bool:
        """A runtime-path body this long may be a memo key (``hot_path.MEMO_BODY_BYTES``)."""
        return 0 < declared <= MEMO_BODY_BYTES

    def answer(
        self,
        route: LaneRoute,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        default_headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
    ) -> LaneAnswer | None:
        """The response's head and body, if the memo holds all of it; else None."""
        started = time.perf_counter()
        key = accept = incoming = None
        for name, value in headers:
            if name == b"x-api-key":
                key = value.decode("latin-1")
            elif name == b"accept":
                accept = value.decode("latin-1")
            elif name == CORRELATION_FIELD:
                incoming = value
            elif name in _CONDITIONAL:
                return None
        memo = self.memo
        generation = memo.begin_now()
        if generation is None:
            return None
        principal: Principal | None = memo.get(principal_key(key))
        if principal is None or not principal.can(route.spec.permission):
            return None
        hit: ServedHit | None = None
        if route.entry_id is not None:
            response: BlobResponse | None = memo.get(
                file_key(principal, route.agent_id, route.entry_id, accept)
            )
        else:
            hit = memo.get(speak_key(principal, route.agent_id, body, accept))
            response = hit.response if hit is not None else None
        if response is None or response.data is None or response.redirect is not None:
            return None
        if hit is not None:
            self.hits.add(hit.entry.id)
            self.accounting.lookup(hit.agent, hit.entry.provider, hit.characters, True)
        correlation = correlation_bytes(incoming)
        defaults = self._defaults
        if defaults[0] is not default_headers:
            rendered = b"".join(b"%s: %s\r\n" % pair for pair in default_headers)
            defaults = self._defaults = (default_headers, rendered)
        head = b"".join(
            (
                STATUS_200,
                defaults[1],
                response.header_lines,
                b"%s: %s\r\n" % (CORRELATION_FIELD, correlation),
                b"" if keep_alive else CONNECTION_CLOSE,
                b"\r\n",
            )
        )
        payload = b"" if method == b"HEAD" else response.data
        self.answered += 1
        self.shared.served += 1
        self.shared.from_memo += 1
        metrics = self.metrics
        metrics.request(route.template, 200, len(payload))
        metrics.lane_answers.inc()
        if self.access_log:
            log_access(
                method.decode("latin-1"),
                route.template,
                target.decode("latin-1"),
                200,
                started,
                len(payload),
                correlation.decode("latin-1"),
                principal.key_id,
            )
        fd = (
            self.files.descriptor(response.blob, response.size)
            if payload and response.blob
            else None
        )
        return head, payload, fd
