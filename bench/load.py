"""Load: what a burst of misses does to the server, on a live server on 127.0.0.1.

Each scenario gets a fresh server (its own data dir, default settings unless --env), an
agent with one cached entry, and a read-only key (`audio_cache:read`, all a caller needs to
make the server synthesize). It prints, and with --json emits:

- piper8, piper44: that many concurrent 800-character Piper misses (distinct texts, no
  punctuation: the worst case for memory). Peak RSS of the server during the burst, RSS
  before and after, answers by status and error code, whether the server is alive, and
  cached downloads meanwhile (p50/p99).
- espeak200: 200 concurrent distinct espeak-ng misses; cached downloads meanwhile (p50,
  p99, max), answers by status and code.

Downloads are timed from a separate process (one keep-alive connection, one request every
5 ms), so the burst's client does not skew them. Every scenario is bounded in requests and
time. Add a scenario by writing a function and registering it with @scenario("name").

    .venv/bin/python bench/load.py [--only piper8,piper44,espeak200] [--env NAME=VALUE] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

MB = 1024 * 1024
PIPER = "piper:en_US-joe-medium"
CACHED_TEXT = "Please hold while I check that for you."
BURST_TIMEOUT = 600.0  # seconds any one burst may take in all
Result = dict[str, Any]
Scenario = Callable[["Server", argparse.Namespace], Result]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(function: Scenario) -> Scenario:
        SCENARIOS[name] = function
        return function

    return register


# -- the server ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`audiocache serve` on a fresh data dir, with an agent 'load' and one cached entry."""

    def __init__(self, data: Path, env: dict[str, str]) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env}
        cli = [sys.executable, "-m", "audiocache"]
        admin = self._key(cli, "audio_cache:read", "audio_cache:write", "agents:write")
        self.admin = {"X-API-KEY": admin}
        self.reader = {"X-API-KEY": self._key(cli, "audio_cache:read")}
        self.log = open(data / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [*cli, "serve", "--port", str(self.port), "--data-dir", str(data)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        self.ps = psutil.Process(self.process.pid)
        self._wait_ready()
        self.entry_id = self._seed()

    def _key(self, cli: list[str], *grants: str) -> str:
        made = subprocess.run(
            [*cli, "keys", "create", "--account", "load", "--data-dir", str(self.data)]
            + [arg for grant in grants for arg in ("--grant", grant)],
            capture_output=True,
            text=True,
            check=True,
            env=self.env,
        )
        return made.stdout.strip().splitlines()[-1]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start")

    def _seed(self) -> str:
        with httpx.Client(base_url=self.url, headers=self.admin, timeout=120) as client:
            agent = {
                "name": "Load",
                "agentId": "load",
                "responseSettings": {"greeting": "Hello", "languageCode": "en-US"},
                "voiceSettings": {"voiceId": "en-us"},
            }
            client.post("/v1/accounts/load/agents", json=agent).raise_for_status()
            client.put("/v1/agents/load/cache-policy", json={"admission": "always"})
            r = client.post("/v1/agents/load/tts", json={"text": CACHED_TEXT})
            r.raise_for_status()
            # Piper's model loads on first use: load it now, so a burst measures the burst.
            client.post("/v1/agents/load/tts", json={"text": "Hello.", "voice": PIPER})
            return r.headers["x-audio-cache-entry-id"]

    @property
    def download_url(self) -> str:
        return f"{self.url}/v1/agents/load/audio-cache/{self.entry_id}/file"

    def rss(self) -> int:
        try:
            return sum(p.memory_info().rss for p in [self.ps, *self.ps.children(recursive=True)])
        except psutil.Error:
            return 0

    def alive(self) -> bool:
        if self.process.poll() is not None:
            return False
        try:
            return httpx.get(f"{self.url}/healthz", timeout=10).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()


# -- measuring -------------------------------------------------------------------------


class PeakRss:
    """Samples the server's RSS every 50 ms while in the block."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss())
            self._stop.wait(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _probe(url: str, headers: dict[str, str], stop: Any, out: Any) -> None:
    """In its own process: GET url every 5 ms until stop is set; send back (start time,
    seconds or None for a failure) per request (monotonic clocks agree across processes)."""
    samples: list[tuple[float, float | None]] = []
    with httpx.Client(headers=headers, timeout=30) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                ok = client.get(url).status_code == 200
            except httpx.HTTPError:
                ok = False
            samples.append((started, time.monotonic() - started if ok else None))
            time.sleep(0.005)
    out.put(samples)


class Downloads:
    """Cached downloads timed from another process while in the block."""

    def __init__(self, server: Server) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._out = context.Queue()
        self._process = context.Process(
            target=_probe, args=(server.download_url, server.reader, self._stop, self._out)
        )
        self.samples: list[tuple[float, float | None]] = []
        self.window = (0.0, 0.0)

    def __enter__(self) -> Downloads:
        self._process.start()
        time.sleep(1.5)  # the probe's interpreter is up and its connection open
        self.window = (time.monotonic(), 0.0)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.window = (self.window[0], time.monotonic())
        self._stop.set()
        self.samples = self._out.get(timeout=60)
        self._process.join(timeout=10)

    def summary(self) -> Result:
        """Only downloads that started while the block ran (none from before the burst)."""
        began, ended = self.window
        during = [took for at, took in self.samples if began <= at <= ended]
        failures = sum(took is None for took in during)
        ordered = sorted(took for took in during if took is not None)
        if not ordered:
            return {"count": 0, "failures": failures}

        def at(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

        return {
            "count": len(ordered),
            "failures": failures,
            "p50_ms": at(0.5),
            "p99_ms": at(0.99),
            "max_ms": round(ordered[-1] * 1000, 2),
            # when the slow ones started, in seconds from the start of the burst
            "over_20ms_at_s": [
                [round(at - began, 2), round(took * 1000)]
                for at, took in self.samples
                if began <= at <= ended and took is not None and took > 0.02
            ],
        }


async def _burst(server: Server, bodies: list[dict[str, Any]]) -> Result:
    """All bodies POSTed to the runtime path at once; answers counted by status and code."""
    limits = httpx.Limits(max_connections=len(bodies) + 5, max_keepalive_connections=0)
    answers: collections.Counter[str] = collections.Counter()
    seconds: list[float] = []
    async with httpx.AsyncClient(
        base_url=server.url, headers=server.reader, timeout=BURST_TIMEOUT, limits=limits
    ) as client:

        async def one(body: dict[str, Any]) -> None:
            started = time.perf_counter()
            try:
                r = await client.post("/v1/agents/load/tts", json=body)
            except httpx.HTTPError as exc:
                answers[f"failed: {type(exc).__name__}"] += 1
                return
            code = "" if r.status_code == 200 else f" {r.json().get('error_code')}"
            answers[f"{r.status_code}{code}"] += 1
            if r.status_code == 200:
                seconds.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(one(b) for b in bodies)), BURST_TIMEOUT)
    return {
        "answers": dict(sorted(answers.items())),
        "wall_s": round(time.perf_counter() - started, 1),
        "slowest_200_s": round(max(seconds), 1) if seconds else None,
    }


def long_text(n: int, length: int = 800) -> str:
    """``length`` characters of words, no punctuation, different for every n."""
    words = ["request", str(n)]
    filler = [
        "please",
        "hold",
        "the",
        "line",
        "while",
        "we",
        "find",
        "the",
        "next",
        "free",
        "agent",
        "for",
        "you",
    ]
    while len(" ".join(words)) < length:
        words.append(filler[len(words) % len(filler)])
    return " ".join(words)[:length].strip()


# -- scenarios -------------------------------------------------------------------------


def piper_misses(server: Server, count: int) -> Result:
    bodies = [{"text": long_text(n), "voice": PIPER} for n in range(count)]
    before = server.rss()
    with PeakRss(server) as peak, Downloads(server) as downloads:
        burst = asyncio.run(_burst(server, bodies))
    time.sleep(2)
    return {
        "misses": count,
        **burst,
        "rss_before_mb": before // MB,
        "rss_peak_mb": peak.peak // MB,
        "rss_after_mb": server.rss() // MB,
        "alive": server.alive(),
        "downloads_meanwhile": downloads.summary(),
    }


@scenario("piper8")
def piper8(server: Server, _args: argparse.Namespace) -> Result:
    return piper_misses(server, 8)


@scenario("piper44")
def piper44(server: Server, _args: argparse.Namespace) -> Result:
    return piper_misses(server, 44)


@scenario("espeak200")
def espeak200(server: Server, _args: argparse.Namespace) -> Result:
    bodies = [
        {"text": f"Order {n} is ready for pick up at the front desk, thank you for waiting."}
        for n in range(200)
    ]
    with PeakRss(server) as peak, Downloads(server) as downloads:
        burst = asyncio.run(_burst(server, bodies))
    return {
        "misses": len(bodies),
        **burst,
        "rss_peak_mb": peak.peak // MB,
        "alive": server.alive(),
        "downloads_meanwhile": downloads.summary(),
    }


@scenario("hits200")
def hits200(server: Server, _args: argparse.Namespace) -> Result:
    """The control: 200 concurrent runtime-path *hits*. What a burst of 200 requests costs
    downloads whatever they ask for; espeak200 is judged against it."""
    bodies = [{"text": CACHED_TEXT} for _ in range(200)]
    with Downloads(server) as downloads:
        burst = asyncio.run(_burst(server, bodies))
    return {"requests": len(bodies), **burst, "downloads_meanwhile": downloads.summary()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated, of: {', '.join(SCENARIOS)}")
    parser.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE for the server (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    env = dict(item.split("=", 1) for item in args.env)
    results: Result = {"cpus": os.cpu_count(), "env": env}
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"load-{name}-") as tmp:
            server = Server(Path(tmp), env)
            try:
                results[name] = SCENARIOS[name](server, args)
            finally:
                server.stop()
        if not args.json:
            print(f"{name}: {json.dumps(results[name], indent=2)}", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
