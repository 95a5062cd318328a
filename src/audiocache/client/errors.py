"""One exception tree for whatever the server (or the network) answers.

Every error carries what the API's envelope says: ``status``, ``error_code``, ``error_id``
(the request's correlation id, to find it in the server's log) and ``message``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

__all__ = [
    "AudioCacheError",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "InvalidRequest",
    "NotCached",
    "NotFound",
    "PayloadTooLarge",
    "ServerError",
    "ServiceUnavailable",
    "Unauthorized",
    "UpstreamError",
    "error_from_response",
    "retry_after_seconds",
]


class AudioCacheError(Exception):
    """Base of every client error; ``status`` is 0 when no answer came at all."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        error_code: str = "UNKNOWN",
        error_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.error_id = error_id
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f" (error id {self.error_id})" if self.error_id else ""
        prefix = f"{self.status} {self.error_code}: " if self.status else ""
        return f"{prefix}{self.message}{where}"


class ConnectionFailed(AudioCacheError):
    """No answer: the server could not be reached or the connection broke."""


class InvalidRequest(AudioCacheError):
    """400 (and the other 4xx without a class of their own)."""


class Unauthorized(AudioCacheError):
    """401: no key, or an unknown or revoked key."""


class Forbidden(AudioCacheError):
    """403: the key lacks the permission."""


class NotFound(AudioCacheError):
    """404: no such agent, entry, voice or account (for this key)."""


class NotCached(NotFound):
    """404 NOT_CACHED: a lookup's phrase is not in the cache."""


class Conflict(AudioCacheError):
    """409: the resource exists already or changed meanwhile."""


class PayloadTooLarge(InvalidRequest):
    """413: the upload exceeds the server's limit."""


class ServerError(AudioCacheError):
    """5xx without a class of its own."""


class UpstreamError(ServerError):
    """502/504: the TTS engine failed or timed out."""


class ServiceUnavailable(ServerError):
    """503: a dependency is down or the server is busy; see ``retry_after``."""


_BY_STATUS: dict[int, type[AudioCacheError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    502: UpstreamError,
    503: ServiceUnavailable,
    504: UpstreamError,
}


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (the delta form; an HTTP date is not used by audiocache)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> AudioCacheError:
    """The error an unsuccessful answer stands for, from its envelope when it has one."""
    code, message, error_id = "HTTP_ERROR", f"HTTP {status}", headers.get("x-polyai-correlation-id")
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        if isinstance(data.get("error_code"), str):
            code = data["error_code"]
        text = data.get("error_message") or data.get("error")
        if isinstance(text, str) and text:
            message = text
        if isinstance(data.get("error_id"), str):
            error_id = data["error_id"]
    elif body:
        message = body[:200].decode("utf-8", "replace").strip() or message
    if status == 404 and code == "NOT_CACHED":
        kind: type[AudioCacheError] = NotCached
    elif status in _BY_STATUS:
        kind = _BY_STATUS[status]
    else:
        kind = ServerError if status >= 500 else InvalidRequest
    return kind(
        message,
        status=status,
        error_code=code,
        error_id=error_id,
        retry_after=retry_after_seconds(headers),
    )
