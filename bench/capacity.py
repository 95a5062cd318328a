"""Database statements and blob-store calls per request, counted: the inputs of the capacity
model in docs/deploy.md.

Runs the app in process (SQLite + a local folder, or --postgres/--s3 URLs) with a fake
engine, and counts, per request kind: SQL statements through SQLAlchemy, point lookups (the
hot path's direct reads), and blob-store calls by method (on S3 each is one request).

    .venv/bin/python bench/capacity.py [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import event

from audiocache.app import create_app
from audiocache.config import Settings
from audiocache.services import build_services
from audiocache.tts.fake import FakeEngine

BLOB_METHODS = ("put", "stat", "read", "open_range", "delete")


class Counts:
    def __init__(self) -> None:
        self.sql = 0
        self.point = 0
        self.blobs: collections.Counter[str] = collections.Counter()

    def reset(self) -> None:
        self.sql, self.point = 0, 0
        self.blobs.clear()

    def row(self, name: str, per: int) -> str:
        blob = ", ".join(f"{k} {v / per:g}" for k, v in sorted(self.blobs.items())) or "none"
        return f"| {name} | {self.sql / per:g} | {self.point / per:g} | {blob} |"


def _instrument(services: Any, counts: Counts) -> None:
    for engine in {services.db.engine, services.db.write_engine}:

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _count(*_args: Any) -> None:
            counts.sql += 1

    reader = services.db.point_reader
    if reader is not None:
        first = reader.first

        async def counted_first(*args: Any, **kwargs: Any) -> Any:
            counts.point += 1
            return await first(*args, **kwargs)

        reader.first = counted_first
    for method in BLOB_METHODS:
        original: Callable[..., Any] = getattr(services.blobs, method)

        def wrap(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
            def counted(*args: Any, **kwargs: Any) -> Any:
                counts.blobs[name] += 1
                return call(*args, **kwargs)

            return counted

        setattr(services.blobs, method, wrap(method, original))


async def measure(settings: Settings, n: int) -> list[str]:
    services = build_services(settings, engines=[FakeEngine()])
    app = create_app(settings, services)
    counts = Counts()
    rows = []
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            _record, key = await services.keys.create("acme", {"*"})
            h = {"X-API-KEY": key}
            agent = {
                "name": "A",
                "agentId": "a",
                "responseSettings": {"greeting": "Hi", "languageCode": "en-US"},
                "voiceSettings": {"voiceId": "fake:alpha"},
            }
            await client.post("/v1/accounts/acme/agents", json=agent, headers=h)
            _instrument(services, counts)
            for policy, label in (
                ("always", "miss, stored (admission always)"),
                ("default", "miss, not yet admitted (default policy)"),
            ):
                await client.put("/v1/agents/a/cache-policy", json={"admission": policy}, headers=h)
                counts.reset()
                for i in range(n):
                    r = await client.post(
                        "/v1/agents/a/tts", json={"text": f"{label} {i}"}, headers=h
                    )
                    assert r.status_code == 200
                rows.append(counts.row(label, n))
            await client.put("/v1/agents/a/cache-policy", json={"admission": "always"}, headers=h)
            r = await client.post("/v1/agents/a/tts", json={"text": "a hit"}, headers=h)
            entry = r.headers["x-audio-cache-entry-id"]
            counts.reset()
            for _ in range(n):
                r = await client.post("/v1/agents/a/tts", json={"text": "a hit"}, headers=h)
                assert r.headers["x-audio-cache"] == "hit"
            rows.append(counts.row("runtime-path hit", n))
            counts.reset()
            for _ in range(n):
                r = await client.get(f"/v1/agents/a/audio-cache/{entry}/file", headers=h)
                assert r.status_code == 200
            rows.append(counts.row("download", n))
            counts.reset()
            await services.hits.flush()
            rows.append(counts.row(f"hit-count flush (after {2 * n} hits of one entry)", 1))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=50)
    parser.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL cluster")
    args = parser.parse_args()
    cluster = None
    url = None
    if args.postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from realservers import PostgresCluster

        cluster = PostgresCluster().start()
        url = cluster.create_database("capacity")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(data_dir=Path(tmp), database_url=url, hit_flush_seconds=3600)
            rows = asyncio.run(measure(settings, args.n))
    finally:
        if cluster is not None:
            cluster.stop()
    print("| request | SQL statements | point lookups | blob-store calls (S3 requests) |")
    print("|---|---:|---:|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
