"""What recording the audit log costs a request: in-process, side by side.

The same app (SQLite + a folder, the fake engine) is run with the request observer's audit
hook on and off, alternately; each run times a write (``PUT …/pin``, audited) and the hot
path's download (``GET …/file``, never audited) one request at a time. Prints p50 / p99 in
microseconds and the events the audited runs left in the log.

    .venv/bin/python bench/audit_overhead.py [--requests 1500] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from audiocache.api.observe import RequestObserver
from audiocache.app import create_app
from audiocache.config import Settings
from audiocache.services import build_services
from audiocache.tts.fake import FakeEngine

AGENT = {
    "name": "Bench",
    "agentId": "bot",
    "responseSettings": {"greeting": "hi"},
    "voiceSettings": {"voiceId": "fake:alpha"},
}


async def run(audited: bool, requests: int) -> dict[str, object]:
    settings = Settings(data_dir=Path(tempfile.mkdtemp()) / "data", access_log=False)
    services = build_services(settings, engines=[FakeEngine()])
    app = create_app(settings, services)
    if not audited:
        for middleware in app.user_middleware:
            if middleware.cls is RequestObserver:
                middleware.kwargs["audit"] = None
    out: dict[str, object] = {}
    async with LifespanManager(app) as manager:
        _record, key = await services.keys.create("acme", {"*"})
        headers = {"X-API-KEY": key}
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await client.post("/v1/accounts/acme/agents", json=AGENT, headers=headers)
            policy = {"admission": "always", "personalData": "cache"}
            await client.put("/v1/agents/bot/cache-policy", json=policy, headers=headers)
            spoken = await client.post("/v1/agents/bot/tts", json={"text": "hi"}, headers=headers)
            entry = spoken.headers["x-audio-cache-entry-id"]
            base = f"/v1/agents/bot/audio-cache/{entry}"
            for name, method, url in (
                ("pin", "PUT", f"{base}/pin"),
                ("file", "GET", f"{base}/file"),
            ):
                for _ in range(100):  # warm-up
                    await client.request(method, url, headers=headers)
                took = []
                for _ in range(requests):
                    started = time.perf_counter()
                    response = await client.request(method, url, headers=headers)
                    took.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
                took.sort()
                out[name] = (
                    round(statistics.median(took) * 1e6),
                    round(took[int(len(took) * 0.99)] * 1e6),
                )
            log = await client.get("/v1/accounts/acme/audit-log", headers=headers)
            out["events"] = log.json()["totalCount"]
    return out


async def main(requests: int, rounds: int) -> None:
    print("audit  | pin p50/p99 µs | file p50/p99 µs | events")
    for _ in range(rounds):
        for audited in (False, True):
            r = await run(audited, requests)
            print(f"{'on ' if audited else 'off'}    | {r['pin']} | {r['file']} | {r['events']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
