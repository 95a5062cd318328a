"""Eviction at scale: choosing and deleting one batch from an agent of N entries.

Per backend, everything in a temp dir, torn down at the end: a migrated database, one agent
with N entries (default 100,000) bulk-inserted with varied last hits and hit counts, all on
one blob in the local folder, and its usage counters. Then, for lru, lfu and a TTL, over
``--runs`` runs: the time to choose a batch (``EvictionRepository.usage`` + ``candidates``,
what the evictor does before deleting) and the time to delete it
(``Curation.delete_entries``: rows, counters, queue, sweep); and for comparison the
previous choice, one ORDER BY over every evictable row of the agent (a scan and a sort).

PostgreSQL is a throwaway cluster of tests/realservers.py.

    python bench/eviction.py [--backend sqlite|postgres|both] [--entries 100000]
                             [--batch 500] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from realservers import PostgresCluster
from support import sine_wav

from audiocache.config import Settings
from audiocache.models import Limits, Ttl
from audiocache.services import build_services
from audiocache.storage.db import utcnow
from audiocache.storage.eviction_repo import candidate_statements
from audiocache.storage.tables import LAST_USED, agent_usage, entries


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def load(services: Any, count: int) -> str:
    agent = await services.agents.create("bench", name="bench", greeting="hi", language_code="en")
    info = await services.blobs.put(sine_wav(0.2))
    now = utcnow()
    chunk = 5000
    async with services.db.write() as conn:
        for first in range(0, count, chunk):
            rows = [
                {
                    "agent_id": agent.id,
                    "cache_key": f"{n:064x}",
                    "transcript": f"phrase {n}",
                    "provider": "fake",
                    "provider_voice_id": "alpha",
                    "blob_sha256": info.sha256,
                    "size_bytes": info.size,
                    "duration": 0.2,
                    "hit_count": (n * 7919) % 50,
                    "cached_at": now - timedelta(days=30),
                    "last_hit_at": now - timedelta(minutes=(n * 104729) % 40000),
                }
                for n in range(first, min(first + chunk, count))
            ]
            await conn.execute(entries.insert(), rows)
        await conn.execute(
            agent_usage.update()
            .where(agent_usage.c.agent_id == agent.id)
            .values(entry_count=count, total_bytes=count * info.size)
        )
    async with services.db.write() as conn:  # the statistics autovacuum would gather
        await conn.execute(sa.text("ANALYZE"))
    return str(agent.id)


def _ms(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(samples) * 1000, 2),
        "max_ms": round(max(samples) * 1000, 2),
    }


async def bench(settings: Settings, count: int, batch: int, runs: int) -> dict[str, Any]:
    services = build_services(settings, engines=[])
    await services.db.migrate()
    try:
        started = time.perf_counter()
        agent_id = await load(services, count)
        log(f"  loaded {count} entries in {time.perf_counter() - started:.1f} s")
        repo = services.evictor.repo
        now = utcnow()
        results: dict[str, Any] = {}
        for name, limits in {
            "lru": Limits(max_entries=count - batch * runs, policy="lru"),
            "lfu": Limits(max_entries=count - batch * runs, policy="lfu"),
            "ttl": Limits(policy="lru", ttls=(Ttl(86400 * 20, "last_hit"),)),
        }.items():
            choose, delete = [], []
            for _ in range(runs):
                t0 = time.perf_counter()
                await repo.usage(agent_id)
                found = await repo.candidates(agent_id, limits, now, batch)
                t1 = time.perf_counter()
                deleted = await services.curation.delete_entries(
                    agent_id, [c.id for c in found], evicting=True
                )
                t2 = time.perf_counter()
                assert len(deleted) == len(found) == batch, (len(deleted), len(found))
                choose.append(t1 - t0)
                delete.append(t2 - t1)
            results[name] = {"choose": _ms(choose), "delete": _ms(delete)}
            log(f"  {name}: choose {results[name]['choose']}, delete {results[name]['delete']}")
        # The previous choice: one sorted read of every evictable row (expired-first CASE).
        old = (
            sa.select(entries.c.id)
            .where(entries.c.agent_id == agent_id, entries.c.pinned == sa.false())
            .order_by(sa.case((now - timedelta(days=20) >= LAST_USED, 0), else_=1), LAST_USED)
            .limit(batch)
        )
        scans = []
        for _ in range(runs):
            t0 = time.perf_counter()
            async with services.db.read() as conn:
                (await conn.execute(old)).all()
        async with services.db.read() as conn:
            stmt = candidate_statements(agent_id, Limits(max_entries=1), now, batch)[0]
            compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            explain = "EXPLAIN QUERY PLAN" if conn.dialect.name == "sqlite" else "EXPLAIN"
            plan = (await conn.exec_driver_sql(f"{explain} {compiled}")).all()
            log("  lru plan: " + " | ".join(str(r[-1]) for r in plan))
            scans.append(time.perf_counter() - t0)
        results["previous_full_sort"] = {"choose": _ms(scans)}
        log(f"  previous (scan + sort): choose {results['previous_full_sort']['choose']}")
        return results
    finally:
        await services.db.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report: dict[str, Any] = {"entries": args.entries, "batch": args.batch}
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend in ("sqlite", "both"):
            log("sqlite")
            settings = Settings(data_dir=Path(tmp) / "sqlite")
            report["sqlite"] = asyncio.run(bench(settings, args.entries, args.batch, args.runs))
        if args.backend in ("postgres", "both"):
            log("postgres")
            cluster = PostgresCluster().start()
            try:
                url = cluster.create_database("eviction")
                settings = Settings(data_dir=Path(tmp) / "pg", database_url=url)
                report["postgres"] = asyncio.run(
                    bench(settings, args.entries, args.batch, args.runs)
                )
            finally:
                cluster.stop()
    print(json.dumps(report, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
