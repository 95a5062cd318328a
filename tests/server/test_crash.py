"""kill -9 at random points during mixed writes (stores, replaces, restores of earlier takes,
deletes): no acknowledged write is lost, and after ``audiocache gc`` there is no row without
a blob and no blob without a row.

Each entry is owned by one client thread, so the writes to one entry are sequential: at a kill,
an entry is either in its last acknowledged state or in the state of the one write that was in
flight. After every restart the observed state becomes the new baseline.

The seed is printed; rerun a failure with ``CRASH_TEST_SEED=<seed>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from support import LiveServer, backend_env, sine_wav

from audiocache.config import Settings
from audiocache.services import build_services
from audiocache.storage.references import all_references
from audiocache.storage.tables import entries, pending_blob_deletes

pytestmark = pytest.mark.slow

ROUNDS = 5
MIN_ROUNDS = 3  # then stop starting rounds once the budget is spent, to stay well under 90 s
BUDGET_SECONDS = 50.0
WORKERS = 4
OPS_PER_WORKER = 30
KILL_AFTER_SECONDS = (0.05, 0.8)
AGENT = "bot"
BASE = f"/v1/agents/{AGENT}/audio-cache"
GRANTS = ("audio_cache:read", "audio_cache:write", "agents:read", "agents:write")
# A few shared WAVs, so that entries share blobs and a delete can race a re-use of the hash.
PALETTE = [sine_wav(seconds=0.2, freq=f) for f in (330.0, 440.0, 550.0)]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class State:
    """What an entry holds: its audio hash and transcript; both None once it is gone."""

    sha256: str | None
    transcript: str | None


GONE = State(None, None)


@dataclass
class Tracked:
    entry_id: int
    baseline: State  # the last acknowledged (or, after a restart, observed) state
    maybe: State | None = None  # the unacknowledged write in flight at the kill, if any

    def acceptable(self) -> list[State]:
        return [self.baseline] + ([self.maybe] if self.maybe is not None else [])


@dataclass
class Worker:
    index: int
    owned: dict[int, Tracked] = field(default_factory=dict)
    unknown_stores: set[str] = field(default_factory=set)  # texts whose store was in flight
    acked: int = 0
    errors: list[str] = field(default_factory=list)
    progress: threading.Event = field(default_factory=threading.Event)  # shared in a round
    # Entries whose last write was in flight at a kill: left alone until verified (with two
    # instances the worker goes on writing through the other one).
    frozen: set[int] = field(default_factory=set)
    on_ack: Callable[[], None] | None = None

    def ack(self) -> None:
        self.acked += 1
        self.progress.set()
        if self.on_ack is not None:
            self.on_ack()


class ServerGone(Exception):
    """The request may or may not have reached the server (it was killed)."""


class NotSent(Exception):
    """The connection was refused: the request never reached the server."""


SHED = ("UPLOADS_BUSY", "ENGINE_BUSY")  # refused before any work: sent again, as clients do


def _send(client: httpx.Client, method: str, url: str, **kwargs: object) -> httpx.Response:
    for _attempt in range(20):
        try:
            response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.ConnectError as exc:
            raise NotSent(str(exc)) from exc
        except httpx.TransportError as exc:
            raise ServerGone(repr(exc)) from exc
        if response.status_code != 503 or not any(code in response.text for code in SHED):
            return response
        time.sleep(min(float(response.headers.get("retry-after", "1")), 1.0) / 4)
    return response


def run_worker(
    worker: Worker,
    url: str,
    key: str,
    rng: random.Random,
    round_no: int,
    stop: threading.Event,
    *,
    ops: int = OPS_PER_WORKER,
    fallback: str | None = None,
) -> None:
    """``ops`` writes through ``url``; if that server dies, the rest through ``fallback``
    (another instance on the same stores), else this worker's part of the round is over."""
    headers = {"X-API-KEY": key}
    client = httpx.Client(base_url=url, headers=headers, timeout=15.0)
    try:
        for n in range(ops):
            if stop.is_set():
                return
            try:
                one_op(client, worker, rng, f"crash {round_no} {worker.index} {n}")
            except (NotSent, ServerGone):
                if fallback is None:
                    return
                worker.frozen |= {i for i, t in worker.owned.items() if t.maybe is not None}
                client.close()
                client = httpx.Client(base_url=fallback, headers=headers, timeout=15.0)
                fallback = None
            except Exception as exc:  # a thread must not fail silently
                worker.errors.append(f"worker {worker.index} crashed: {exc!r}")
                return
    finally:
        client.close()


def one_op(client: httpx.Client, worker: Worker, rng: random.Random, label: str) -> None:
    owned = [
        t for t in worker.owned.values() if t.baseline != GONE and t.entry_id not in worker.frozen
    ]
    roll = rng.random()
    if not owned or roll < 0.35:
        text = f"{label} {rng.randrange(10**6)}"
        worker.unknown_stores.add(text)
        r = _send(client, "POST", f"/v1/agents/{AGENT}/tts", json={"text": text})
        if r.status_code != 200 or "x-audio-cache-entry-id" not in r.headers:
            worker.errors.append(f"store {text!r}: {r.status_code} {r.headers} {r.text[:200]}")
            return
        worker.unknown_stores.discard(text)
        entry_id = int(r.headers["x-audio-cache-entry-id"])
        if entry_id in worker.owned and worker.owned[entry_id].baseline != GONE:
            worker.errors.append(f"store {text!r} answered with existing entry {entry_id}")
        worker.owned[entry_id] = Tracked(entry_id, State(sha(r.content), text))
        worker.ack()
        return
    target = rng.choice(owned)
    if roll < 0.6:
        wav = rng.choice(PALETTE) if rng.random() < 0.3 else sine_wav(0.2, freq=_freq(rng))
        new = State(sha(wav), target.baseline.transcript)
        expect_ok(
            worker,
            [target],
            new,
            lambda: _send(
                client,
                "PATCH",
                f"{BASE}/{target.entry_id}/file",
                content=wav,
                headers={"Content-Type": "audio/wav"},
            ),
            204,
        )
    elif roll < 0.72:
        wav = sine_wav(0.2, freq=_freq(rng))
        text = f"{label} details {rng.randrange(10**6)}"
        settings = json.dumps({"text": text, "config": {"speed": 1.0}})
        expect_ok(
            worker,
            [target],
            State(sha(wav), text),
            lambda: _send(
                client,
                "PUT",
                f"{BASE}/{target.entry_id}/details",
                files={"file": ("take.wav", wav, "audio/wav")},
                data={"settings": settings},
            ),
            204,
        )
    elif roll < 0.84:
        restore_a_take(client, worker, target)
    elif roll < 0.92:
        expect_ok(
            worker,
            [target],
            GONE,
            lambda: _send(client, "DELETE", f"{BASE}/{target.entry_id}"),
            200,
        )
    else:
        chosen = rng.sample(owned, min(len(owned), rng.randint(2, 4)))
        ids = [str(t.entry_id) for t in chosen]
        response = expect_ok(
            worker,
            chosen,
            GONE,
            lambda: _send(client, "POST", f"{BASE}/bulk-delete", json={"ids": ids}),
            200,
        )
        if response is not None and response.json() != {"deleted": ids, "failed": []}:
            worker.errors.append(f"bulk delete {ids}: {response.text}")


def restore_a_take(client: httpx.Client, worker: Worker, target: Tracked) -> None:
    """Bring the entry's newest earlier take back: its audio and transcript are expected."""
    r = _send(client, "GET", f"{BASE}/{target.entry_id}/history")
    if r.status_code != 200:
        worker.errors.append(f"history of {target.entry_id}: {r.status_code} {r.text[:300]}")
        return
    takes = r.json()["takes"]
    if not takes:
        return
    take = takes[0]
    expect_ok(
        worker,
        [target],
        State(take["sha256"], take["transcript"]),
        lambda: _send(client, "POST", f"{BASE}/{target.entry_id}/history/{take['id']}/restore"),
        200,
    )


def expect_ok(
    worker: Worker,
    targets: list[Tracked],
    new: State,
    send: Callable[[], httpx.Response],
    status: int,
) -> httpx.Response | None:
    for t in targets:
        t.maybe = new
    try:
        r = send()
    except NotSent:
        for t in targets:
            t.maybe = None
        raise
    if r.status_code != status:
        worker.errors.append(f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}")
        return None
    for t in targets:
        t.baseline, t.maybe = new, None
    worker.ack()
    return r


def _freq(rng: random.Random) -> float:
    return round(rng.uniform(200.0, 3000.0), 6)


def list_entries(client: httpx.Client) -> dict[int, str]:
    found: dict[int, str] = {}
    offset = 0
    while True:
        r = client.get(BASE, params={"limit": 200, "offset": offset})
        assert r.status_code == 200, r.text
        body = r.json()
        found.update({int(e["id"]): e["transcript"] for e in body["entries"]})
        offset += len(body["entries"])
        if not body["entries"] or offset >= body["totalCount"]:
            return found


def verify(url: str, key: str, workers: list[Worker]) -> int:
    """Check every tracked entry against what is acceptable; the observed state is the new
    baseline. Entries stored by an unacknowledged write are adopted. Returns the entry count."""
    with httpx.Client(base_url=url, headers={"X-API-KEY": key}, timeout=15.0) as client:
        listed = list_entries(client)

        def observe(entry_id: int) -> State:
            if entry_id not in listed:
                r = client.get(f"{BASE}/{entry_id}/file")
                assert r.status_code == 404, (entry_id, r.status_code, r.text[:300])
                return GONE
            r = client.get(f"{BASE}/{entry_id}/file")
            assert r.status_code == 200, (entry_id, r.status_code, r.text[:300])
            assert r.headers.get("etag", "").strip('"') in ("", sha(r.content)), r.headers
            return State(sha(r.content), listed[entry_id])

        problems = []
        tracked_ids: set[int] = set()
        for worker in workers:
            for tracked in worker.owned.values():
                tracked_ids.add(tracked.entry_id)
                seen = observe(tracked.entry_id)
                if seen not in tracked.acceptable():
                    problems.append(
                        f"entry {tracked.entry_id}: acknowledged {tracked.baseline}, "
                        f"in flight {tracked.maybe}, found {seen}"
                    )
                tracked.baseline, tracked.maybe = seen, None
            worker.owned = {i: t for i, t in worker.owned.items() if t.baseline != GONE}
        for entry_id in sorted(set(listed) - tracked_ids):
            owner = next((w for w in workers if listed[entry_id] in w.unknown_stores), None)
            if owner is None:
                problems.append(f"entry {entry_id} ({listed[entry_id]!r}) was never written")
                continue
            owner.unknown_stores.discard(listed[entry_id])
            owner.owned[entry_id] = Tracked(entry_id, observe(entry_id))
        for worker in workers:
            worker.unknown_stores.clear()
            worker.frozen.clear()
        assert not problems, "\n".join(problems)
    return len(listed)


def cli_json(server: LiveServer, *args: str) -> dict:
    result = server.cli(*args, "--json")
    assert result.stdout.strip(), (result.returncode, result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_no_row_without_blob(server: LiveServer, when: str) -> None:
    report = cli_json(server, "check")
    assert report["rowsWithoutBlob"] == [], (when, report)


def stored_state(settings: Settings) -> tuple[set[str], set[str], set[str], int, list[Path]]:
    """What the stores hold, read directly: blobs, hashes entries refer to, hashes any row
    refers to (entries and the takes of their history), queued deletes, and (on a folder)
    temp files left behind."""

    async def read() -> tuple[set[str], set[str], set[str], int]:
        services = build_services(settings, engines=[])
        try:
            blobs = {blob.sha256 async for blob in services.blobs.iter_blobs()}
            async with services.db.read() as conn:
                rows = await conn.execute(sa.select(entries.c.blob_sha256))
                referenced = {row[0] for row in rows}
                anything = {sha for _row, sha in await all_references(conn)}
                count = sa.select(sa.func.count()).select_from(pending_blob_deletes)
                pending = (await conn.execute(count)).scalar_one()
        finally:
            await services.db.close()
            await services.blobs.close()
        return blobs, referenced, anything, pending

    blobs, referenced, anything, pending = asyncio.run(read())
    temps = [] if settings.blob_url else list(settings.resolved_blob_dir().glob("*/.tmp-*"))
    return blobs, referenced, anything, pending, temps


def seeded_random() -> random.Random:
    """The test's random source, from ``CRASH_TEST_SEED`` or a fresh seed, which is printed."""
    seed = int(os.environ.get("CRASH_TEST_SEED") or random.randrange(2**32))
    print(f"crash test seed: {seed} (rerun with CRASH_TEST_SEED={seed})")
    return random.Random(seed)


@dataclass
class Writers:
    """One client thread per worker, writing until its ops are done, ``stop`` is set, or its
    server is gone (and the one to go on through, if it has one)."""

    workers: list[Worker]
    threads: list[threading.Thread]
    stop: threading.Event

    def join(self, timeout: float) -> None:
        """Wait for every thread; none may hang after a kill, and none may have seen an error."""
        for thread in self.threads:
            thread.join(timeout=timeout)
            assert not thread.is_alive(), "a client thread hung after the kill"
        errors = [e for w in self.workers for e in w.errors]
        assert not errors, "\n".join(errors)


def start_writers(
    workers: list[Worker],
    route: Callable[[Worker], tuple[str, str | None]],
    key: str,
    master: random.Random,
    *,
    round_no: int = 0,
    ops: int = OPS_PER_WORKER,
) -> Writers:
    """Start ``run_worker`` for each worker through ``route(worker)``: its server's URL and the
    fallback's (or None). Each thread gets its own random source drawn from ``master``."""
    stop = threading.Event()
    threads = []
    for w in workers:
        url, fallback = route(w)
        rng = random.Random(master.random())
        threads.append(
            threading.Thread(
                target=run_worker,
                args=(w, url, key, rng, round_no, stop),
                kwargs={"ops": ops, "fallback": fallback},
                daemon=True,
            )
        )
    for thread in threads:
        thread.start()
    return Writers(workers, threads, stop)


def test_kill_9_during_mixed_writes_loses_no_acknowledged_write(
    tmp_path: Path, settings: Settings
) -> None:
    master = seeded_random()
    data_dir = tmp_path / "srv"
    servers: list[LiveServer] = []
    env = backend_env(settings)  # SQLite + the folder in data_dir, or PostgreSQL + S3

    def start() -> LiveServer:
        server = LiveServer(data_dir, env)  # a fresh port per start; the same data
        servers.append(server)
        return server.start()

    started = time.monotonic()
    try:
        server = start()
        key = _set_up(server)
        workers = [Worker(i) for i in range(WORKERS)]
        acked_total = 0
        for round_no in range(ROUNDS):
            if round_no >= MIN_ROUNDS and time.monotonic() - started > BUDGET_SECONDS:
                print(f"time budget spent after {round_no} rounds (a loaded machine)")
                break
            progress = threading.Event()
            for w in workers:
                w.progress = progress
            before = sum(w.acked for w in workers)
            only = (server.url, None)  # one instance: nowhere to go on through
            writers = start_writers(workers, lambda _w, r=only: r, key, master, round_no=round_no)
            # Kill mid-stream: count the random delay from the first acknowledged write.
            progress.wait(timeout=10)
            time.sleep(master.uniform(*KILL_AFTER_SECONDS))
            server.kill()
            writers.stop.set()
            in_flight = sum(t.maybe is not None for w in workers for t in w.owned.values())
            in_flight += sum(len(w.unknown_stores) for w in workers)
            writers.join(timeout=20)
            acked_total += sum(w.acked for w in workers) - before

            # Straight after the kill, before any start-up sweep: no row lacks its blob.
            assert_no_row_without_blob(server, f"after kill {round_no}")
            server = start()
            count = verify(server.url, key, workers)
            print(
                f"round {round_no}: {sum(w.acked for w in workers) - before} acknowledged "
                f"writes, {in_flight} in flight at the kill, {count} entries after restart "
                f"({time.monotonic() - started:.1f}s)"
            )
        assert acked_total > 0, "no write was acknowledged before the kills"
        server.stop()
        assert_collected_and_consistent(server, settings, data_dir, workers)
        print(f"{acked_total} acknowledged writes in {time.monotonic() - started:.1f}s")
    finally:
        for s in servers:
            s.kill()


def assert_collected_and_consistent(
    server: LiveServer, settings: Settings, data_dir: Path, workers: list[Worker]
) -> None:
    """With every server stopped: ``audiocache gc`` leaves exactly the blobs rows refer to
    (no orphan object, no row without its blob), and those are the verified states'."""
    assert_no_row_without_blob(server, "before gc")
    report = cli_json(server, "gc", "--grace-seconds", "0")
    assert report["rowsWithoutBlob"] == [], report
    assert report["blobsWithoutRow"] == [], report
    assert report["pending"] == 0, report
    stored = stored_state(settings.model_copy(update={"data_dir": data_dir}))
    on_disk, referenced, anything, pending, temps = stored
    assert temps == [], temps
    assert pending == 0
    assert referenced <= anything  # the rest: replaced takes kept in the entries' history
    assert on_disk == anything
    assert report["blobs"] == len(anything)
    expected = {t.baseline.sha256 for w in workers for t in w.owned.values()}
    assert referenced == expected
    after = cli_json(server, "check")
    assert after["rowsWithoutBlob"] == [] and after["blobsWithoutRow"] == [], after


TWO_WORKERS = 16
TWO_OPS = 63  # 16 x 63 = 1,008 writes over the two instances


@pytest.mark.parametrize("backend", ["postgres+s3"])
def test_kill_9_of_one_of_two_instances_loses_no_acknowledged_write(
    tmp_path: Path, settings: Settings
) -> None:
    """Two ``audiocache serve`` on one PostgreSQL database and one S3 bucket, 1,000 mixed
    writes spread over both; one is killed -9 mid-run and its clients go on through the
    other. Every acknowledged write is there with its bytes, nothing was written that was
    not sent, and gc leaves no orphan object in the bucket."""
    master = seeded_random()
    data_dir = tmp_path / "srv"
    env = backend_env(settings)
    started = time.monotonic()
    servers = [LiveServer(data_dir, env), LiveServer(data_dir, env)]
    try:
        survivor, victim = (s.start() for s in servers)
        key = _set_up(survivor)
        workers = [Worker(i) for i in range(TWO_WORKERS)]
        acked = 0
        lock = threading.Lock()
        kill_at = master.randint(250, 600)  # acknowledged writes before the kill
        reached = threading.Event()

        def counted() -> None:
            nonlocal acked
            with lock:
                acked += 1
                if acked >= kill_at:
                    reached.set()

        for w in workers:
            w.on_ack = counted

        def route(w: Worker) -> tuple[str, str | None]:
            """Every other client through the victim, going on through the survivor."""
            return (victim.url, survivor.url) if w.index % 2 else (survivor.url, None)

        writing = time.monotonic()
        writers = start_writers(workers, route, key, master, ops=TWO_OPS)
        assert reached.wait(timeout=60), f"only {acked} writes acknowledged"
        victim.kill()
        at_kill = acked
        writers.join(timeout=60)
        writing = time.monotonic() - writing
        assert acked >= TWO_WORKERS * TWO_OPS * 0.9, acked  # the rest: writes lost in flight
        assert_no_row_without_blob(survivor, "after the kill")
        count = verify(survivor.url, key, workers)
        survivor.stop()
        assert_collected_and_consistent(survivor, settings, data_dir, workers)
        print(
            f"{acked} acknowledged writes ({at_kill} before the kill) in {writing:.1f}s, "
            f"{count} entries; {time.monotonic() - started:.1f}s in all"
        )
    finally:
        for server in servers:
            server.kill()


def _set_up(server: LiveServer) -> str:
    """A key and the agent (admission always), through ``server``; returns the key."""
    made = server.cli("keys", "create", "--account", "acme", *_grant_args())
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    headers = {"X-API-KEY": key}
    r = httpx.post(
        f"{server.url}/v1/accounts/acme/agents",
        json={
            "name": "Bot",
            "agentId": AGENT,
            "responseSettings": {"greeting": "hi"},
            "voiceSettings": {"voiceId": "en-us"},
        },
        headers=headers,
    )
    assert r.status_code == 200, r.text
    r = httpx.put(
        f"{server.url}/v1/agents/{AGENT}/cache-policy",
        # the phrases carry numbers, which the personal-data rule would keep out
        json={"admission": "always", "personalData": "cache"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    return key


def _grant_args() -> list[str]:
    return [arg for grant in GRANTS for arg in ("--grant", grant)]
