"""A small async httpx client for the runtime lookup / lookup-batch / store routes.

The plugins call the cache on the hot path of a conversation, so every call has its own
time budget (``lookup_budget_s``, 50 ms by default): a slow or broken cache must never delay
speech. Errors are not swallowed here; the plugins decide to fail open and count it. They
are the general client's (``audiocache.client.errors``): one envelope parser for both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from audiocache.client.errors import NotCached, error_from_response
from audiocache.client.models import Phrase

__all__ = ["DEFAULT_LOOKUP_BUDGET_S", "AudioCacheClient", "Phrase", "StoreResult"]

DEFAULT_LOOKUP_BUDGET_S = 0.050
DEFAULT_STORE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class StoreResult:
    stored: bool
    created: bool
    reason: str | None = None
    entry: dict[str, Any] | None = field(default=None)


class AudioCacheClient:
    """Lookup and store against one agent; ``client`` carries base URL and auth."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        agent_id: str,
        *,
        api_key: str | None = None,
        lookup_budget_s: float = DEFAULT_LOOKUP_BUDGET_S,
        store_timeout_s: float = DEFAULT_STORE_TIMEOUT_S,
    ) -> None:
        self._client = client
        self._base = f"/v1/agents/{agent_id}/audio-cache"
        self._headers = {"X-API-KEY": api_key} if api_key else {}
        self.lookup_budget_s = lookup_budget_s
        self.store_timeout_s = store_timeout_s

    async def lookup(self, phrase: Phrase, output_format: str | None = None) -> bytes | None:
        """The cached audio, or None when not cached (404 NOT_CACHED); raises otherwise."""
        body = phrase.body()
        if output_format is not None:
            body["output_format"] = output_format
        r = await self._client.post(
            f"{self._base}/lookup", json=body, headers=self._headers, timeout=self.lookup_budget_s
        )
        try:
            _raise_for(r)
        except NotCached:
            return None
        return r.content

    async def lookup_batch(self, phrases: list[Phrase]) -> list[bool]:
        """For each phrase, whether it is cached (the CI check)."""
        r = await self._client.post(
            f"{self._base}/lookup-batch",
            json={"phrases": [p.body() for p in phrases]},
            headers=self._headers,
            timeout=self.store_timeout_s,
        )
        _raise_for(r)
        return [bool(item["cached"]) for item in r.json()["results"]]

    async def store(self, phrase: Phrase, wav: bytes) -> StoreResult:
        """Store audio the runtime synthesized; idempotent (a second call creates nothing)."""
        r = await self._client.post(
            f"{self._base}/store",
            files={"file": ("take.wav", wav, "audio/wav")},
            data={"settings": json.dumps(phrase.body())},
            headers=self._headers,
            timeout=self.store_timeout_s,
        )
        _raise_for(r)
        data = r.json()
        return StoreResult(
            stored=bool(data["stored"]),
            created=bool(data["created"]),
            reason=data.get("reason"),
            entry=data.get("entry"),
        )


def _raise_for(response: httpx.Response) -> None:
    """The answer's error (``audiocache.client.AudioCacheError`` subclasses), if it is one."""
    if not response.is_success:
        raise error_from_response(response.status_code, response.headers, response.content)
