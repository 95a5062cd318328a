"""What the plugin tests get of a live audiocache (the fixtures are in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from audiocache.integrations.client import DEFAULT_LOOKUP_BUDGET_S, AudioCacheClient

BACKENDS = ("sqlite+fs", "postgres+s3")


@dataclass
class LiveCache:
    url: str
    key: str
    agent: str
    http: httpx.AsyncClient

    def client(
        self, budget: float = DEFAULT_LOOKUP_BUDGET_S, key: str | None = None
    ) -> AudioCacheClient:
        return AudioCacheClient(
            self.http, self.agent, api_key=key or self.key, lookup_budget_s=budget
        )

    async def entries(self) -> list[dict]:
        r = await self.http.get(
            f"/v1/agents/{self.agent}/audio-cache", headers={"X-API-KEY": self.key}
        )
        assert r.status_code == 200, r.text
        return r.json()["entries"]
