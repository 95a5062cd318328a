"""Upload limits against a real server process: a 100 MB upload is refused as soon as it
passes the 6 MiB limit, without the server's memory growing by anything like the payload,
and the entry it was aimed at is unchanged. Uploads that stall are dropped after the body
idle timeout with their memory and spool files freed; past the cap on concurrent uploads
the answer is 503 UPLOADS_BUSY; a client that hangs up mid-body is one info line in the log.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
from support import LiveServer, assert_envelope, raw_response, require_tool

pytestmark = pytest.mark.slow

AGENT = "bot"
BASE = f"/v1/agents/{AGENT}/audio-cache"
GRANTS = ("audio_cache:read", "audio_cache:write", "agents:read", "agents:write")
PAYLOAD = 100 * 1000 * 1000  # 100 MB
DECLARED = 104_857_600  # 100 MiB, as a Content-Length
CHUNK = 64 * 1024
MAX_GROWTH = 30 * 1024 * 1024
IO_TIMEOUT = 20.0
BODY_IDLE_TIMEOUT = 2.0
MAX_UPLOADS = 8
STALL_DECLARED = 6_000_000  # what the stalled uploads declare
STALL_SENT = 5_900_000  # and what they send before they stop


@dataclass
class Live:
    server: LiveServer
    key: str
    entry_id: str
    audio: bytes

    @property
    def file_path(self) -> str:
        return f"{BASE}/{self.entry_id}/file"

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url, headers={"X-API-KEY": self.key}, timeout=IO_TIMEOUT
        )

    def download(self) -> bytes:
        with self.client() as c:
            r = c.get(self.file_path)
        assert r.status_code == 200, r.text
        return r.content

    def assert_unchanged_and_alive(self) -> None:
        assert self.server.process is not None and self.server.process.poll() is None
        assert self.download() == self.audio
        with self.client() as c:
            assert c.get("/healthz").status_code == 200
            listed = c.get(BASE).json()
        assert [e["id"] for e in listed["entries"]] == [self.entry_id]
        assert listed["entries"][0]["transcript"] == "hello"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    require_tool("espeak-ng")
    env = {
        "AUDIOCACHE_BODY_IDLE_TIMEOUT_SECONDS": str(BODY_IDLE_TIMEOUT),
        "AUDIOCACHE_MAX_CONCURRENT_UPLOADS": str(MAX_UPLOADS),
    }
    server = LiveServer(Path(tmp_path_factory.mktemp("upload-limits")) / "srv", env=env)
    try:
        server.start()
        grants = [arg for grant in GRANTS for arg in ("--grant", grant)]
        created = server.cli("keys", "create", "--account", "acme", *grants)
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1].strip()
        with httpx.Client(base_url=server.url, headers={"X-API-KEY": key}, timeout=IO_TIMEOUT) as c:
            r = c.post(
                "/v1/accounts/acme/agents",
                json={
                    "name": "Bot",
                    "agentId": AGENT,
                    "responseSettings": {"greeting": "hi"},
                    "voiceSettings": {"voiceId": "en-us"},
                },
            )
            assert r.status_code == 200, r.text
            r = c.put(f"/v1/agents/{AGENT}/cache-policy", json={"admission": "always"})
            assert r.status_code == 200, r.text
            r = c.post(f"/v1/agents/{AGENT}/tts", json={"text": "hello"})
            assert r.status_code == 200, r.text
            entry_id = r.headers["x-audio-cache-entry-id"]
        live = Live(server, key, entry_id, b"")
        live.audio = live.download()
        yield live
    finally:
        server.stop()


# -- measuring the server ------------------------------------------------------------------


class PeakRss:
    """Samples the server's resident memory in a thread, from ``start`` to ``stop``."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.before = self.process.memory_info().rss
        self.peak = self.before
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        self.peak = max(self.peak, self.process.memory_info().rss)

    def _run(self) -> None:
        while not self._done.is_set():
            self._sample()
            self._done.wait(0.005)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        time.sleep(0.2)  # "and after": whatever the server still does with what it read
        self._done.set()
        self._thread.join(timeout=5)
        self._sample()

    @property
    def growth(self) -> int:
        return self.peak - self.before


def settle(live: Live) -> None:
    """A few warm-up requests, so the baseline is a server that has already served some."""
    with live.client() as c:
        for _ in range(3):
            assert c.get(live.file_path).status_code == 200


# -- a raw HTTP/1.1 client that can stop writing when the server answers -------------------


@dataclass
class Exchange:
    sent: int = 0  # body bytes written
    write_error: str | None = None  # BrokenPipe / ConnectionReset while writing
    raw: bytearray = field(default_factory=bytearray)
    closed_by_server: bool = False
    seconds: float = 0.0

    def response(self) -> httpx.Response | None:
        """The response read so far, if a complete one was read."""
        return raw_response(bytes(self.raw))


def wav_head(data_size: int) -> bytes:
    """A WAV header that declares ``data_size`` bytes of 16 kHz mono 16-bit PCM."""
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", min(36 + data_size, 0xFFFFFFFF))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", min(data_size, 0xFFFFFFFF))
    )


def upload(
    live: Live,
    *,
    total: int,
    chunked: bool,
    declared: int | None = None,
    stop_on_response: bool = True,
    body_limit: int | None = None,
    on_sent: Callable[[], None] | None = None,
    watch_close: bool = False,
) -> Exchange:
    """PATCH the entry's file with ``total`` body bytes in 64 KiB writes, watching for an
    answer between writes. ``body_limit`` stops writing early (a declared length we do not
    intend to send in full); ``watch_close`` waits a little after the answer to see the
    server close the connection."""
    head = [
        f"PATCH {live.file_path} HTTP/1.1",
        f"Host: 127.0.0.1:{live.server.port}",
        f"X-API-KEY: {live.key}",
        "Content-Type: audio/wav",
    ]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {declared}")
    exchange = Exchange()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", live.server.port), timeout=IO_TIMEOUT) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        first = wav_head(total - 44)
        filler = bytes(CHUNK)
        to_send = total if body_limit is None else min(total, body_limit)
        while exchange.sent < to_send:
            if _read_available(sock, exchange, wait=0.0) and stop_on_response:
                break
            if exchange.closed_by_server:
                break
            piece = first + filler[len(first) :] if exchange.sent == 0 else filler
            piece = piece[: to_send - exchange.sent]
            frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError) as exc:
                exchange.write_error = type(exc).__name__
                break
            exchange.sent += len(piece)
        else:
            if chunked:
                try:
                    sock.sendall(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError) as exc:
                    exchange.write_error = type(exc).__name__
        if on_sent is not None:
            on_sent()
        deadline = time.monotonic() + IO_TIMEOUT
        while exchange.response() is None and not exchange.closed_by_server:
            if time.monotonic() > deadline:
                break
            _read_available(sock, exchange, wait=0.5)
        exchange.seconds = time.monotonic() - started
        close_by = time.monotonic() + 2.0
        while watch_close and not exchange.closed_by_server and time.monotonic() < close_by:
            _read_available(sock, exchange, wait=0.1)
    return exchange


def _read_available(sock: socket.socket, exchange: Exchange, *, wait: float) -> bool:
    """Read what the server has sent; True once a complete response is in."""
    readable, _, _ = select.select([sock], [], [], wait)
    if readable:
        try:
            data = sock.recv(1 << 16)
        except ConnectionResetError:
            data = b""
        if data:
            exchange.raw += data
        else:
            exchange.closed_by_server = True
    return exchange.response() is not None


def assert_refused(exchange: Exchange) -> None:
    """A 400 PAYLOAD_TOO_LARGE envelope, or (only if none could be read) a closed connection."""
    response = exchange.response()
    if response is None:
        assert exchange.closed_by_server or exchange.write_error, exchange
        assert not exchange.raw, f"an incomplete response: {bytes(exchange.raw)[:300]!r}"
        return
    assert_envelope(response, 400, "PAYLOAD_TOO_LARGE")


# -- the tests -----------------------------------------------------------------------------


def test_chunked_100_mb_is_refused_without_buffering(live: Live) -> None:
    assert live.server.process is not None
    settle(live)
    with PeakRss(live.server.process.pid) as rss:
        exchange = upload(live, total=PAYLOAD, chunked=True)
    assert_refused(exchange)
    assert exchange.response() is not None, "the server should answer before closing"
    # refused as soon as the limit was passed: far less than the payload was written
    assert exchange.sent < PAYLOAD // 2, exchange.sent
    assert rss.growth < MAX_GROWTH, f"server RSS grew by {rss.growth / 2**20:.1f} MiB"
    live.assert_unchanged_and_alive()


def test_chunked_100_mb_sent_in_full_is_refused_without_buffering(live: Live) -> None:
    """A client that does not look for an early answer and writes all 100 MB anyway."""
    assert live.server.process is not None
    settle(live)
    with PeakRss(live.server.process.pid) as rss:
        exchange = upload(live, total=PAYLOAD, chunked=True, stop_on_response=False)
    assert_refused(exchange)
    assert rss.growth < MAX_GROWTH, f"server RSS grew by {rss.growth / 2**20:.1f} MiB"
    live.assert_unchanged_and_alive()


def test_chunked_100_mb_from_httpx_generator(live: Live) -> None:
    assert live.server.process is not None
    settle(live)
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield wav_head(PAYLOAD - 44) + bytes(CHUNK - 44)
        sent += CHUNK
        filler = bytes(CHUNK)
        while sent < PAYLOAD:
            yield filler
            sent += CHUNK

    with PeakRss(live.server.process.pid) as rss, live.client() as c:
        try:
            response: httpx.Response | None = c.patch(
                live.file_path, content=body(), headers={"Content-Type": "audio/wav"}
            )
        except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError):
            response = None  # the server closed the connection after it answered
    if response is not None:
        assert "content-length" not in response.request.headers
        assert_envelope(response, 400, "PAYLOAD_TOO_LARGE")
    assert rss.growth < MAX_GROWTH, f"server RSS grew by {rss.growth / 2**20:.1f} MiB"
    live.assert_unchanged_and_alive()


def test_declared_100_mib_is_refused_before_reading_the_body(live: Live) -> None:
    assert live.server.process is not None
    settle(live)
    with PeakRss(live.server.process.pid) as rss:
        # Send the head and one chunk of the body; the answer must not wait for the rest.
        exchange = upload(live, total=DECLARED, chunked=False, declared=DECLARED, body_limit=CHUNK)
    response = exchange.response()
    assert response is not None, exchange
    assert_envelope(response, 400, "PAYLOAD_TOO_LARGE")
    assert exchange.seconds < 2.0, exchange.seconds
    assert rss.growth < MAX_GROWTH, f"server RSS grew by {rss.growth / 2**20:.1f} MiB"
    live.assert_unchanged_and_alive()


def test_declared_100_mib_with_no_body_at_all(live: Live) -> None:
    """Only the head is sent: a server that waited for the body would never answer."""
    exchange = upload(live, total=DECLARED, chunked=False, declared=DECLARED, body_limit=0)
    response = exchange.response()
    assert response is not None, exchange
    assert_envelope(response, 400, "PAYLOAD_TOO_LARGE")
    assert exchange.seconds < 2.0, exchange.seconds
    live.assert_unchanged_and_alive()


def test_declared_100_mib_details_upload_is_refused_early(live: Live) -> None:
    head = [
        f"PUT {BASE}/{live.entry_id}/details HTTP/1.1",
        f"Host: 127.0.0.1:{live.server.port}",
        f"X-API-KEY: {live.key}",
        "Content-Type: multipart/form-data; boundary=xyz",
        f"Content-Length: {DECLARED}",
    ]
    exchange = Exchange()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", live.server.port), timeout=IO_TIMEOUT) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        deadline = time.monotonic() + 5
        while exchange.response() is None and not exchange.closed_by_server:
            assert time.monotonic() < deadline, "no answer without the body"
            _read_available(sock, exchange, wait=0.5)
    response = exchange.response()
    assert response is not None
    assert_envelope(response, 400, "PAYLOAD_TOO_LARGE")
    assert time.monotonic() - started < 2.0
    live.assert_unchanged_and_alive()


# -- stalls, the upload cap, spooling, hang-ups ---------------------------------------------


class Stalled:
    """``count`` uploads in threads, each sending 5.9 MB of a declared 6 MB, then waiting."""

    def __init__(self, live: Live, count: int) -> None:
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._sent = 0
        self.all_sent = threading.Event()
        self.count = count
        self.sent_at = 0.0
        self.threads = [threading.Thread(target=self._one, args=(live,)) for _ in range(count)]

    def _mark_sent(self) -> None:
        with self._lock:
            self._sent += 1
            if self._sent == self.count:
                self.sent_at = time.monotonic()
                self.all_sent.set()

    def _one(self, live: Live) -> None:
        exchange = upload(
            live,
            total=STALL_DECLARED,
            chunked=False,
            declared=STALL_DECLARED,
            body_limit=STALL_SENT,
            on_sent=self._mark_sent,
            watch_close=True,
        )
        with self._lock:
            self.exchanges.append(exchange)

    def __enter__(self) -> Stalled:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        for thread in self.threads:
            thread.join(timeout=IO_TIMEOUT + 10)

    def codes(self) -> list[str]:
        """Each exchange's error code, or 'closed' for a connection cut before an answer."""
        out = []
        for exchange in self.exchanges:
            response = exchange.response()
            if response is None:
                assert exchange.closed_by_server or exchange.write_error, exchange
                out.append("closed")
            else:
                out.append(response.json()["error_code"])
        return sorted(out)


def spool_files(live: Live) -> list[str]:
    """The server's open files in its spool folder (unlinked, so only /proc shows them)."""
    assert live.server.process is not None
    spool = str(live.server.data_dir.resolve() / "spool")
    fds = Path(f"/proc/{live.server.process.pid}/fd")
    paths = []
    for fd in fds.iterdir():
        try:
            paths.append(os.readlink(fd))
        except OSError:  # closed meanwhile
            continue
    return [p for p in paths if p.startswith(spool + "/")]


def wait_for(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_stalled_uploads_are_dropped_and_their_memory_freed(live: Live) -> None:
    """30 clients each send 5.9 MB of a declared 6 MB and stop: the 8 the cap lets in are
    spooled to disk (not memory) and dropped with 408 after the idle timeout; the rest are
    refused at once. Memory stays flat and is back at its baseline afterwards."""
    assert live.server.process is not None
    settle(live)
    with PeakRss(live.server.process.pid) as rss, Stalled(live, 30) as stalled:
        assert stalled.all_sent.wait(IO_TIMEOUT)
        # While they stall, their bodies are in spool files, one each.
        assert wait_for(lambda: len(spool_files(live)) == MAX_UPLOADS, 1.0), spool_files(live)
    after = psutil.Process(live.server.process.pid).memory_info().rss
    codes = stalled.codes()
    # every client reads its answer (the server closes after it, without a reset)
    assert codes == ["REQUEST_TIMEOUT"] * MAX_UPLOADS + ["UPLOADS_BUSY"] * (30 - MAX_UPLOADS)
    for exchange in stalled.exchanges:
        response = exchange.response()
        if response is not None and response.status_code == 408:
            assert_envelope(response, 408, "REQUEST_TIMEOUT")
            assert response.headers["connection"] == "close" and exchange.closed_by_server
    # dropped after the idle timeout, not at the client's whim
    assert time.monotonic() - stalled.sent_at < BODY_IDLE_TIMEOUT + 5
    assert rss.growth < MAX_GROWTH, f"server RSS grew by {rss.growth / 2**20:.1f} MiB"
    assert after - rss.before < 10 * 2**20, f"{(after - rss.before) / 2**20:.1f} MiB kept"
    assert spool_files(live) == []
    assert list((live.server.data_dir / "spool").iterdir()) == []
    live.assert_unchanged_and_alive()


def test_uploads_past_the_cap_are_busy_until_a_slot_frees(live: Live) -> None:
    with Stalled(live, MAX_UPLOADS) as stalled:
        assert stalled.all_sent.wait(IO_TIMEOUT)
        assert wait_for(lambda: len(spool_files(live)) == MAX_UPLOADS, 1.0)
        for _ in range(3):
            busy = upload(
                live,
                total=STALL_DECLARED,
                chunked=False,
                declared=STALL_DECLARED,
                body_limit=CHUNK,
                watch_close=True,
            )
            response = busy.response()
            assert response is not None, busy
            assert_envelope(response, 503, "UPLOADS_BUSY")
            assert int(response.headers["retry-after"]) >= 1
            assert response.headers["connection"] == "close" and busy.closed_by_server
            assert busy.seconds < 2.0
    assert stalled.codes() == ["REQUEST_TIMEOUT"] * MAX_UPLOADS
    with live.client() as c:  # the slots are free again
        r = c.patch(live.file_path, content=live.audio, headers={"Content-Type": "audio/wav"})
    assert r.status_code == 204, r.text
    live.assert_unchanged_and_alive()


def details_head(live: Live, length: int) -> bytes:
    return (
        f"PUT {BASE}/{live.entry_id}/details HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nX-API-KEY: {live.key}\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\n"
        f"Content-Length: {length}\r\n\r\n"
        '--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    ).encode() + wav_head(length)


def file_head(live: Live, length: int) -> bytes:
    return (
        f"PATCH {live.file_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: {live.key}\r\n"
        f"Content-Type: audio/wav\r\nContent-Length: {length}\r\n\r\n"
    ).encode() + wav_head(length - 44)


def tts_head(live: Live, length: int) -> bytes:
    return (
        f"POST /v1/agents/{AGENT}/tts HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: {live.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        '{"text": "hel'
    ).encode()


def log_records(live: Live, offset: int) -> list[dict]:
    text = live.server.log_path.read_bytes()[offset:].decode("utf-8", "replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_client_hang_ups_mid_body_are_one_info_line_each(live: Live) -> None:
    offset = live.server.log_path.stat().st_size
    heads = [file_head] * 6 + [details_head] * 3 + [tts_head] * 3
    for make_head in heads:
        with socket.create_connection(("127.0.0.1", live.server.port), timeout=5) as sock:
            sock.sendall(
                make_head(live, 1_000_000) + bytes(100_000 if make_head is not tts_head else 0)
            )
            time.sleep(0.05)  # let the server start reading; then hang up mid-body

    def hung_up() -> list[dict]:
        return [r for r in log_records(live, offset) if "hung up" in r["message"]]

    assert wait_for(lambda: len(hung_up()) >= len(heads), 5.0), log_records(live, offset)
    records = log_records(live, offset)
    assert [r for r in records if r["level"] in ("error", "critical")] == []
    assert not any("exception" in r or "Traceback" in r["message"] for r in records), records
    lines = hung_up()
    assert len(lines) == len(heads)
    assert {r["level"] for r in lines} == {"info"}
    assert len({r["correlation_id"] for r in lines}) == len(heads)
    live.assert_unchanged_and_alive()
