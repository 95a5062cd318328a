"""Request heads against a real server process: a head that dribbles in (slowloris) or never
comes is cut off after the head timeout while other clients are served, and a head with too
many or too large header fields is answered 431 in the envelope and the connection closed.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from support import LiveServer, assert_envelope, raw_response

pytestmark = pytest.mark.slow

HEAD_TIMEOUT = 1.5
MAX_HEADERS = 30
MAX_HEAD_BYTES = 8192
MARGIN = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {
        "AUDIOCACHE_HEAD_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
        "AUDIOCACHE_MAX_HEADER_COUNT": str(MAX_HEADERS),
        "AUDIOCACHE_MAX_HEAD_BYTES": str(MAX_HEAD_BYTES),
    }
    live = LiveServer(Path(tmp_path_factory.mktemp("heads")) / "srv", env=env)
    try:
        yield live.start()
    finally:
        live.stop()


def connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.setblocking(False)
    return sock


def read_until_closed(sock: socket.socket, seconds: float) -> tuple[bytes, bool]:
    """What the server sends within ``seconds``, and whether it closed the connection."""
    data = bytearray()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.1)
        if not readable:
            continue
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return bytes(data), True
        if not chunk:
            return bytes(data), True
        data += chunk
    return bytes(data), False


def test_slowloris_and_silent_connections_are_closed_while_others_are_served(
    server: LiveServer,
) -> None:
    dribblers = [connect(server) for _ in range(25)]
    silent = [connect(server) for _ in range(25)]
    for sock in dribblers:
        sock.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    opened = time.monotonic()
    closed_at: dict[socket.socket, float] = {}
    received: dict[socket.socket, bytearray] = {s: bytearray() for s in dribblers + silent}
    served_meanwhile: list[float] = []
    line = 0
    while len(closed_at) < 50 and time.monotonic() - opened < HEAD_TIMEOUT + MARGIN:
        open_socks = [s for s in dribblers + silent if s not in closed_at]
        readable, _, _ = select.select(open_socks, [], [], 0.1)
        for sock in readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            received[sock] += chunk
            if not chunk:
                closed_at[sock] = time.monotonic() - opened
        if time.monotonic() - opened > line * 0.3:  # a header line every 0.3 s
            line += 1
            for sock in dribblers:
                if sock not in closed_at:
                    try:
                        sock.send(f"X-Line-{line}: a\r\n".encode())
                    except OSError:
                        closed_at[sock] = time.monotonic() - opened
            if len(served_meanwhile) < 3:
                started = time.monotonic()
                assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
                served_meanwhile.append(time.monotonic() - started)
    for sock in dribblers + silent:
        sock.close()

    assert len(closed_at) == 50, f"{50 - len(closed_at)} connections still open"
    assert max(closed_at.values()) < HEAD_TIMEOUT + MARGIN
    assert min(closed_at.values()) >= HEAD_TIMEOUT * 0.9, "closed before the head timeout"
    assert len(served_meanwhile) == 3 and max(served_meanwhile) < 1.0
    for sock in silent:  # an idle connection is closed without a word
        assert received[sock] == b""
    for sock in dribblers:  # a half-sent request is told why it gets no answer
        response = raw_response(bytes(received[sock]))
        assert response is not None, bytes(received[sock])
        assert_envelope(response, 408, "REQUEST_TIMEOUT")


def test_head_timer_starts_again_after_each_response(server: LiveServer) -> None:
    """A keep-alive connection gets the same budget for its next head, not an endless one."""
    sock = connect(server)
    sock.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data, closed = read_until_closed(sock, 0.5)
    response = raw_response(data)
    assert response is not None and response.status_code == 200 and not closed
    sock.send(b"GET /healthz HTTP/1.1\r\n")  # the next head, never finished
    started = time.monotonic()
    data, closed = read_until_closed(sock, HEAD_TIMEOUT + MARGIN)
    sock.close()
    assert closed and time.monotonic() - started < HEAD_TIMEOUT + MARGIN
    late = raw_response(data)
    assert late is not None
    assert_envelope(late, 408, "REQUEST_TIMEOUT")


def head_with(headers: list[str]) -> bytes:
    lines = ["GET /healthz HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def exchange(server: LiveServer, request: bytes) -> tuple[httpx.Response | None, bool]:
    sock = connect(server)
    sock.setblocking(True)
    sock.sendall(request)
    sock.setblocking(False)
    data, closed = read_until_closed(sock, 3.0)
    sock.close()
    return raw_response(data), closed


def test_header_count_limit(server: LiveServer) -> None:
    under = [f"X-H{n}: v" for n in range(MAX_HEADERS - 1)]  # + Host = the limit
    response, _closed = exchange(server, head_with(under))
    assert response is not None and response.status_code == 200

    response, closed = exchange(server, head_with([*under, "X-One-More: v"]))
    assert response is not None
    body = assert_envelope(response, 431, "HEADERS_TOO_LARGE")
    assert str(MAX_HEADERS) in body["error_message"]
    assert response.headers["connection"] == "close" and closed


def test_header_size_limit(server: LiveServer) -> None:
    response, _closed = exchange(server, head_with([f"X-Big: {'a' * (MAX_HEAD_BYTES - 200)}"]))
    assert response is not None and response.status_code == 200

    response, closed = exchange(server, head_with([f"X-Big: {'a' * MAX_HEAD_BYTES}"]))
    assert response is not None
    assert_envelope(response, 431, "HEADERS_TOO_LARGE")
    assert closed
    response, closed = exchange(server, b"GET /" + b"a" * MAX_HEAD_BYTES + b" HTTP/1.1\r\n\r\n")
    assert response is not None and response.status_code == 431 and closed


def test_endless_header_line_is_cut_off_without_buffering_it(server: LiveServer) -> None:
    """httptools keeps a header line until it ends: the server must count it as it comes."""
    assert server.process is not None
    rss_before = psutil.Process(server.process.pid).memory_info().rss
    sock = connect(server)
    sock.setblocking(True)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ")
    sent, data, closed = 0, bytearray(), False
    piece = b"a" * 16384
    while sent < 32 * 1024 * 1024 and not closed:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            chunk = sock.recv(65536)
            data += chunk
            closed = not chunk
            continue
        try:
            sock.sendall(piece)
        except OSError:
            break
        sent += len(piece)
    more, closed = read_until_closed(sock, 3.0)
    sock.close()
    data += more
    response = raw_response(bytes(data))
    assert response is not None, bytes(data)[:200]
    assert_envelope(response, 431, "HEADERS_TOO_LARGE")
    assert closed and sent < 8 * 1024 * 1024, sent
    growth = psutil.Process(server.process.pid).memory_info().rss - rss_before
    assert growth < 8 * 1024 * 1024, growth
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_a_whole_request_bigger_than_the_head_limit_in_one_read_is_served(
    server: LiveServer,
) -> None:
    # Head and a body past MAX_HEAD_BYTES sent in one write, twice on one connection: the
    # body is no part of the head, whatever one read of the socket returns.
    body = b'{"text": "' + b"a" * (4 * MAX_HEAD_BYTES) + b'"}'
    request = (
        f"POST /v1/agents/nobody/tts HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        for _ in range(2):
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data or data.count(b"}") < 1:
                chunk = sock.recv(65536)
                assert chunk, data
                data += chunk
            assert data.startswith(b"HTTP/1.1 401"), data[:200]
