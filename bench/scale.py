"""Listing one agent of a million entries, on SQLite and on PostgreSQL, idle and under writes.

Per backend, everything in a temp dir, torn down at the end:

1. a database migrated to 0004 (the schema before the list indexes), one account key, one
   agent with admission ``always``, one real WAV blob in the local blob folder;
2. N entries (default 1,000,000) bulk-loaded into that agent — sqlite3 ``executemany`` in
   one transaction / asyncpg ``COPY`` — all pointing at the one blob; transcripts from
   call-centre templates with names and numbers (1 template in 100 says "order number");
3. the upgrade to head, timed: that is what an operator's existing database goes through;
4. ``audiocache serve`` (tests/support.py's LiveServer) on that database;
5. every request of the table, sequentially over one keep-alive connection, after a
   warm-up, idle and while a steady write load runs from a process of its own (misses
   through ``POST …/tts``, admission always, so each is synthesized by espeak-ng and
   stored, and ``PATCH …/file`` uploads over random entries): p50/p99 in ms of each, their
   ratio, and the server's RSS. The idle and loaded samples are taken in alternating
   blocks (idle, loaded, loaded, idle, ...; ``--blocks``), the load paused between, so the
   host's drift in speed falls on both alike.

PostgreSQL is a throwaway cluster of tests/realservers.py (fsync off: a bench, not a
durability test); S3 is not involved (listing never reads a blob).

    python bench/scale.py [--backend sqlite|postgres|both] [--entries 1000000]
                          [--samples 40] [--blocks 4] [--write-rate 4] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from realservers import PostgresCluster
from support import LiveServer, sine_wav

from audiocache.storage.blobs.fs import FilesystemBlobStore
from audiocache.storage.db import MIGRATIONS_DIR, Database, utcnow
from audiocache.storage.keys_repo import ApiKeyRepository
from audiocache.storage.tables import agents

ACCOUNT = "bench"
AGENT = "bench-agent"
GRANTS = frozenset({"audio_cache:read", "audio_cache:write", "agents:read", "agents:write"})
SORTS = {  # the direction an operator looks at first
    "id": "desc",
    "hit_count": "desc",
    "cached_at": "desc",
    "duration": "desc",
    "transcript": "asc",
    "provider": "asc",
    "language_code": "asc",
    "last_hit_at": "desc",
    "size": "desc",
}
CONTAINS = "order number"
AIM_MS = {"contains": 50.0}
AIM_DEFAULT_MS = 20.0
AIM_RSS_MB = 200.0

NAMES = ["Alice", "Bob", "Chidi", "Dana", "Émile", "Farah", "Göran", "Hiro", "Inés", "Jamal"]
PLACES = ["Leeds", "Austin", "Lyon", "Pune", "Osaka", "Cork", "Lagos", "Porto"]
VERBS = ["check", "confirm", "update", "cancel", "change", "find", "book", "move"]
THINGS = ["booking", "delivery", "appointment", "payment", "account", "ticket", "parcel"]


def log(message: str) -> None:
    print(f"[scale] {message}", file=sys.stderr, flush=True)


def templates() -> list[str]:
    """100 templates, exactly one of which says "order number"."""
    others = [
        f"I can {v} your {t} for {{name}} in {{place}}, ref {{n}}." for v in VERBS for t in THINGS
    ]
    others += [
        f"The {t} to {p} is booked for {{day}} at {{n}} past nine." for t in THINGS for p in PLACES
    ]
    return ["Your order number is {n}, {name}.", *others[:99]]


def transcripts(count: int, seed: int = 7) -> Iterator[str]:
    rng = random.Random(seed)
    shapes = templates()
    assert len(shapes) == 100 and sum(CONTAINS in s for s in shapes) == 1
    days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
    for i in range(count):
        yield shapes[i % 100].format(
            n=rng.randrange(10**7),
            name=rng.choice(NAMES),
            place=rng.choice(PLACES),
            day=rng.choice(days),
        )


def rows(count: int, sha: str, size: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(11)
    start = utcnow() - timedelta(days=365)
    for i, text in enumerate(transcripts(count)):
        cached = start + timedelta(seconds=i * 30)
        hits = int(rng.paretovariate(1.2)) - 1
        last = cached + timedelta(hours=rng.randrange(1, 2000)) if hits else None
        yield (
            AGENT,
            f"{i:064x}",
            text,
            rng.choice(("espeak", "piper", "fake")),
            "en-us",
            rng.choice(("en-US", "en-GB", "fr-FR", "de-DE")),
            "",
            "{}",
            sha,
            size + rng.randrange(-1000, 1000),
            round(rng.uniform(0.5, 9.0), 3),
            hits,
            cached,
            last,
            False,
            False,
            False,
            None,
        )


COLUMNS = (
    "agent_id",
    "cache_key",
    "transcript",
    "provider",
    "provider_voice_id",
    "language_code",
    "model",
    "config_json",
    "blob_sha256",
    "size_bytes",
    "duration",
    "hit_count",
    "cached_at",
    "last_hit_at",
    "regenerated",
    "imported",
    "pinned",
    "audio_filename",
)


# -- set-up -------------------------------------------------------------------------------


def _upgrade(connection: Any, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def migrate(url: str, revision: str) -> None:
    """To ``revision``; to head the way the server does it at start-up (``Database.migrate``:
    the upgrade, then the VACUUM of what it rewrote)."""
    db = Database(url)
    try:
        if revision == "head":
            await db.migrate()
            return
        async with db.write_engine.begin() as conn:
            await conn.run_sync(_upgrade, revision)
    finally:
        await db.close()


async def prepare(url: str, data_dir: Path) -> tuple[str, str, int]:
    """Schema at 0004, a key, the agent, the one blob. Returns (key, sha, size)."""
    await migrate(url, "0004")
    db = Database(url)
    try:
        _record, key = await ApiKeyRepository(db).create(ACCOUNT, GRANTS)
        now = utcnow()
        async with db.write() as conn:
            await conn.execute(
                agents.insert().values(
                    id=AGENT,
                    account_id=ACCOUNT,
                    public_id=AGENT,
                    name="Bench",
                    admission="always",
                    created_at=now,
                    updated_at=now,
                )
            )
    finally:
        await db.close()
    blob = await FilesystemBlobStore(data_dir / "blobs").put(sine_wav(1.0))
    return key, blob.sha256, blob.size


def seed_sqlite(path: Path, count: int, sha: str, size: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    placeholders = ", ".join("?" * len(COLUMNS))
    # SQLAlchemy's SQLite form of a DateTime (always with microseconds).
    stamp = "%Y-%m-%d %H:%M:%S.%f"
    conn.executemany(
        f"INSERT INTO audio_cache_entries ({', '.join(COLUMNS)}) VALUES ({placeholders})",
        (
            (*r[:12], r[12].strftime(stamp), r[13] and r[13].strftime(stamp), *r[14:])
            for r in rows(count, sha, size)
        ),
    )
    conn.execute("COMMIT")
    conn.close()


async def seed_postgres(url: str, count: int, sha: str, size: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.copy_records_to_table(
            "audio_cache_entries", records=rows(count, sha, size), columns=COLUMNS
        )
        await conn.execute("VACUUM ANALYZE audio_cache_entries")
    finally:
        await conn.close()


# -- measuring ----------------------------------------------------------------------------


def requests() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = [("limit=50 (default sort)", {"limit": 50})]
    for field, direction in SORTS.items():
        for offset in (0, 10_000):
            out.append(
                (
                    f"sort={field}:{direction} offset={offset}",
                    {"limit": 50, "sort": f"{field}:{direction}", "offset": offset},
                )
            )
    out.append(
        (
            f"filter=transcript:contains:{CONTAINS}",
            {"limit": 50, "filter": f"transcript:contains:{CONTAINS}"},
        )
    )
    return out


def _sample(client: httpx.Client, params: dict[str, Any]) -> tuple[float, int]:
    started = time.perf_counter()
    r = client.get(f"/v1/agents/{AGENT}/audio-cache", params=params)
    elapsed = (time.perf_counter() - started) * 1000
    r.raise_for_status()
    return elapsed, r.json()["totalCount"]


def _figures(times: list[float], total: int) -> dict[str, float]:
    times = sorted(times)
    return {
        "p50": statistics.median(times),
        "p99": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
        "totalCount": total,
    }


def measure(
    client: httpx.Client, samples: int, blocks: int, load: WriteLoad
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Idle and loaded figures of every request, the two taken in alternating blocks
    (idle, loaded, loaded, idle, idle, ...): each block a run of every request
    ``samples / blocks`` times, so the host's drift (its speed changes within minutes)
    falls on both alike. Returns (idle, loaded)."""
    shapes = requests()
    for _name, params in shapes:  # warm-up
        for _ in range(3):
            _sample(client, params)
    times: dict[bool, dict[str, list[float]]] = {False: {}, True: {}}
    totals: dict[str, int] = {}
    per_block = max(1, samples // blocks)
    order = [
        phase for k in range(blocks) for phase in ((False, True) if k % 2 == 0 else (True, False))
    ]
    for loaded in order:
        if loaded:
            load.resume()
        for name, params in shapes:
            for _ in range(per_block):
                elapsed, totals[name] = _sample(client, params)
                times[loaded].setdefault(name, []).append(elapsed)
        if loaded:
            load.pause()
    idle = {name: _figures(times[False][name], totals[name]) for name, _ in shapes}
    under = {name: _figures(times[True][name], totals[name]) for name, _ in shapes}
    return idle, under


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """The process's resident memory now (VmRSS) or at its peak (VmHWM), in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith(field))
    return kb / 1024


def _write_loop(
    url: str, key: str, rate: float, ids: list[int], kind: str, control: Any
) -> tuple[int, int]:
    """One kind of write, ``rate`` per second while ``running`` is set, until ``stop``
    is: (done, failed). ``busy`` counts the writes in flight."""
    running, stop, busy = control
    rng = random.Random(kind)
    upload = sine_wav(0.5, freq=660.0)
    errors = 0
    with httpx.Client(base_url=url, headers={"X-API-KEY": key}, timeout=30) as client:
        n = 0
        while not stop.is_set():
            if not running.wait(0.1):
                continue
            next_at = time.monotonic() + 1 / rate
            n += 1
            with busy.get_lock():
                busy.value += 1
            try:
                if kind == "misses":
                    r = client.post(
                        f"/v1/agents/{AGENT}/tts",
                        json={"text": f"New phrase {n} for {rng.random():.8f}"},
                    )
                else:
                    r = client.patch(
                        f"/v1/agents/{AGENT}/audio-cache/{rng.choice(ids)}/file",
                        content=upload,
                        headers={"Content-Type": "audio/wav"},
                    )
            finally:
                with busy.get_lock():
                    busy.value -= 1
            errors += r.status_code >= 300
            stop.wait(max(0.0, next_at - time.monotonic()))
    return n - errors, errors


def _write_process(url: str, key: str, rate: float, ids: list[int], control: Any, out: Any) -> None:
    results: dict[str, int] = {"errors": 0}

    def run(kind: str) -> None:
        results[kind], failed = _write_loop(url, key, rate, ids, kind, control)
        results["errors"] += failed

    threads = [threading.Thread(target=run, args=(k,)) for k in ("misses", "uploads")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(results)


class WriteLoad:
    """Misses (new phrases, synthesized and stored) and uploads, each ``rate`` per second,
    from a process of their own (in threads of this one they would share the measuring
    client's GIL: a sample whose response arrived while a write thread ran Python waited
    for it). ``resume()`` starts them, ``pause()`` stops them and waits for the writes in
    flight to be answered."""

    def __init__(self, url: str, key: str, rate: float, ids: list[int]) -> None:
        context = multiprocessing.get_context("spawn")
        self.running, self.stop = context.Event(), context.Event()
        self.busy = context.Value("i", 0)
        self.out = context.Queue()
        control = (self.running, self.stop, self.busy)
        self.process = context.Process(
            target=_write_process, args=(url, key, rate, ids, control, self.out)
        )
        self.process.start()
        self.done: dict[str, int] = {}

    def resume(self) -> None:
        self.running.set()
        time.sleep(1.0)  # let it reach its pace: writes in flight

    def pause(self) -> None:
        self.running.clear()
        deadline = time.monotonic() + 60
        while self.busy.value and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # what the server does right after a write (its commit, the memo)

    def close(self) -> None:
        self.stop.set()
        self.done.update(self.out.get(timeout=120))
        self.process.join(timeout=60)


@contextmanager
def write_load(url: str, key: str, rate: float, ids: list[int]) -> Iterator[WriteLoad]:
    load = WriteLoad(url, key, rate, ids)
    try:
        yield load
    finally:
        load.close()


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"audiocache-scale-{backend}-"))
    data_dir = root / "data"
    data_dir.mkdir()
    cluster = None
    server = None
    try:
        if backend == "postgres":
            cluster = PostgresCluster().start()
            url = cluster.create_database("scale")
        else:
            url = f"sqlite+aiosqlite:///{data_dir / 'audiocache.db'}"
        key, sha, size = asyncio.run(prepare(url, data_dir))
        started = time.perf_counter()
        if backend == "postgres":
            asyncio.run(seed_postgres(url, args.entries, sha, size))
        else:
            seed_sqlite(data_dir / "audiocache.db", args.entries, sha, size)
        seed_s = time.perf_counter() - started
        log(f"{backend}: seeded {args.entries:,} entries in {seed_s:.1f} s")
        started = time.perf_counter()
        asyncio.run(migrate(url, "head"))
        migrate_s = time.perf_counter() - started
        log(f"{backend}: upgrade 0004 → head (indexes, search, counters) in {migrate_s:.1f} s")
        server = LiveServer(data_dir, env={"AUDIOCACHE_DATABASE_URL": url}).start(timeout=60)
        assert server.process is not None
        with httpx.Client(base_url=server.url, headers={"X-API-KEY": key}, timeout=60) as client:
            loadavg = [os.getloadavg()[0]]
            ids = [
                int(e["id"])
                for e in client.get(
                    f"/v1/agents/{AGENT}/audio-cache", params={"limit": 200, "sort": "id:asc"}
                ).json()["entries"]
            ]
            with write_load(server.url, key, args.write_rate, ids) as load:
                idle, loaded = measure(client, args.samples, args.blocks, load)
                rss = rss_mb(server.process.pid)
                peak_rss = rss_mb(server.process.pid, "VmHWM")
                loadavg.append(os.getloadavg()[0])
            writes = dict(load.done)
            log(f"{backend}: measured ({writes}), RSS {rss:.0f} MB, peak {peak_rss:.0f} MB")
        return {
            "backend": backend,
            "entries": args.entries,
            "seed_s": seed_s,
            "migrate_s": migrate_s,
            "idle": idle,
            "loaded": loaded,
            "blocks": args.blocks,
            "writes": writes,
            "loadavg": loadavg,
            "rss_mb": rss,
            "rss_peak_mb": peak_rss,
        }
    finally:
        if server is not None:
            server.stop()
        if cluster is not None:
            cluster.stop()
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def report(result: dict[str, Any]) -> None:
    print(
        f"\n## {result['backend']}: {result['entries']:,} entries in one agent "
        f"(seed {result['seed_s']:.1f} s, upgrade to head {result['migrate_s']:.1f} s)"
    )
    print(f"writes during the loaded blocks: {result['writes']}")
    print(
        f"{result['blocks']} blocks each of idle and loaded, alternating; load average (1 min) "
        "before / after: " + " / ".join(f"{x:.1f}" for x in result["loadavg"])
    )
    print(
        "| request | idle p50 / p99 | loaded p50 / p99 | loaded ÷ idle p50 / p99 "
        "| aim p50 | totalCount |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, idle in result["idle"].items():
        loaded = result["loaded"][name]
        aim = AIM_MS["contains"] if "contains" in name else AIM_DEFAULT_MS
        print(
            f"| {name} | {idle['p50']:.1f} / {idle['p99']:.1f} "
            f"| {loaded['p50']:.1f} / {loaded['p99']:.1f} "
            f"| {loaded['p50'] / idle['p50']:.2f} / {loaded['p99'] / idle['p99']:.2f} "
            f"| ≤ {aim:.0f} | {int(loaded['totalCount']):,} |"
        )
    print(
        f"| server RSS (MB) at the end / at its peak | {result['rss_mb']:.0f} "
        f"| {result['rss_peak_mb']:.0f} | | ≤ {AIM_RSS_MB:.0f} | |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=40, help="per request and phase (40)")
    parser.add_argument(
        "--blocks", type=int, default=4, help="alternating idle/loaded blocks per phase (4)"
    )
    parser.add_argument(
        "--write-rate",
        type=float,
        default=4.0,
        help="misses per second and uploads per second under load",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    os.environ.setdefault("AUDIOCACHE_LOG_LEVEL", "warning")
    results = [run_backend(b, args) for b in backends]
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    for result in results:
        report(result)
    print(f"\n(run {datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
