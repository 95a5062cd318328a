"""The hit path under load: audiocache's file download against nginx, and the runtime-path hit.

Everything lives in a temp dir and is torn down at the end (also on Ctrl-C, SIGTERM or an
error): a fresh data dir, an API key (``audiocache keys create``), ``audiocache serve`` on a
free loopback port, one agent with admission ``always``, one ~100 KB entry synthesized by
espeak-ng through ``POST /v1/agents/{id}/tts``, and an nginx of our own (own config, own
prefix, never the system service) serving the very same bytes.

Then wrk (same threads, connections and duration for every target, a warm-up before each):

1. nginx ``GET /file.wav``                                     (the baseline)
2. a bare ASGI app under the same uvicorn, the same bytes from memory (the Python floor)
3. audiocache ``GET /v1/agents/{id}/audio-cache/{entry}/file``  (ratio = 3 / 1; aim >= 0.5)
4. audiocache ``POST /v1/agents/{id}/tts`` that is a cache hit  (ratio, p99; aim <= 5 ms)
5. and 6. the same two through nginx with deploy/nginx-offload.conf, in front of a second
   ``audiocache serve`` (same data) with AUDIOCACHE_OFFLOAD=x-accel-redirect: audiocache
   authorizes, nginx sends the file

and, in this process, the embedded lookup (``audiocache.embedded.EmbeddedCache``) of the
same phrase: median and p99 of ``--embedded-calls`` calls (aim: median <= 0.13 ms).

    python bench/hit_path.py [--workers N] [--duration 10] [--connections 32] [--rounds 3]
                             [--json]

Every target is measured once per round, all rounds in one run; a ratio is the median of
the rounds' ratios (each against nginx in the same round), and each figure in the table
the median over the rounds.

``--profile DIR`` adds, after the measured runs, one more load run per audiocache target
under ``py-spy record`` (raw collapsed stacks in DIR); py-spy must be on PATH or next to
the interpreter.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ACCOUNT = "bench"
AGENT = "bench-agent"
VOICE = "en-us"
# espeak-ng en-us renders this in ~2.3 s: 22,050 Hz x 16-bit mono ~ 103 KB of WAV.
SENTENCE = "Please hold while I check that for you."
GRANTS = ("audio_cache:read", "audio_cache:write", "agents:read", "agents:write")
ROOT = Path(__file__).resolve().parents[1]


from bench_tools import (  # noqa: E402 - after the sys.path set-up, if any
    BenchError,
    WrkResult,
    free_port,
    group_cpu_seconds,
    http,
    log,
    lua_string,
    parse_wrk,
    spawned,
    tail,
    wait_http,
)
from hit_path_report import (  # noqa: E402
    embedded_lookup,
    machine,
    print_table,
    report,
)

NGINX_CONF = """\
worker_processes {workers};
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 10000000;
    types {{ audio/wav wav; }}
    default_type application/octet-stream;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


@dataclass
class Setup:
    key: str
    server_url: str
    nginx_url: str
    entry_id: str
    entry_bytes: int
    download_path: str
    tts_path: str
    lua_script: Path
    server_pid: int
    nginx_pid: int
    bare_url: str = ""
    bare_pid: int = 0
    offload_url: str = ""
    offload_pids: tuple[int, ...] = ()


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path, stack: contextlib.ExitStack) -> None:
        self.args = args
        self.tmp = tmp
        self.stack = stack
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIOCACHE_")}
        self.env["AUDIOCACHE_LOG_LEVEL"] = "warning"
        self.data_dir = tmp / "data"

    def cli(self, *args: str) -> str:
        command = [sys.executable, "-m", "audiocache", *args, "--data-dir", str(self.data_dir)]
        done = subprocess.run(
            command, capture_output=True, text=True, env=self.env, timeout=120, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"{' '.join(command)} failed:\n{done.stderr}{done.stdout}")
        return done.stdout

    def start_server(
        self, name: str = "server", env: dict[str, str] | None = None
    ) -> tuple[str, int]:
        port = free_port()
        log_path = self.tmp / f"{name}.log"
        process = self.stack.enter_context(
            spawned(
                [
                    sys.executable,
                    "-m",
                    "audiocache",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--data-dir",
                    str(self.data_dir),
                    "--workers",
                    str(self.args.workers),
                ],
                "audiocache",
                log_path,
                env={**self.env, **(env or {})},
            )
        )
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", process, log_path, "audiocache serve")
        return url, process.pid

    def start_bare(self, audio: bytes) -> tuple[str, int]:
        """The bare ASGI app (bench/bare_asgi.py) under uvicorn as audiocache runs it."""
        body = self.tmp / "bare.wav"
        body.write_bytes(audio)
        port = free_port()
        log_path = self.tmp / "bare.log"
        process = self.stack.enter_context(
            spawned(
                [
                    sys.executable, "-m", "uvicorn", "bare_asgi:app", "--app-dir",
                    str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(port),
                    "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                    "--log-level", "warning", "--workers", str(self.args.workers),
                ],
                "bare asgi",
                log_path,
                env={**self.env, "BARE_ASGI_FILE": str(body)},
            )
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/", process, log_path, "bare asgi")
        return url, process.pid

    def start_offload(
        self, headers: dict[str, str], audio: bytes, path: str
    ) -> tuple[str, tuple[int, ...]]:
        """A second audiocache (same data) with offload on, behind nginx-offload.conf."""
        server_url, server_pid = self.start_server(
            "offload-server", {"AUDIOCACHE_OFFLOAD": "x-accel-redirect"}
        )
        prefix = self.tmp / "nginx-offload"
        prefix.mkdir()
        port = free_port()
        config = (ROOT / "deploy" / "nginx-offload.conf").read_text()
        for name, value in {
            "LISTEN": str(port),
            "PREFIX": str(prefix),
            "UPSTREAMS": f"server {server_url.removeprefix('http://')};",
            "BLOBS": str((self.data_dir / "blobs").resolve()),
        }.items():
            config = config.replace(f"__{name}__", value)
        config = config.replace("worker_processes 1;", f"worker_processes {self.args.workers};")
        config = re.sub(r"access_log [^;]+;", "access_log off;", config)
        conf = prefix / "nginx.conf"
        conf.write_text(config)
        log_path = prefix / "stderr.log"
        process = self.stack.enter_context(
            spawned(["nginx", "-p", str(prefix), "-c", str(conf)], "nginx offload", log_path)
        )
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", process, log_path, "nginx offload")
        status, got, served = http("GET", url + path, headers=headers)
        if status != 200 or served != audio:
            raise BenchError(
                f"offload: {status} {got}, {len(served)} bytes\n{tail(prefix / 'error.log')}"
            )
        return url, (server_pid, process.pid)

    def start_nginx(self, audio: bytes) -> tuple[str, int]:
        prefix = self.tmp / "nginx"
        root = prefix / "html"
        root.mkdir(parents=True)
        # Run as root, nginx's workers drop to `nobody`: let them reach the file, nothing else.
        self.tmp.chmod(0o711)
        prefix.chmod(0o711)
        root.chmod(0o755)
        target = root / "file.wav"
        target.write_bytes(audio)
        target.chmod(0o644)
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(workers=self.args.workers, prefix=prefix, port=port, root=root)
        )
        log_path = prefix / "stderr.log"
        process = self.stack.enter_context(
            spawned(
                ["nginx", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
                "nginx",
                log_path,
            )
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{url}/file.wav", process, log_path, "nginx")
        except BenchError as exc:
            raise BenchError(f"{exc}\n{tail(prefix / 'error.log')}") from None
        status, _, served = http("GET", f"{url}/file.wav")
        if status != 200 or served != audio:
            raise BenchError("nginx does not serve the entry's bytes unchanged")
        return url, process.pid

    def setup(self) -> Setup:
        log(f"temp dir {self.tmp}")
        created = self.cli(
            "keys", "create", "--account", ACCOUNT, "--label", "bench",
            *(arg for grant in GRANTS for arg in ("--grant", grant)),
        )  # fmt: skip
        key = created.strip().splitlines()[-1].strip()
        headers = {"X-API-KEY": key}
        server_url, server_pid = self.start_server()
        log(f"audiocache serve --workers {self.args.workers} on {server_url} (pid {server_pid})")

        status, _, body = http(
            "POST",
            f"{server_url}/v1/accounts/{ACCOUNT}/agents",
            headers=headers,
            body={
                "name": "Bench agent",
                "agentId": AGENT,
                "responseSettings": {"greeting": "Hello", "languageCode": "en-US"},
                "voiceSettings": {"voiceId": VOICE},
            },
        )
        if status != 200:
            raise BenchError(f"create agent: {status} {body[:500]!r}")
        status, _, body = http(
            "PUT",
            f"{server_url}/v1/agents/{AGENT}/cache-policy",
            headers=headers,
            body={"admission": "always"},
        )
        if status != 200:
            raise BenchError(f"set cache policy: {status} {body[:500]!r}")

        tts_path = f"/v1/agents/{AGENT}/tts"
        speak = {"text": self.args.text}
        status, got, audio = http("POST", server_url + tts_path, headers=headers, body=speak)
        entry_id = got.get("x-audio-cache-entry-id")
        if status != 200 or not entry_id:
            raise BenchError(
                f"first tts call did not store an entry: {status} {got} {audio[:300]!r}"
            )
        log(f"entry {entry_id}: {len(audio):,} bytes ({got.get('x-audio-cache')}) via espeak-ng")

        status, got, again = http("POST", server_url + tts_path, headers=headers, body=speak)
        if status != 200 or got.get("x-audio-cache") != "hit" or again != audio:
            raise BenchError(f"second tts call is not a hit with the same bytes: {status} {got}")

        download_path = f"/v1/agents/{AGENT}/audio-cache/{entry_id}/file"
        status, got, downloaded = http("GET", server_url + download_path, headers=headers)
        if status != 200 or downloaded != audio:
            raise BenchError(f"download: {status} {got}, {len(downloaded)} bytes")

        nginx_url, nginx_pid = self.start_nginx(downloaded)
        log(f"nginx (worker_processes {self.args.workers}) on {nginx_url}")
        bare_url, bare_pid = self.start_bare(downloaded)
        log(f"bare ASGI app under uvicorn on {bare_url}")
        offload_url, offload_pids = self.start_offload(headers, downloaded, download_path)
        log(f"nginx-offload.conf -> audiocache (offload) on {offload_url}")

        lua = self.tmp / "tts_hit.lua"
        lua.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {lua_string(json.dumps(speak))}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["X-API-KEY"] = {lua_string(key)}\n'
        )
        return Setup(
            key=key,
            server_url=server_url,
            nginx_url=nginx_url,
            entry_id=entry_id,
            entry_bytes=len(downloaded),
            download_path=download_path,
            tts_path=tts_path,
            lua_script=lua,
            server_pid=server_pid,
            nginx_pid=nginx_pid,
            bare_url=bare_url,
            bare_pid=bare_pid,
            offload_url=offload_url,
            offload_pids=offload_pids,
        )

    def wrk(
        self,
        target: str,
        url: str,
        extra: list[str],
        duration: float,
        pgid: int | tuple[int, ...] | None = None,
    ) -> WrkResult:
        a = self.args
        command = [
            "wrk", f"-t{a.threads}", f"-c{a.connections}", f"-d{duration:g}s", "--latency",
            "--timeout", "10s", *extra, url,
        ]  # fmt: skip
        cpu_before = group_cpu_seconds(pgid) if pgid else 0.0
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=duration + 60, check=False
        )
        cpu = group_cpu_seconds(pgid) - cpu_before if pgid else None
        if done.returncode != 0:
            raise BenchError(f"wrk failed ({done.returncode}) for {target}:\n{done.stderr}")
        shown = re.sub(r"X-API-KEY: [^']+", "X-API-KEY: $KEY", shlex.join(command))
        result = parse_wrk(done.stdout, target, url, shown)
        if cpu is not None and result.requests:
            result.server_cpu_us_per_request = round(1e6 * cpu / result.requests, 1)
        if result.non_2xx:
            raise BenchError(
                f"{target}: wrk saw {result.non_2xx} non-2xx/3xx responses — not measuring "
                f"errors:\n{done.stdout}"
            )
        if any(result.socket_errors.values()):
            log(f"WARNING {target}: socket errors {result.socket_errors}")
        return result

    def measure(self, s: Setup) -> list[dict[str, WrkResult]]:
        """Every target once per round, in the same order: the machine's speed drifts
        (a shared host), so each round's ratios are taken within the round."""
        key_header = ["-H", f"X-API-KEY: {s.key}"]
        tts = ["-s", str(s.lua_script)]
        targets: dict[str, tuple[str, list[str], int | tuple[int, ...]]] = {
            "nginx": (f"{s.nginx_url}/file.wav", [], s.nginx_pid),
            "bare": (f"{s.bare_url}/", [], s.bare_pid),
            "download": (s.server_url + s.download_path, key_header, s.server_pid),
            "tts_hit": (s.server_url + s.tts_path, tts, s.server_pid),
            "download_offload": (s.offload_url + s.download_path, key_header, s.offload_pids),
            "tts_hit_offload": (s.offload_url + s.tts_path, tts, s.offload_pids),
        }
        rounds = []
        for round_no in range(1, self.args.rounds + 1):
            results = {}
            for name, (url, extra, pgid) in targets.items():
                if self.args.warmup > 0:
                    log(f"round {round_no}: warm-up {name} {self.args.warmup:g} s")
                    self.wrk(name, url, extra, self.args.warmup)
                log(f"round {round_no}: measuring {name} {self.args.duration:g} s")
                results[name] = self.wrk(name, url, extra, self.args.duration, pgid)
            rounds.append(results)
        self.check_still_hit(s)
        return rounds

    def check_still_hit(self, s: Setup) -> None:
        status, got, _ = http(
            "POST", s.server_url + s.tts_path, headers={"X-API-KEY": s.key},
            body={"text": self.args.text},
        )  # fmt: skip
        if status != 200 or got.get("x-audio-cache") != "hit":
            raise BenchError(f"after the runs the tts call is not a hit: {status} {got}")

    def profile(self, s: Setup, out_dir: Path) -> list[str]:
        """One more load run per audiocache target, with py-spy sampling the server."""
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(py_spy).exists():
            raise BenchError("--profile needs py-spy (pip install py-spy)")
        out_dir.mkdir(parents=True, exist_ok=True)
        key_header = ["-H", f"X-API-KEY: {s.key}"]
        runs = {
            "download": (s.server_url + s.download_path, key_header),
            "tts_hit": (s.server_url + s.tts_path, ["-s", str(s.lua_script)]),
        }
        written = []
        seconds = int(self.args.duration)
        for name, (url, extra) in runs.items():
            out = out_dir / f"{name}-w{self.args.workers}.txt"
            spy = subprocess.Popen(
                [
                    py_spy, "record", "--format", "raw", "--subprocesses", "--nonblocking",
                    "-r", "250", "-d", str(seconds + 2), "-o", str(out),
                    "--pid", str(s.server_pid),
                ],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            try:
                time.sleep(1)
                log(f"profiling {name} {seconds} s -> {out}")
                self.wrk(name, url, extra, seconds)
                _, err = spy.communicate(timeout=seconds + 60)
            finally:
                if spy.poll() is None:
                    spy.terminate()
                    spy.wait(timeout=10)
            if spy.returncode != 0:
                raise BenchError(f"py-spy failed: {err.decode(errors='replace')}")
            written.append(str(out))
        return written


# -- reporting ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run (10)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    p.add_argument(
        "--rounds", type=int, default=3, help="rounds of all targets; medians reported (3)"
    )
    p.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    p.add_argument(
        "--workers", type=int, default=1, help="audiocache workers = nginx worker_processes (1)"
    )
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before each run (2)")
    p.add_argument("--text", default=SENTENCE, help="the phrase to cache (~100 KB with espeak-ng)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--profile", type=Path, help="also record py-spy profiles into this folder")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs) afterwards")
    p.add_argument(
        "--embedded-calls", type=int, default=20_000, help="embedded lookups timed (20000)"
    )
    args = p.parse_args(argv)
    if min(args.workers, args.connections, args.threads, args.duration, args.rounds) < 1:
        p.error("--workers, --connections, --threads, --duration and --rounds must be >= 1")
    if args.threads > args.connections:
        p.error("--threads must not exceed --connections")
    return args


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [tool for tool in ("wrk", "nginx", "espeak-ng") if shutil.which(tool) is None]
    if missing:
        print(f"missing: {', '.join(missing)} (make bench-deps)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    info = machine()
    if info["cpu_busy_before_pct"] > 10:
        log(f"WARNING CPUs {info['cpu_busy_before_pct']:.0f}% busy before the start: figures noisy")
    tmp = Path(tempfile.mkdtemp(prefix="audiocache-bench-"))
    try:
        with contextlib.ExitStack() as stack:
            bench = Bench(args, tmp, stack)
            setup = bench.setup()
            results = bench.measure(setup)
            log(f"embedded lookup x {args.embedded_calls}")
            embedded = embedded_lookup(
                bench.data_dir, ACCOUNT, AGENT, args.text, args.embedded_calls
            )
            data = report(args, setup, results, info, embedded)
            if args.profile:
                data["profiles"] = bench.profile(setup, args.profile)
            log("stopping audiocache and nginx")
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_table(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
