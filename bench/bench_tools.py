"""Process, HTTP and wrk helpers of the benchmarks (``hit_path.py``): spawn and stop
process groups, wait for a server, run and parse wrk, count a group's CPU."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class BenchError(RuntimeError):
    """A set-up step or a measurement went wrong; the message says which."""


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- wrk ----------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass
class WrkResult:
    target: str
    url: str
    requests_per_sec: float
    requests: int
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    socket_errors: dict[str, int]
    non_2xx: int
    command: str
    server_cpu_us_per_request: float | None = None


def to_ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(output: str, target: str, url: str, command: str) -> WrkResult:
    """Requests/sec and the Latency Distribution of ``wrk --latency`` output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    total = re.search(r"^\s*(\d+) requests in ", output, re.M)
    percentiles = {
        int(p): to_ms(v, u)
        for p, v, u in re.findall(
            r"^\s+(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M
        )
    }
    if rps is None or total is None or set(percentiles) != {50, 75, 90, 99}:
        raise BenchError(f"could not parse wrk output for {target}:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, errors.groups()), strict=True))
        if errors
        else {}
    )
    return WrkResult(
        target=target,
        url=url,
        requests_per_sec=float(rps.group(1)),
        requests=int(total.group(1)),
        p50_ms=percentiles[50],
        p75_ms=percentiles[75],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
        socket_errors=socket_errors,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        command=command,
    )


def lua_string(text: str) -> str:
    """A Lua long-bracket literal that holds ``text`` verbatim."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


# -- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_group(process: subprocess.Popen[bytes], name: str, sig: int = signal.SIGTERM) -> None:
    """Stop a child started in its own session (pgid = its pid), then its group if need be."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop in 15 s; killing it")
    # Whatever of the group is left (uvicorn workers, nginx workers) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


@contextlib.contextmanager
def spawned(
    args: list[str], name: str, log_path: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with open(log_path, "ab") as out:
        process = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield process
    finally:
        stop_group(process, name)


def http(
    method: str, url: str, *, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, dict[str, str], bytes]:
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                (response.read()),
            )
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def wait_http(url: str, process: subprocess.Popen[bytes], log_path: Path, name: str) -> None:
    deadline = time.monotonic() + 30
    ok = 0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{name} exited ({process.returncode}):\n{tail(log_path)}")
        try:
            status, _, _ = http("GET", url)
            ok = ok + 1 if status == 200 else 0
        except OSError:
            ok = 0
        if ok >= 3:
            return
        time.sleep(0.1)
    raise BenchError(f"{name} did not answer {url} in 30 s:\n{tail(log_path)}")


def tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"


def group_cpu_seconds(pgid: int | tuple[int, ...]) -> float:
    """User + system CPU of every live process in a process group (Linux /proc)."""
    pgids = pgid if isinstance(pgid, tuple) else (pgid,)
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) in pgids:  # fields[0] is the state; pgrp is the 5th stat field
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


# -- the benchmark ------------------------------------------------------------------------
