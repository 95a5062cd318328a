"""What ``hit_path.py`` prints: the machine, the embedded lookup, ratios against the aims."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench_tools import BenchError, WrkResult

# espeak-ng en-us renders this in ~2.3 s: 22,050 Hz x 16-bit mono ~ 103 KB of WAV.
AIM_RATIO = 0.5
AIM_P99_MS = 5.0
AIM_EMBEDDED_MEDIAN_MS = 0.13


if TYPE_CHECKING:
    from hit_path import Setup


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def version(command: list[str]) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
        except OSError:
            return "?"
        lines = (done.stdout + done.stderr).strip().splitlines()
        return lines[0] if lines else "?"

    return {
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor() or "?",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": version(["wrk", "-v"]).split(" [")[0],
        "nginx": version(["nginx", "-v"]).removeprefix("nginx version: "),
        "cpu_busy_before_pct": cpu_busy_percent(),
    }


def cpu_busy_percent(seconds: float = 1.0) -> float:
    """How busy all CPUs were over a short sample (Linux /proc/stat): others' load skews us."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values[:8]), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return -1.0
    return round(100 * (1 - (idle1 - idle0) / max(1, total1 - total0)), 1)


def embedded_lookup(
    data_dir: Path, account: str, agent: str, text: str, calls: int
) -> dict[str, float]:
    """``EmbeddedCache.lookup`` of the bench phrase in this process, ``calls`` times."""
    import asyncio

    from audiocache.config import Settings
    from audiocache.embedded import EmbeddedCache

    async def run() -> list[float]:
        settings = Settings(data_dir=data_dir, piper_enabled=False, log_level="warning")
        async with EmbeddedCache(settings) as cache:
            if await cache.lookup(account, agent, text) is None:
                raise BenchError("the embedded lookup does not find the bench phrase")
            took = []
            for _ in range(calls):
                started = time.perf_counter()
                await cache.lookup(account, agent, text)
                took.append((time.perf_counter() - started) * 1000)
            return took

    took = sorted(asyncio.run(run()))
    return {
        "calls": calls,
        "median_ms": round(took[len(took) // 2], 4),
        "p99_ms": round(took[int(len(took) * 0.99)], 4),
    }


RATIO_TARGETS = ("download", "tts_hit", "download_offload", "tts_hit_offload")


def report(
    args: argparse.Namespace,
    s: Setup,
    rounds: list[dict[str, WrkResult]],
    info: dict[str, Any],
    embedded: dict[str, float],
) -> dict[str, Any]:
    per_round = {
        name: [round(r[name].requests_per_sec / r["nginx"].requests_per_sec, 4) for r in rounds]
        for name in RATIO_TARGETS
    }
    ratios = {name: round(statistics.median(values), 4) for name, values in per_round.items()}
    results = {name: _median_result([r[name] for r in rounds]) for name in rounds[0]}
    p99 = {name: results[name]["p99_ms"] for name in ("tts_hit", "tts_hit_offload")}
    return {
        "machine": info,
        "workers": {"audiocache": args.workers, "nginx": args.workers},
        "wrk": {
            "threads": args.threads,
            "connections": args.connections,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
        },
        "entry": {"id": s.entry_id, "bytes": s.entry_bytes, "text": args.text},
        "results": results,
        "rounds": [{name: asdict(x) for name, x in r.items()} for r in rounds],
        "ratio_download_to_nginx": ratios["download"],
        "ratios_to_nginx": ratios,
        "ratios_per_round": per_round,
        "embedded_lookup": embedded,
        "aims": {
            "ratio_min": AIM_RATIO,
            "ratio_met": {name: r >= AIM_RATIO for name, r in ratios.items()},
            "tts_hit_p99_max_ms": AIM_P99_MS,
            "tts_hit_p99_met": {name: v <= AIM_P99_MS for name, v in p99.items()},
            "embedded_median_max_ms": AIM_EMBEDDED_MEDIAN_MS,
            "embedded_median_met": embedded["median_ms"] <= AIM_EMBEDDED_MEDIAN_MS,
        },
    }


_MEDIANS = ("requests_per_sec", "p50_ms", "p75_ms", "p90_ms", "p99_ms")


def _median_result(runs: list[WrkResult]) -> dict[str, Any]:
    """One target's figures: each the median over the rounds."""
    cpus = [r.server_cpu_us_per_request for r in runs if r.server_cpu_us_per_request is not None]
    return {
        **{field: statistics.median(getattr(r, field) for r in runs) for field in _MEDIANS},
        "requests": sum(r.requests for r in runs),
        "server_cpu_us_per_request": statistics.median(cpus) if cpus else None,
        "command": runs[0].command,
    }


def print_table(data: dict[str, Any]) -> None:
    m, w, r = data["machine"], data["wrk"], data["results"]
    entry = data["entry"]
    lines = [
        "",
        f"machine: {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}, Python {m['python']}, "
        f"{m['wrk']}, {m['nginx']}",
        f"workers: audiocache {data['workers']['audiocache']} (uvicorn), "
        f"nginx worker_processes {data['workers']['nginx']}",
        f"quiet:   CPUs {m['cpu_busy_before_pct']:.0f}% busy in the second before the run",
        f"load:    wrk -t{w['threads']} -c{w['connections']} -d{w['duration_s']:g}s --latency "
        f"on loopback, {w['warmup_s']:g} s warm-up before each run; {w['rounds']} round(s) "
        "of all targets, medians shown",
        f"entry:   {entry['bytes']:,} bytes of WAV (espeak-ng, {entry['text']!r}), "
        f"id {entry['id']}",
        "",
        f"{'target':<50} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'server CPU/req':>15}",
        "-" * 102,
    ]
    labels = {
        "nginx": "nginx GET /file.wav (same bytes)",
        "bare": "bare ASGI app under uvicorn (same bytes)",
        "download": "audiocache GET …/audio-cache/{id}/file",
        "tts_hit": "audiocache POST /v1/agents/{id}/tts (hit)",
        "download_offload": "offload: nginx ← audiocache GET …/file",
        "tts_hit_offload": "offload: nginx ← audiocache POST …/tts (hit)",
    }
    for name, label in labels.items():
        x = r[name]
        cpu = x["server_cpu_us_per_request"]
        lines.append(
            f"{label:<50} {x['requests_per_sec']:>9,.0f} {x['p50_ms']:>8.2f} "
            f"{x['p90_ms']:>8.2f} {x['p99_ms']:>8.2f} "
            + (f"{cpu:>12,.0f} µs" if cpu is not None else f"{'?':>15}")
        )
    aims = data["aims"]
    lines.append("")
    for name, ratio in data["ratios_to_nginx"].items():
        met = "met" if aims["ratio_met"][name] else "NOT met"
        each = ", ".join(f"{x:.3f}" for x in data["ratios_per_round"][name])
        lines.append(
            f"ratio {name + ' / nginx:':<27} {ratio:.3f}  (aim >= {AIM_RATIO}: {met}; "
            f"rounds {each})"
        )
    for name, met_p99 in aims["tts_hit_p99_met"].items():
        lines.append(
            f"{name} p50 / p99:{'':<{17 - len(name)}} {r[name]['p50_ms']:.2f} ms / "
            f"{r[name]['p99_ms']:.2f} ms  (aim p99 <= {AIM_P99_MS:g} ms: "
            f"{'met' if met_p99 else 'NOT met'})"
        )
    e = data["embedded_lookup"]
    lines.append(
        f"embedded lookup, {e['calls']:,} calls: median {e['median_ms']:.4f} ms, p99 "
        f"{e['p99_ms']:.4f} ms  (aim median <= {AIM_EMBEDDED_MEDIAN_MS} ms: "
        f"{'met' if aims['embedded_median_met'] else 'NOT met'})"
    )
    if data.get("profiles"):
        lines.append(f"profiles: {', '.join(data['profiles'])}")
    print("\n".join(lines))


# -- main ---------------------------------------------------------------------------------
