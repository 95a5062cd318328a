"""The two requests a voice stack repeats all day, answered by a raw ASGI responder.

A cached file download (``GET|HEAD`` of ``audio_cache.DOWNLOAD``, no query) and a
runtime-path call (``POST`` of ``speak.SPEAK``) run the very functions their routes run
(``file_response``, ``speak_response``), with the caller checked the same way (401 → 403 →
the handler's own 400 → 404) and errors rendered by the same envelope function. Paths and
permissions come from the routes' own ``RouteSpec``; the path is matched as the router
matches it, under a ``root_path`` too.

What is skipped is the generic part (route matching over every route, dependency solving,
parameter validation objects, the exception middleware) and, while the database is
unchanged, the lookups themselves: the key's principal, and the finished response of a
download or of a runtime-path hit (same agent, same body, same Accept), with its bytes in
memory, are kept in the memo (``cache/memo.py``), emptied by any commit on any instance
before the next request uses it. A memo'd hit is counted as a hit exactly as
``CacheService.speak`` counts it. A memo'd response whose bytes are in memory is sent
without asking storage (they are the blob's bytes: it is content-addressed); one that
reads from storage or redirects (to nginx, or to a presigned S3 URL, signed anew for each
request) checks first that the blob is still there. A blob lost from storage by hand is so
found out at the next commit (the hit counts of the next flush are one), when the long way
answers it as always (503, or synthesized again).
Any other request, or a download with a query string (whose parameters FastAPI
validates), goes to the full app unchanged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audiocache.api.audio_cache import DOWNLOAD, file_response
from audiocache.api.audio_response import BlobResponse
from audiocache.api.deps import RouteSpec
from audiocache.api.errors import domain_error_response
from audiocache.api.observe import KEY_ID_KEY, ROUTE_KEY
from audiocache.api.speak import SPEAK, ServedHit, speak_response
from audiocache.auth import require
from audiocache.cache.memo import HotMemo
from audiocache.errors import AudioCacheError, RequestTimeout
from audiocache.models import Principal
from audiocache.services import Services

FILE_ROUTE = DOWNLOAD.template  # templates, for the metrics
SPEAK_ROUTE = SPEAK.template
_API_KEY = b"x-api-key"
_ACCEPT = b"accept"
MEMO_BODY_BYTES = 4096  # a runtime-path body longer than this is never a memo key


def route_path(scope: Scope) -> str:
    """The path the router matches: without the ``root_path`` the server mounted us under
    (Starlette's own rule, ``starlette._utils.get_route_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path


def principal_key(key: str | None) -> tuple[str, str | None]:
    return ("key", key)


def file_key(
    principal: Principal, agent_id: str, entry_id: str, accept: str | None
) -> tuple[object, ...]:
    return ("file", principal.account_id, agent_id, entry_id, accept)


def speak_key(
    principal: Principal, agent_id: str, body: bytes, accept: str | None
) -> tuple[object, ...]:
    return ("tts", principal.account_id, agent_id, body, accept)


class HotShared:
    """What the hot path and the lane in front of it (``api/hot_lane.py``) share: one
    memo, and the tally of what they answered (tests and the lane's metrics read it)."""

    def __init__(self, services: Services) -> None:
        settings, db = services.settings, services.db
        self.memo = HotMemo(
            db.generation, settings.hot_memo_entries, settings.hot_memo_bytes, db.generation_now
        )
        self.served = 0  # requests answered by the hot path rather than by the full app
        self.from_memo = 0  # of which answered from the memo (the lane's included)


class HotPath:
    """ASGI middleware: the download and runtime-path routes, short-circuited."""

    def __init__(self, app: ASGIApp, services: Services, shared: HotShared | None = None) -> None:
        self.app = app
        self.services = services
        self.shared = shared if shared is not None else HotShared(services)
        self.memo = self.shared.memo

    @property
    def served(self) -> int:
        return self.shared.served

    @property
    def from_memo(self) -> int:
        return self.shared.from_memo

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            if method == "POST":
                params = SPEAK.match(route_path(scope))
                if params is not None:
                    scope[ROUTE_KEY] = SPEAK_ROUTE
                    await self._answer(scope, receive, send, SPEAK, self._speak, params["agentId"])
                    return
            elif method in ("GET", "HEAD") and not scope["query_string"]:
                params = DOWNLOAD.match(route_path(scope))
                if params is not None:
                    scope[ROUTE_KEY] = FILE_ROUTE
                    agent_id, entry_id = params["agentId"], params["entryId"]
                    await self._answer(
                        scope, receive, send, DOWNLOAD, self._download, agent_id, entry_id
                    )
                    return
        await self.app(scope, receive, send)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: RouteSpec,
        handler: Callable[..., Awaitable[Response]],
        *args: str,
    ) -> None:
        self.shared.served += 1
        generation = await self.memo.begin()
        try:
            principal = await self._principal(_header(scope, _API_KEY), generation)
            scope[KEY_ID_KEY] = principal.key_id
            require(principal, route.permission)
            response = await handler(scope, receive, principal, generation, *args)
        except AudioCacheError as exc:
            response = domain_error_response(scope, exc)
        await response(scope, receive, send)

    async def _principal(self, key: str | None, generation: object | None) -> Principal:
        memo_key = principal_key(key)
        if generation is not None:
            known = self.memo.get(memo_key)
            if known is not None:
                return known  # type: ignore[no-any-return]
        principal = await self.services.authenticator.authenticate(key)
        if generation is not None:
            self.memo.put(memo_key, principal, generation)
        return principal

    async def _download(
        self,
        scope: Scope,
        _receive: Receive,
        principal: Principal,
        generation: object | None,
        agent_id: str,
        entry_id: str,
    ) -> Response:
        accept = _header(scope, _ACCEPT)
        memo_key = file_key(principal, agent_id, entry_id, accept)
        if generation is not None:
            known: BlobResponse | None = self.memo.get(memo_key)
            ready = await self._servable(memo_key, known) if known is not None else None
            if ready is not None:
                self.shared.from_memo += 1
                return ready
        response = await file_response(self.services, principal, agent_id, entry_id, None, accept)
        if generation is not None:
            response = await self._with_bytes(response)
            self.memo.put(memo_key, response, generation)
        return response

    async def _speak(
        self,
        scope: Scope,
        receive: Receive,
        principal: Principal,
        generation: object | None,
        agent_id: str,
    ) -> Response:
        services = self.services
        if generation is None or not _small_body(scope):
            return await speak_response(services, principal, agent_id, Request(scope, receive))
        messages = await self._small_body(receive)
        if messages[-1].get("more_body", False):  # longer than declared: the long way
            replayed = _replay(messages, receive)
            return await speak_response(services, principal, agent_id, Request(scope, replayed))
        body = b"".join(m.get("body", b"") for m in messages)
        memo_key = speak_key(principal, agent_id, body, _header(scope, _ACCEPT))
        hit: ServedHit | None = self.memo.get(memo_key)
        ready = await self._servable(memo_key, hit.response) if hit is not None else None
        if hit is not None and ready is not None:
            services.hits.add(hit.entry.id)
            services.cache.accounting.lookup(hit.agent, hit.entry.provider, hit.characters, True)
            self.shared.from_memo += 1
            return ready
        served: list[ServedHit] = []
        response = await speak_response(
            services, principal, agent_id, Request(scope, _replay(messages, receive)), served.append
        )
        if served:
            hit = served[0]
            memo_response = await self._with_bytes(hit.response)
            if hit.response is response:  # its opened body went into memory: serve that
                response = memo_response
            self.memo.put(
                memo_key,
                ServedHit(hit.agent, hit.entry, hit.characters, memo_response),
                generation,
            )
        return response

    async def _small_body(self, receive: Receive) -> list[Message]:
        """A small body's messages, under ``body_chunks``' idle and total timeouts (same
        errors): usually one, there as soon as the head is; reading stops past
        ``MEMO_BODY_BYTES``."""
        settings = self.services.settings
        idle, total = settings.body_idle_timeout_seconds, settings.body_timeout_seconds
        deadline = time.monotonic() + total
        messages: list[Message] = []
        size = 0
        while True:
            wait = min(idle, deadline - time.monotonic())
            try:
                async with asyncio.timeout(wait):
                    message = await receive()
            except TimeoutError:
                stalled = wait >= idle
                reason = f"sent nothing for {idle:g} s" if stalled else f"took over {total:g} s"
                raise RequestTimeout(f"The request body {reason}") from None
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            messages.append(message)
            size += len(message.get("body", b""))
            if not message.get("more_body", False) or size > MEMO_BODY_BYTES:
                return messages

    async def _servable(self, memo_key: object, response: BlobResponse) -> BlobResponse | None:
        """A memo'd response made ready to serve: one with its bytes in memory as it is; one
        that reads from storage (too large for memory) opened anew now, before any header;
        one that redirects (to nginx, or to S3 with a URL signed as it is sent) checked to
        still have its blob. If the blob was lost (no
        commit says so) it is None and the request goes the long way, which answers it as it
        always has (503, or synthesized again in place)."""
        if response.blob is None or response.data is not None:
            return response
        if not response.offloaded:
            opened = await response.reopened()
            if opened is not None:
                return opened
        elif await self.services.blobs.stat(response.blob) is not None:
            return response
        self.memo.drop(memo_key)
        self.memo.blobs.drop(response.blob)
        return None

    async def _with_bytes(self, response: BlobResponse) -> BlobResponse:
        """The response with its blob's bytes from memory, if the memo may hold them."""
        blobs = self.memo.blobs
        if response.data is not None or response.blob is None or response.offloaded:
            return response
        if not blobs.fits(response.size):
            return response
        data = blobs.get(response.blob)
        if data is None:
            # what blob_response opened is read on (one read per blob, one GET on S3)
            data = await response.read_opened() or await self.services.blobs.read(response.blob)
            if data is None or len(data) != response.size:
                return response
            blobs.put(response.blob, data)
        await response.close()  # the body blob_response opened is not needed now
        return response.in_memory(data)


def _small_body(scope: Scope) -> bool:
    declared = _header(scope, b"content-length")
    return declared is not None and declared.isdigit() and 0 < int(declared) <= MEMO_BODY_BYTES


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that hands out the messages already read, then whatever comes next."""
    pending = list(reversed(messages))

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None
