"""What the sync and async clients share: where the server is, the key, the policy."""

from __future__ import annotations

from typing import Any

import httpx

from audiocache.client.calls import Call
from audiocache.client.errors import AudioCacheError, error_from_response
from audiocache.client.retry import OnRetry, RetryPolicy

DEFAULT_TIMEOUT_S = 30.0
USER_AGENT = "audiocache-client"


class ClientBase:
    """Constructor arguments of ``Client`` and ``AsyncClient``.

    ``account`` is the default account of the account-scoped calls (agents, voices).
    Idempotent calls (GET, HEAD, PUT, DELETE) are tried up to ``max_attempts`` times in
    ``max_retry_seconds`` on a failed connection or a 503 with Retry-After; ``on_retry`` is
    told ``(attempt, error, delay)`` before each wait. ``timeout`` bounds connecting,
    sending and waiting for an answer; an export's next bytes and the answer of an import
    or takes upload (which comes once the server has verified and stored the whole archive,
    as long as that takes) wait ``transfer_timeout`` instead (None: without a bound)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        account: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_attempts: int = 4,
        max_retry_seconds: float = 30.0,
        backoff_seconds: float = 0.25,
        on_retry: OnRetry | None = None,
        transfer_timeout: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.account = account
        self.retry = RetryPolicy(max_attempts, max_retry_seconds, backoff_seconds)
        self.on_retry = on_retry
        self._options: dict[str, Any] = {
            "base_url": self.base_url,
            "timeout": timeout,
            "headers": {"User-Agent": USER_AGENT, **({"X-API-KEY": api_key} if api_key else {})},
        }
        self._transfer_timeout = httpx.Timeout(timeout, read=transfer_timeout)

    def _timeout(self, call: Call[Any]) -> dict[str, Any]:
        return {"timeout": self._transfer_timeout} if call.slow else {}

    def _account(self, account: str | None) -> str:
        chosen = account or self.account
        if not chosen:
            raise ValueError("no account: pass account=… here or to the client")
        return chosen


def check(response: httpx.Response, body: bytes) -> AudioCacheError | None:
    if response.is_success:
        return None
    return error_from_response(response.status_code, response.headers, body)
