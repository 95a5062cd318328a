"""Engines, formats and streaming, measured side by side in one run on a live server.

Prints (and with --json emits):
- miss vs hit latency of the runtime path per engine (espeak-ng, Piper), p50 and p95;
- the cost of each output format: first request (converts) vs later ones (cached variant),
  and the bare conversion in process;
- time to first byte of a runtime-path hit on a ~5 MB entry vs reading the whole response
  and vs reading the whole blob from disk.

    .venv/bin/python bench/engines.py [--rounds 15] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from audiocache.audio.formats import FORMATS
from audiocache.audio.transcode import transcode
from audiocache.audio.wav import build_wav

TEXT = "Thanks for calling. Your call is important to us; please hold."
ENGINES = {"espeak": "espeak:en-us", "piper": "piper:en_US-joe-medium"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 0.5) * 1000, 2),
        "p95_ms": round(percentile(values, 0.95) * 1000, 2),
    }


class Server:
    def __init__(self, data: Path) -> None:
        self.data = data
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
        self.headers = {"X-API-KEY": made.stdout.strip().splitlines()[-1]}
        self.log = open(data / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [*cli, "serve", "--port", str(self.port), "--data-dir", str(data)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        self.log.close()


def timed(client: httpx.Client, method: str, url: str, **kw: Any) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.request(method, url, **kw)
    return time.perf_counter() - started, response


def engine_latency(client: httpx.Client, base: str, rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, voice in ENGINES.items():
        misses, hits = [], []
        for n in range(rounds):
            body = {"text": f"{TEXT} ({name} {n})", "voice": voice}
            took, r = timed(client, "POST", f"{base}/tts", json=body)
            if r.status_code != 200 or r.headers["x-audio-cache"] != "miss":
                raise RuntimeError(f"{name}: expected a miss, got {r.status_code} {r.text[:200]}")
            misses.append(took)
            for _ in range(3):
                took, r = timed(client, "POST", f"{base}/tts", json=body)
                assert r.headers["x-audio-cache"] == "hit"
                hits.append(took)
        out[name] = {
            "miss": summary(misses),
            "hit": summary(hits),
            "miss_over_hit": round(statistics.median(misses) / statistics.median(hits), 1),
        }
    return out


def format_costs(client: httpx.Client, base: str, rounds: int) -> dict[str, Any]:
    body = {"text": TEXT, "voice": ENGINES["espeak"]}
    r = client.post(f"{base}/tts", json=body)
    entry = r.headers["x-audio-cache-entry-id"]
    wav = client.get(f"{base}/audio-cache/{entry}/file").content
    out: dict[str, Any] = {}
    for name, fmt in sorted(FORMATS.items()):
        url = f"{base}/audio-cache/{entry}/file"
        first, _ = timed(client, "GET", url, params={"output_format": name})
        later = [
            timed(client, "GET", url, params={"output_format": name})[0] for _ in range(rounds)
        ]
        started = time.perf_counter()
        for _ in range(rounds):
            transcode(wav, fmt)
        bare = (time.perf_counter() - started) / rounds
        out[name] = {
            "first_ms": round(first * 1000, 2),
            "cached": summary(later),
            "convert_in_process_ms": round(bare * 1000, 3),
        }
    return out


def evict(path: Path) -> None:
    """Drop a file from the page cache, so the next read really goes to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def first_byte_ms(
    client: httpx.Client, base: str, body: dict[str, str], cold: Path | None
) -> tuple[float, float]:
    """(time to the first body bytes, time to the whole body) of one runtime-path hit."""
    if cold is not None:
        evict(cold)
    started = time.perf_counter()
    with client.stream("POST", f"{base}/tts", json=body) as response:
        assert response.headers["x-audio-cache"] == "hit"
        chunks = response.iter_raw()
        next(chunks)
        first = time.perf_counter() - started
        for _chunk in chunks:
            pass
    return first, time.perf_counter() - started


def first_byte(client: httpx.Client, base: str, data: Path, rounds: int) -> dict[str, Any]:
    small = {"text": "A short prompt", "voice": ENGINES["espeak"]}
    client.post(f"{base}/tts", json=small)
    body = {"text": "A five megabyte announcement", "voice": ENGINES["espeak"]}
    entry = client.post(f"{base}/tts", json=body).headers["x-audio-cache-entry-id"]
    seconds = 5 * 1024 * 1024 // (22050 * 2)
    big = build_wav(os.urandom(seconds * 22050 * 2), sample_rate=22050)
    r = client.patch(f"{base}/audio-cache/{entry}/file", content=big)
    assert r.status_code == 204, r.text
    blob = next(
        p for p in (data / "blobs").rglob("*") if p.is_file() and p.stat().st_size == len(big)
    )
    runs: dict[str, list[float]] = {
        k: []
        for k in ("small", "warm", "warm_whole", "cold", "cold_whole", "read_cold", "read_warm")
    }
    for _ in range(rounds):
        runs["small"].append(first_byte_ms(client, base, small, None)[0])
        first, whole = first_byte_ms(client, base, body, None)
        runs["warm"].append(first)
        runs["warm_whole"].append(whole)
        first, whole = first_byte_ms(client, base, body, blob)
        runs["cold"].append(first)
        runs["cold_whole"].append(whole)
        for key, cold in (("read_cold", True), ("read_warm", False)):
            if cold:
                evict(blob)
            started = time.perf_counter()
            blob.read_bytes()
            runs[key].append(time.perf_counter() - started)
    return {"entry_bytes": len(big), **{k: summary(v) for k, v in runs.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is missing (make bench installs it)", file=sys.stderr)
        return 2
    data = Path(tempfile.mkdtemp(prefix="audiocache-bench-"))
    server = Server(data)
    try:
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=120) as client:
            agent = {"name": "Bench", "agentId": "bench", "responseSettings": {"greeting": "hi"}}
            client.post("/v1/accounts/bench/agents", json=agent).raise_for_status()
            client.put("/v1/agents/bench/cache-policy", json={"admission": "always"})
            base = "/v1/agents/bench"
            client.post(f"{base}/tts", json={"text": "warm up", "voice": ENGINES["piper"]})
            results = {
                "engines": engine_latency(client, base, args.rounds),
                "formats": format_costs(client, base, args.rounds),
                "first_byte_5mb": first_byte(client, base, data, args.rounds),
                "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()[0]},
            }
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print("runtime path, miss vs hit (ms)")
    for name, row in results["engines"].items():
        print(
            f"  {name:7} miss p50 {row['miss']['p50_ms']:8.2f} p95 {row['miss']['p95_ms']:8.2f}"
            f" | hit p50 {row['hit']['p50_ms']:6.2f} p95 {row['hit']['p95_ms']:6.2f}"
            f" | miss/hit {row['miss_over_hit']}x"
        )
    print("output formats (ms): first request (converts) | cached p50 | bare conversion")
    for name, row in results["formats"].items():
        print(
            f"  {name:14} {row['first_ms']:8.2f} | {row['cached']['p50_ms']:6.2f}"
            f" | {row['convert_in_process_ms']:7.3f}"
        )
    fb = results["first_byte_5mb"]
    print(f"runtime-path hit on a {fb['entry_bytes']}-byte entry (p50 ms):")
    print(
        f"  first byte: small entry {fb['small']['p50_ms']}, 5 MB warm {fb['warm']['p50_ms']},"
        f" 5 MB cold {fb['cold']['p50_ms']}"
    )
    warm, cold = fb["warm_whole"]["p50_ms"], fb["cold_whole"]["p50_ms"]
    print(f"  whole 5 MB response: warm {warm}, cold {cold}")
    print(
        f"  reading the whole blob in process: warm {fb['read_warm']['p50_ms']},"
        f" cold {fb['read_cold']['p50_ms']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
