"""Request edges under abuse, against a live server on 127.0.0.1 with the default settings.

1. Stalled uploads: N connections (default 200) each send 5.9 MB of a declared 6 MB
   ``PATCH …/file`` (raw WAV), then stop sending. Prints the server's RSS before, at its
   peak, and after the connections are closed, and how each upload ended (408 after the body
   idle timeout, 503 UPLOADS_BUSY past the upload cap, or the connection reset).
2. Complete uploads: 40 valid 6 MB WAVs, 8 at once (the default upload cap): the peak
   while they are parsed and stored, which the cap bounds, and what is left after.
3. Slowloris: M connections (default 1,000) each send a request line and then one header
   line a second. Prints how many the server still holds open after 20 s, when it closed the
   others, and the latency of a normal request meanwhile.

    .venv/bin/python bench/uploads.py [--uploads 200] [--slowloris 1000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

DECLARED = 6_000_000
SENT = 5_900_000
CHUNK = 64 * 1024
HOLD_SECONDS = 40.0  # how long a stalled client waits for the server before it hangs up
SLOWLORIS_SECONDS = 20.0
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``audiocache serve`` in a fresh data folder, with a key, an agent and one entry."""

    def __init__(self, data: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cli = [sys.executable, "-m", "audiocache"]
        grants = [
            g
            for p in ("audio_cache:read", "audio_cache:write", "agents:read", "agents:write")
            for g in ("--grant", p)
        ]
        made = subprocess.run(
            [*cli, "keys", "create", "--account", "bench", *grants, "--data-dir", str(data)],
            capture_output=True,
            text=True,
            check=True,
        )
        self.key = made.stdout.strip().splitlines()[-1]
        self.log = open(data / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [*cli, "serve", "--port", str(self.port), "--data-dir", str(data)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.ps = psutil.Process(self.process.pid)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError((data / "server.log").read_text()[-2000:])
            time.sleep(0.1)
        self.entry_path = self._seed()

    def _seed(self) -> str:
        headers = {"X-API-KEY": self.key}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as c:
            agent = {
                "name": "Bench",
                "agentId": "bench",
                "responseSettings": {"greeting": "hi"},
                "voiceSettings": {"voiceId": "en-us"},
            }
            c.post("/v1/accounts/bench/agents", json=agent).raise_for_status()
            c.put("/v1/agents/bench/cache-policy", json={"admission": "always"}).raise_for_status()
            r = c.post("/v1/agents/bench/tts", json={"text": "hello"})
            r.raise_for_status()
            path = f"/v1/agents/bench/audio-cache/{r.headers['x-audio-cache-entry-id']}/file"
            for _ in range(20):  # warm up: a baseline of a server that has served
                c.get(path).raise_for_status()
            return path

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


class RssSampler:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak = server.rss()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.server.rss())
            self._done.wait(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()


def wav_head(data_size: int) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_size)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_size)
    )


class RawClient(asyncio.Protocol):
    """A client that keeps what the server sends even when the server then resets."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.answered = asyncio.Event()
        self.lost = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()

    def data_received(self, data: bytes) -> None:
        self.received += data
        self.answered.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()
        self.answered.set()
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    async def writable(self) -> None:
        await self._can_write.wait()


async def stalled_upload(server: Server) -> tuple[str, float]:
    """Send 5.9 MB of a declared 6 MB, stop, and wait for the server: (outcome, seconds)."""
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_connection(RawClient, "127.0.0.1", server.port)
    head = (
        f"PATCH {server.entry_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: {server.key}\r\n"
        f"Content-Type: audio/wav\r\nContent-Length: {DECLARED}\r\n\r\n"
    ).encode()
    body = wav_head(DECLARED - 44) + bytes(CHUNK - 44)
    filler = bytes(CHUNK)
    transport.write(head)
    sent = 0
    while sent < SENT and not client.answered.is_set():
        piece = (body if sent == 0 else filler)[: SENT - sent]
        transport.write(piece)
        sent += len(piece)
        await client.writable()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(client.answered.wait(), HOLD_SECONDS)
    with contextlib.suppress(TimeoutError):  # the rest of the answer, up to the server's close
        await asyncio.wait_for(client.lost.wait(), 3.0)
    transport.close()
    seconds = time.monotonic() - started
    answer = bytes(client.received)
    if not answer:
        return ("reset, no answer" if client.lost.is_set() else "no answer"), seconds
    status = answer.split(b" ", 2)[1].decode()
    codes = [c for c in (b"UPLOADS_BUSY", b"REQUEST_TIMEOUT") if c in answer]
    return f"{status} {codes[0].decode() if codes else ''}".strip(), seconds


async def stalled_uploads(server: Server, count: int) -> dict[str, Any]:
    before = server.rss()
    with RssSampler(server) as sampler:
        results = await asyncio.gather(*(stalled_upload(server) for _ in range(count)))
        closed = time.monotonic()
        await asyncio.sleep(2.0)
    after = server.rss()
    outcomes: dict[str, list[float]] = {}
    for outcome, seconds in results:
        outcomes.setdefault(outcome, []).append(seconds)
    return {
        "connections": count,
        "rss_before_mb": round(before / MIB, 1),
        "rss_peak_mb": round(sampler.peak / MIB, 1),
        "rss_after_mb": round(after / MIB, 1),
        "growth_peak_mb": round((sampler.peak - before) / MIB, 1),
        "growth_after_mb": round((after - before) / MIB, 1),
        "after_measured_s_after_close": round(time.monotonic() - closed, 1),
        "outcomes": {
            k: {"count": len(v), "median_s": round(statistics.median(v), 2)}
            for k, v in sorted(outcomes.items())
        },
    }


async def complete_uploads(server: Server, parallel: int, rounds: int) -> dict[str, Any]:
    """``parallel`` valid 6 MB uploads at once, ``rounds`` times: the in-memory peak."""
    wav = wav_head(DECLARED - 44) + bytes(DECLARED - 44)
    headers = {"X-API-KEY": server.key, "Content-Type": "audio/wav"}
    before = server.rss()
    statuses: list[int] = []
    started = time.monotonic()
    with RssSampler(server) as sampler:
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as c:
            for _ in range(rounds):
                answers = await asyncio.gather(
                    *(c.patch(server.entry_path, content=wav) for _ in range(parallel))
                )
                statuses += [r.status_code for r in answers]
        seconds = time.monotonic() - started
        await asyncio.sleep(2.0)
    after = server.rss()
    return {
        "uploads": parallel * rounds,
        "parallel": parallel,
        "statuses": {str(k): statuses.count(k) for k in sorted(set(statuses))},
        "seconds": round(seconds, 2),
        "rss_before_mb": round(before / MIB, 1),
        "rss_peak_mb": round(sampler.peak / MIB, 1),
        "rss_after_mb": round(after / MIB, 1),
        "growth_peak_mb": round((sampler.peak - before) / MIB, 1),
        "growth_after_mb": round((after - before) / MIB, 1),
    }


async def slowloris_one(server: Server, results: list[float | None]) -> None:
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    except OSError:
        results.append(-1.0)
        return
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    read = asyncio.ensure_future(reader.read(4096))
    closed_at: float | None = None
    line = 0
    while time.monotonic() - started < SLOWLORIS_SECONDS:
        done, _ = await asyncio.wait([read], timeout=1.0)
        if done:  # the server answered (408) or closed: either way it ends the connection
            closed_at = time.monotonic() - started
            break
        line += 1
        try:
            writer.write(f"X-Line-{line}: a\r\n".encode())
            await writer.drain()
        except ConnectionError:
            closed_at = time.monotonic() - started
            break
    read.cancel()
    writer.close()
    results.append(closed_at)


async def slowloris(server: Server, count: int) -> dict[str, Any]:
    results: list[float | None] = []
    latencies: list[float] = []
    before = server.rss()
    with RssSampler(server) as sampler:
        attack = asyncio.gather(*(slowloris_one(server, results) for _ in range(count)))
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            while not attack.done():
                started = time.monotonic()
                r = await client.get("/healthz")
                latencies.append(time.monotonic() - started)
                assert r.status_code == 200, r.text
                await asyncio.sleep(0.5)
        await attack
    closed = sorted(t for t in results if t is not None and t >= 0)
    return {
        "connections": count,
        "still_open_after_20s": sum(1 for t in results if t is None),
        "failed_to_connect": sum(1 for t in results if t == -1.0),
        "closed_by_server_median_s": round(statistics.median(closed), 2) if closed else None,
        "closed_by_server_max_s": round(max(closed), 2) if closed else None,
        "rss_before_mb": round(before / MIB, 1),
        "rss_peak_mb": round(sampler.peak / MIB, 1),
        "normal_request_max_ms": round(max(latencies) * 1000, 1),
        "normal_request_median_ms": round(statistics.median(latencies) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--slowloris", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # A client writing to connections the server has reset would log each write.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 4 * (args.uploads + args.slowloris) + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # the server inherits it

    data = Path(tempfile.mkdtemp(prefix="audiocache-bench-uploads-"))
    server = Server(data)
    try:
        report = {
            "stalled_uploads": asyncio.run(stalled_uploads(server, args.uploads)),
            "complete_uploads": asyncio.run(complete_uploads(server, 8, 5)),
            "slowloris": asyncio.run(slowloris(server, args.slowloris)),
        }
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    up, sl = report["stalled_uploads"], report["slowloris"]
    print(f"stalled uploads: {up['connections']} x 5.9 MB of a declared 6 MB, then silence")
    print(
        f"  server RSS  before {up['rss_before_mb']} MB, peak {up['rss_peak_mb']} MB "
        f"(+{up['growth_peak_mb']}), after close {up['rss_after_mb']} MB "
        f"(+{up['growth_after_mb']})"
    )
    for outcome, figures in up["outcomes"].items():
        print(f"  {figures['count']:>5} x {outcome} (median {figures['median_s']} s)")
    done = report["complete_uploads"]
    print(
        f"complete uploads: {done['uploads']} valid 6 MB WAVs, {done['parallel']} at once "
        f"(the default cap), in {done['seconds']} s: {done['statuses']}"
    )
    print(
        f"  server RSS  before {done['rss_before_mb']} MB, peak {done['rss_peak_mb']} MB "
        f"(+{done['growth_peak_mb']}), 2 s after {done['rss_after_mb']} MB "
        f"(+{done['growth_after_mb']})"
    )
    print(f"slowloris: {sl['connections']} connections, a header line a second")
    print(
        f"  still open after 20 s: {sl['still_open_after_20s']}; closed by the server after "
        f"{sl['closed_by_server_median_s']} s (median), {sl['closed_by_server_max_s']} s (max)"
    )
    print(
        f"  normal GET /healthz meanwhile: median {sl['normal_request_median_ms']} ms, "
        f"max {sl['normal_request_max_ms']} ms; server RSS {sl['rss_before_mb']} -> "
        f"peak {sl['rss_peak_mb']} MB"
    )


if __name__ == "__main__":
    main()
