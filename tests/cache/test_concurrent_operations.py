"""Operators and runtimes at once: random interleavings of speak, replace, delete, bulk delete
and agent delete never give a 5xx, and leave no row without its audio."""

from __future__ import annotations

import asyncio
import random

import pytest
from support import Api, sine_wav

from audiocache.storage import gc

TEXTS = ("one", "two", "three")


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_interleavings(api: Api, fake_engine, seed: int) -> None:
    fake_engine.delay_seconds = 0.01
    rnd = random.Random(seed)
    server_errors: list[tuple[str, int, str]] = []

    async def agent() -> None:
        """(Re)create the agent; a concurrent operation may have done it first (409)."""
        body = {
            "name": "Bot",
            "agentId": "bot",
            "responseSettings": {"greeting": "hi"},
            "voiceSettings": {"voiceId": "fake:alpha"},
        }
        r = await api.client.post("/v1/accounts/acme/agents", json=body, headers=api.headers)
        assert r.status_code in (200, 409), r.text
        policy = {"admission": "always"}
        await api.client.put("/v1/agents/bot/cache-policy", json=policy, headers=api.headers)

    async def some_ids() -> list[str]:
        r = await api.client.get("/v1/agents/bot/audio-cache", headers=api.headers)
        return [e["id"] for e in r.json()["entries"]] if r.status_code == 200 else []

    async def operation() -> None:
        roll = rnd.random()
        ids = await some_ids() if 0.5 <= roll < 0.9 else []
        base = "/v1/agents/bot/audio-cache"
        if roll < 0.5:
            fmt = rnd.choice([None, "ulaw_8000"])
            r = await api.speak("bot", rnd.choice(TEXTS), output_format=fmt)
        elif roll < 0.65 and ids:
            wav = sine_wav(freq=rnd.choice([300, 400]))
            r = await api.client.patch(
                f"{base}/{rnd.choice(ids)}/file", content=wav, headers=api.headers
            )
        elif roll < 0.8 and ids:
            r = await api.client.post(
                f"{base}/bulk-delete", json={"ids": ids[:2]}, headers=api.headers
            )
        elif roll < 0.9 and ids:
            params = {"output_format": rnd.choice(["wav", "ulaw_8000"])}
            r = await api.client.get(
                f"{base}/{rnd.choice(ids)}/file", params=params, headers=api.headers
            )
        elif roll >= 0.9:
            r = await api.client.delete("/v1/agents/bot", headers=api.headers)
            await agent()
        else:
            return
        if r.status_code >= 500:
            server_errors.append((r.request.url.path, r.status_code, r.text[:200]))

    await agent()
    for _ in range(25):
        await asyncio.gather(*(operation() for _ in range(6)))
    assert server_errors == []
    report = await gc.check(api.services.db, api.services.blobs)
    assert report.rows_without_blob == []
    collected = await gc.collect(api.services.db, api.services.blobs, grace_seconds=0)
    assert collected.blobs_without_row == [] and collected.pending == 0
