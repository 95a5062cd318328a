"""The one place errors become the wire envelope.

``{success:false, error, error_id, error_code, error_message, data:null}`` with ``error_id``
the request's correlation id. FastAPI's own 404/405/422 bodies and any unexpected exception
are rendered the same way, so ``{"detail": ...}`` or a stack trace never reaches a client.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audiocache.errors import (
    AudioCacheError,
    Busy,
    PayloadTooLarge,
    RangeNotSatisfiable,
    RequestTimeout,
    UploadsBusy,
)

CORRELATION_HEADER = "X-PolyAI-Correlation-Id"
_CORRELATION_BYTES = CORRELATION_HEADER.lower().encode()
_VALID_CORRELATION = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
HTTP_CODES = {  # framework HTTP errors by status; any other is OTHER_HTTP_CODE
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}
OTHER_HTTP_CODE = "HTTP_ERROR"

log = logging.getLogger("audiocache.api")
# Errors raised before (or while) the body is read: the connection cannot be reused.
_BODY_LEFT_UNREAD = (PayloadTooLarge, RequestTimeout, UploadsBusy)


SCOPE_KEY = "audiocache.correlation_id"


def correlation_id(scope: Scope) -> str:
    # A scope key of our own: scope["state"] may be one dict shared by every request.
    return scope.get(SCOPE_KEY) or "unknown"


def correlation_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's correlation id if it sent a valid one, else a new one."""
    for name, value in headers:
        if name == _CORRELATION_BYTES:
            incoming = value.decode("latin-1")
            if _VALID_CORRELATION.match(incoming):
                return incoming
            break
    return new_correlation_id()


_ID_PREFIX = str(uuid.uuid4())[:24]  # random per process: ids of two processes never meet
_id_counter = itertools.count(secrets.randbits(40))


def new_correlation_id() -> str:
    """A new id in the shape of a UUID: the process's random first 96 bits, then a
    counter (a uuid4 per request costs more than answering a hit from memory)."""
    return f"{_ID_PREFIX}{next(_id_counter) & 0xFFFFFFFFFFFF:012x}"


_VALID_CORRELATION_BYTES = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_ID_PREFIX_BYTES = _ID_PREFIX.encode()


def correlation_bytes(incoming: bytes | None) -> bytes:
    """``correlation_of`` for the value of the caller's header, already picked out (None:
    it sent none), in bytes: the hot lane's, which has no use for a str."""
    if incoming is not None and _VALID_CORRELATION_BYTES.fullmatch(incoming):
        return incoming
    return b"%s%012x" % (_ID_PREFIX_BYTES, next(_id_counter) & 0xFFFFFFFFFFFF)


def correlation_header(correlation: str) -> tuple[bytes, bytes]:
    return (_CORRELATION_BYTES, correlation.encode("latin-1"))


def envelope_bytes(correlation: str, code: str, message: str) -> bytes:
    body = {
        "success": False,
        "error": message,
        "error_id": correlation,
        "error_code": code,
        "error_message": message,
        "data": None,
    }
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def error_response(
    scope: Scope, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        envelope_bytes(correlation_id(scope), code, message),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AudioCacheError)
    return domain_error_response(request.scope, exc)


def domain_error_response(scope: Scope, exc: AudioCacheError) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{exc.size}"
    if exc.retry_after:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    if isinstance(exc, _BODY_LEFT_UNREAD):
        # Unread body may still be on the way: close rather than drain it to keep the socket.
        headers["Connection"] = "close"
    if exc.status >= 500:
        # Refusals under load (ENGINE_BUSY, UPLOADS_BUSY) are the budget working: a warning.
        log_at = log.warning if isinstance(exc, Busy) else log.error
        log_at(
            "%s: %s (correlation id %s)",
            exc.error_code,
            exc.message,
            correlation_id(scope),
            extra=_log_extra(scope),
        )
    return error_response(scope, exc.status, exc.error_code, exc.message, headers or None)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, OTHER_HTTP_CODE)
    message = {404: "Resource not found", 405: "Method not allowed"}.get(
        exc.status_code, str(exc.detail)
    )
    return error_response(request.scope, exc.status_code, code, message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(request.scope, 400, "INVALID_REQUEST", describe_validation(exc.errors()))


def describe_validation(errors: Any) -> str:
    parts = []
    for error in list(errors)[:5]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body",))
        parts.append(f"{location}: {error.get('msg', 'invalid')}" if location else error["msg"])
    return "Invalid request - " + "; ".join(parts) if parts else "Invalid request"


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AudioCacheError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


def _log_extra(scope: Scope) -> dict[str, Any]:
    return {"correlation_id": correlation_id(scope), "path": scope.get("path")}


class CorrelationMiddleware:
    """Outermost app middleware: correlation id in and out, and the catch-all 500.

    It sits outside FastAPI's exception handling, so even an error inside a handler or
    another middleware ends as an envelope with the id, logged with the traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid = correlation_of(scope["headers"])
        scope[SCOPE_KEY] = cid
        header = correlation_header(cid)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # Nobody is left to answer, and nothing is wrong on our side: one info line.
            log.info(
                "client hung up before the request was read (correlation id %s)",
                cid,
                extra=_log_extra(scope),
            )
        except Exception as exc:
            if started:
                # Too late for an envelope: the server cuts the connection.
                log.warning(
                    "response aborted after it started (correlation id %s): %s",
                    cid,
                    exc,
                    extra=_log_extra(scope),
                )
                raise
            log.exception("unhandled error (correlation id %s)", cid, extra=_log_extra(scope))
            body = envelope_bytes(cid, "INTERNAL_ERROR", "Internal server error")
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        header,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
