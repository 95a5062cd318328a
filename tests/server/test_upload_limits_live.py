"""Upload limits against a real server process: a 100 MB upload is refused as soon as it
passes the 6 MiB limit, without the server's memory growing by anything like the payload,
and the entry it was aimed at is unchanged.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
from support import LiveServer, assert_envelope, require_tool

pytestmark = pytest.mark.slow

AGENT = "bot"
BASE = f"/v1/agents/{AGENT}/audio-cache"
GRANTS = ("audio_cache:read", "audio_cache:write", "agents:read", "agents:write")
PAYLOAD = 100 * 1000 * 1000  # 100 MB
DECLARED = 104_857_600  # 100 MiB, as a Content-Length
CHUNK = 64 * 1024
MAX_GROWTH = 30 * 1024 * 1024
IO_TIMEOUT = 20.0


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
    server = LiveServer(Path(tmp_path_factory.mktemp("upload-limits")) / "srv")
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
        head, sep, body = bytes(self.raw).partition(b"\r\n\r\n")
        if not sep:
            return None
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines]
        length = int(dict((k.lower(), v) for k, v in headers).get("content-length", "-1"))
        if length < 0 or len(body) < length:
            return None
        return httpx.Response(
            int(status_line.split()[1]),
            headers=headers,
            content=body[:length],
        )


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
) -> Exchange:
    """PATCH the entry's file with ``total`` body bytes in 64 KiB writes, watching for an
    answer between writes. ``body_limit`` stops writing early (a declared length we do not
    intend to send in full)."""
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
        deadline = time.monotonic() + IO_TIMEOUT
        while exchange.response() is None and not exchange.closed_by_server:
            if time.monotonic() > deadline:
                break
            _read_available(sock, exchange, wait=0.5)
    exchange.seconds = time.monotonic() - started
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
