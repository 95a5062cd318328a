"""Export and import of a large agent: wall time and peak memory of the CLI processes.

Seeds a data folder with N entries of distinct ~SIZE-byte WAVs through the blob writer,
then runs ``audiocache export``, ``audiocache import`` into a fresh folder, and the same
import again (all unchanged), each under ``/usr/bin/time -v``; a bare ``audiocache
settings`` gives the process's baseline memory.

    .venv/bin/python bench/transfer.py [--entries 400] [--size 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from audiocache.audio.wav import build_wav, parse_wav
from audiocache.cache.keys import cache_key
from audiocache.config import Settings
from audiocache.services import build_services


async def seed(data: Path, entries: int, size: int) -> None:
    services = build_services(Settings(data_dir=data), engines=[])
    await services.db.migrate()
    agent = await services.agents.create(
        "acme", agent_id="big", name="Big", greeting="Hi", language_code="en-US", voice_id="en-us"
    )
    for i in range(entries):
        wav = build_wav(os.urandom(size // 2 * 2), sample_rate=22050)
        text = f"Phrase number {i}"
        parts = {"provider": "espeak", "voice": "en-us", "model": "espeak-ng"}
        key = cache_key(agent_id=agent.id, language="en-US", text=text, config={}, **parts)
        values = {
            "agent_id": agent.id,
            "cache_key": key,
            "transcript": text,
            "provider": "espeak",
            "provider_voice_id": "en-us",
            "language_code": "en-US",
            "model": "espeak-ng",
            "config": {},
        }
        await services.cache.writer.insert(values, wav, parse_wav(wav))
    await services.stop()


def timed(*args: str) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in MiB, and the last stdout line of one CLI run."""
    run = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "audiocache", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = re.search(r"Elapsed \(wall clock\) time .*: (?:(\d+):)?(\d+):([\d.]+)", run.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)
    assert wall and rss, run.stderr
    seconds = int(wall[1] or 0) * 3600 + int(wall[2]) * 60 + float(wall[3])
    return seconds, int(rss[1]) // 1024, (run.stdout.strip().splitlines() or [""])[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=400)
    parser.add_argument("--size", type=int, default=1_000_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="audiocache-bench-") as folder:
        root = Path(folder)
        asyncio.run(seed(root / "a", options.entries, options.size))
        archive = str(root / "big.tar")
        runs = {
            "baseline (settings)": ("settings", "--data-dir", str(root / "a")),
            "export": ("export", "--agent", "big", archive, "--data-dir", str(root / "a")),
            "import (fresh)": (
                "import",
                "--agent",
                "big",
                "--account",
                "acme",
                archive,
                "--data-dir",
                str(root / "b"),
            ),
            "import (again)": (
                "import",
                "--agent",
                "big",
                "--account",
                "acme",
                archive,
                "--data-dir",
                str(root / "b"),
            ),
        }
        size = options.entries * options.size / 1e6
        print(f"{options.entries} entries, {size:.0f} MB of audio")
        for name, args in runs.items():
            seconds, rss, last = timed(*args)
            print(f"{name:>20}: {seconds:6.2f} s, peak RSS {rss:4d} MiB  {last[:90]}")


if __name__ == "__main__":
    main()
