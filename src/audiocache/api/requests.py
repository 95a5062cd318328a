"""Reading request bodies: size-limited, timed streams and JSON parsed after auth, not before.

Every body is read through ``body_chunks``: no bytes for ``body_idle_timeout_seconds``, or
the whole body taking longer than ``body_timeout_seconds``, ends the request with 408
(and the connection: see ``api/errors.py``). A client that hangs up raises Starlette's
``ClientDisconnect``, which the outermost middleware logs as one info line.
"""

from __future__ import annotations

import json
import logging
import re
import time
import unicodedata
from collections.abc import AsyncIterator
from typing import TypeVar

import anyio
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from audiocache.api.errors import correlation_id
from audiocache.config import Settings
from audiocache.errors import EmptyPayload, InvalidInput, PayloadTooLarge, RequestTimeout

log = logging.getLogger("audiocache.api")
M = TypeVar("M", bound=BaseModel)
MAX_JSON_BYTES = 1024 * 1024
_UNSAFE_FILENAME = re.compile(r'[\\/:*?"<>|]')


def app_settings(request: Request) -> Settings:
    return request.app.state.services.settings  # type: ignore[no-any-return]


async def body_chunks(request: Request) -> AsyncIterator[bytes]:
    """The body as it arrives, under the idle and total body timeouts."""
    settings = app_settings(request)
    idle, total = settings.body_idle_timeout_seconds, settings.body_timeout_seconds
    deadline = time.monotonic() + total
    while True:
        wait = min(idle, deadline - time.monotonic())
        message = None
        with anyio.move_on_after(wait):
            message = await request.receive()
        if message is None:
            stalled = wait >= idle
            reason = f"sent nothing for {idle:g} s" if stalled else f"took over {total:g} s"
            log.info(
                "request body %s; dropping the request",
                reason,
                extra={"correlation_id": correlation_id(request.scope), "path": request.url.path},
            )
            raise RequestTimeout(f"The request body {reason}")
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


def refuse_declared(request: Request, limit: int, what: str) -> None:
    """A Content-Length past the limit is refused before a byte of the body is read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The {what} is {int(declared)} bytes; the limit is {limit} bytes")


async def read_limited(request: Request, limit: int, *, what: str = "file") -> bytes:
    """The body in memory (small bodies: JSON), refused as soon as it passes ``limit``."""
    refuse_declared(request, limit, what)
    chunks: list[bytes] = []
    total = 0
    async for chunk in body_chunks(request):
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"The {what} exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    if total == 0:
        raise EmptyPayload(f"The {what} is empty")
    return b"".join(chunks)


async def parse_json(request: Request, model: type[M]) -> M:
    raw = await read_limited(request, MAX_JSON_BYTES, what="JSON body")
    return parse_json_text(raw, model)


def parse_json_text(raw: bytes | str, model: type[M], *, what: str = "body") -> M:
    try:
        data = json.loads(raw)
        # "\ud800" decodes to a lone surrogate, which is not Unicode: refuse it here, before
        # it reaches a cache key, the database or a response (each would fail with a 500).
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"{_subject(what)} contains an unpaired surrogate (not Unicode)"
        ) from exc
    except RecursionError as exc:
        raise InvalidInput(f"{_subject(what)} is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{_subject(what)} is not valid JSON") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"Invalid {what}: {_issues(exc)}") from exc


def _subject(what: str) -> str:
    return f"The {what}" if what == "body" else f"'{what}'"


def _issues(exc: ValidationError) -> str:
    """Pydantic's errors in a client's words: field path and message, no class names."""
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(p) for p in error.get("loc", ()))
        message = error.get("msg", "invalid")
        if error.get("type") == "model_type":
            message = "must be a JSON object"
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


def sanitize_filename(raw: str | None, default: str) -> str:
    """Keep only the last path part, drop control and reserved characters, cap the length."""
    if raw is None:
        return default
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    name = _UNSAFE_FILENAME.sub("_", name).strip().strip(".").strip()
    if not name:
        return default
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else name[:200]
    return name
