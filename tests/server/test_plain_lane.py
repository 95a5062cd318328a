"""A plain request that arrives whole (``api/lane_request.py``) is answered by the hot lane
before httptools sees it (``server.EdgeProtocol._plain_lane``): the same answer as the
usual way, anything less plain still the usual way, and the connection's timers still
hold although the lane leaves them armed: an idle connection is closed after the head
timeout, a busy one is not."""

from __future__ import annotations

import re
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import ThreadedServer

from audiocache.api.hot_lane import HotLane
from audiocache.app import create_app
from audiocache.config import Settings
from audiocache.services import build_services
from audiocache.tts.fake import FakeEngine

HEAD_TIMEOUT = 1.0
BODY = b'{"text":"Thanks for calling, how can I help?"}'


@dataclass
class Lane:
    server: ThreadedServer
    lane: HotLane
    key: bytes

    def post(self, extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
        return (
            b"POST /v1/agents/bot/tts %s\r\nHost: 127.0.0.1\r\nX-API-KEY: %s\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (version, self.key, len(BODY), extra, BODY)
        )

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.server.port), timeout=5)


@pytest.fixture
def lane(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Lane]:
    head_timeout = getattr(request, "param", HEAD_TIMEOUT)
    settings = Settings(
        data_dir=tmp_path / "data", head_timeout_seconds=head_timeout, hit_flush_seconds=600
    )
    import asyncio

    async def prepare() -> str:
        setup = build_services(settings, engines=[FakeEngine()])
        await setup.db.migrate()
        _record, key = await setup.keys.create("acme", {"audio_cache:read"})
        agent = await setup.agents.create(
            "acme", agent_id="bot", name="Bot", greeting="hi", language_code="en-US"
        )
        await setup.agents.agents.update(
            agent.id, voice_id="fake:alpha", admission="always", personal_data="cache"
        )
        await setup.stop()
        return key

    key = asyncio.run(prepare())
    app = create_app(settings, build_services(settings, engines=[FakeEngine()]))
    with ThreadedServer(app) as server:
        yield Lane(server, app.state.hot_lane, key.encode())


def read_response(sock: socket.socket) -> tuple[int, dict[bytes, bytes], bytes]:
    """One response, read byte by byte up to its body (a pipelined one may follow)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, f"closed after {head!r}"
        head += byte
    status_line, *lines = head[:-4].split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines)
    size = int(headers[b"content-length"])
    body = b""
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        assert chunk, "closed in the body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed the connection, None if it did not."""
    started = time.monotonic()
    while (left := started + seconds - time.monotonic()) > 0:
        if select.select([sock], [], [], left)[0]:
            try:
                if sock.recv(1) == b"":
                    return time.monotonic() - started
            except ConnectionResetError:
                return time.monotonic() - started
    return None


def warmed(lane: Lane, sock: socket.socket) -> bytes:
    """The hit's body, once the memo holds the answer (the usual way fills it)."""
    for _ in range(3):
        sock.sendall(lane.post())
        status, headers, body = read_response(sock)
        assert status == 200
    assert headers[b"x-audio-cache"] == b"hit"
    return body


def test_a_plain_request_is_answered_before_the_parser_as_the_usual_way_answers_it(
    lane: Lane,
) -> None:
    with lane.connect() as sock:
        usual = warmed(lane, sock)
        sock.sendall(lane.post(b"Connection: close\r\n"))  # not plain: the usual way
        status, headers, body = read_response(sock)
    assert (status, body) == (200, usual)
    with lane.connect() as sock:
        before = lane.lane.unparsed
        for extra in (b"", b"Connection: keep-alive\r\n", b"User-Agent: t\r\n"):
            sock.sendall(lane.post(extra))
            plain_status, plain_headers, plain_body = read_response(sock)
            assert (plain_status, plain_body) == (200, usual)
            assert plain_headers[b"x-audio-cache"] == b"hit"
        assert lane.lane.unparsed - before == 3
    assert set(plain_headers) == set(headers) - {b"connection"}


def test_a_request_that_is_not_plain_goes_the_usual_way(lane: Lane) -> None:
    with lane.connect() as sock:
        usual = warmed(lane, sock)
        before, answered = lane.lane.unparsed, lane.lane.answered
        sock.sendall(lane.post() + lane.post())  # pipelined: two requests in one read
        assert read_response(sock)[2] == read_response(sock)[2] == usual
        request = lane.post()
        sock.sendall(request[:-5])  # the body in two reads
        time.sleep(0.05)
        sock.sendall(request[-5:])
        assert read_response(sock)[2] == usual
        sock.sendall(lane.post(b"X-Bad: a\x01b\r\n"))  # a control character: httptools' 400
        assert read_response(sock)[0] == 400
    assert lane.lane.unparsed == before
    assert lane.lane.answered > answered  # the held lane still answered some of them


def test_a_busy_connection_stays_open_and_an_idle_one_closes_after_the_head_timeout(
    lane: Lane,
) -> None:
    """Answers 0.3 s apart for longer than the head timeout and uvicorn's keep-alive
    timeout (5 s), both armed before the first of them: the connection stays open. Then
    nothing: it closes one head timeout after the last answer."""
    with lane.connect() as sock:
        warmed(lane, sock)
        before, cleared = lane.lane.unparsed, lane.lane.memo.cleared
        until = time.monotonic() + 6.0
        answers = 0
        while time.monotonic() < until:
            assert closed_within(sock, 0.3) is None
            sock.sendall(lane.post())
            assert read_response(sock)[0] == 200
            answers += 1
        # a background commit (a periodic task's) empties the memo: the next request goes
        # the usual way and fills it again
        assert answers - (lane.lane.unparsed - before) <= lane.lane.memo.cleared - cleared
        closed_after = closed_within(sock, HEAD_TIMEOUT + 3.0)
    assert closed_after is not None, "an idle connection was never closed"
    assert HEAD_TIMEOUT - 0.3 < closed_after < HEAD_TIMEOUT + 1.5


@pytest.mark.parametrize("lane", [30.0], indirect=True)  # a head timeout longer than 5 s
def test_a_connection_the_lane_alone_answered_is_closed_after_the_keep_alive_timeout(
    lane: Lane,
) -> None:
    """uvicorn arms its keep-alive timer (5 s) after a response; the lane arms it for a
    connection whose first request it answers."""
    with lane.connect() as sock:
        warmed(lane, sock)
    with lane.connect() as sock:
        before = lane.lane.unparsed
        sock.sendall(lane.post())
        assert read_response(sock)[0] == 200
        assert lane.lane.unparsed == before + 1
        closed_after = closed_within(sock, 8.0)
    assert closed_after is not None and 4.5 < closed_after < 6.5


def test_the_lane_echoes_a_valid_correlation_id_and_replaces_an_invalid_one(lane: Lane) -> None:
    with lane.connect() as sock:
        warmed(lane, sock)
        before = lane.lane.unparsed
        ids = []
        for given in (b"call-42:a.b", b"not valid!", b"x" * 129, b""):
            sock.sendall(lane.post(b"X-PolyAI-Correlation-Id: %s\r\n" % given))
            status, headers, _ = read_response(sock)
            assert status == 200
            ids.append(headers[b"x-polyai-correlation-id"])
        assert lane.lane.unparsed - before == 4
    assert ids[0] == b"call-42:a.b"
    for made in ids[1:]:
        assert re.fullmatch(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", made)
    assert len(set(ids[1:])) == 3
