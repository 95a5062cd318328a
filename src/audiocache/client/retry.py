"""When a call is tried again: idempotent methods only, on a failed connection (backoff) or
a 503 that says when to come back (``Retry-After``), within a number of attempts and a
total time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from audiocache.client.errors import AudioCacheError, ConnectionFailed, ServiceUnavailable

__all__ = ["IDEMPOTENT", "Attempts", "RetryPolicy", "transport_error"]

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})
OnRetry = Callable[[int, AudioCacheError, float], None]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    max_total_seconds: float = 30.0
    backoff_seconds: float = 0.25
    max_backoff_seconds: float = 4.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_total_seconds < 0 or self.backoff_seconds < 0:
            raise ValueError("max_attempts >= 1 and non-negative times are required")


class _CouldNotConnect(ConnectionFailed):
    """Nothing was sent: trying again cannot do a request twice."""


def transport_error(exc: httpx.TransportError, url: str) -> ConnectionFailed:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return _CouldNotConnect(
            f"cannot connect to {url}: {exc or type(exc).__name__}", error_code="CONNECTION_FAILED"
        )
    return ConnectionFailed(
        f"{type(exc).__name__} talking to {url}: {exc}", error_code="CONNECTION_FAILED"
    )


class Attempts:
    """One call's attempts: ``delay(error)`` is how long to wait before the next one, or
    None when the error is final."""

    def __init__(self, policy: RetryPolicy, method: str, on_retry: OnRetry | None) -> None:
        self.policy = policy
        self.retryable = method.upper() in IDEMPOTENT
        self.on_retry = on_retry
        self.started = time.monotonic()
        self.count = 1

    def delay(self, error: AudioCacheError) -> float | None:
        if not self.retryable or self.count >= self.policy.max_attempts:
            return None
        if isinstance(error, _CouldNotConnect):
            wait = min(
                self.policy.max_backoff_seconds, self.policy.backoff_seconds * 2 ** (self.count - 1)
            )
        elif isinstance(error, ServiceUnavailable) and error.retry_after is not None:
            wait = error.retry_after
        else:
            return None
        if time.monotonic() - self.started + wait > self.policy.max_total_seconds:
            return None
        if self.on_retry is not None:
            self.on_retry(self.count, error, wait)
        self.count += 1
        return float(wait)
