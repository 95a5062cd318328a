"""The HTTP server: uvicorn configured from Settings, the same for the CLI and the tests.

uvicorn bounds neither how long a client may take to send a request head nor how large
that head may be (httptools buffers a header line of any length). ``EdgeProtocol`` adds
both to uvicorn's httptools protocol:

- a head timer, started when the connection opens and after each response and stopped
  once a request's headers are complete: a connection that dribbles its head (slowloris)
  or sends nothing is closed after ``head_timeout_seconds``;
- a limit on the number of header fields and on the bytes of the head (request line and
  headers, counted as they arrive): past it the client gets 431 in the envelope and the
  connection is closed.

It also puts the hot lane (``api/hot_lane.py``) in front of the app: a request the lane
may answer is held, without a cycle or a task, until it is complete, and answered from the
memo if it can be; a plain request that arrives whole in one read
(``api/lane_request.py``) is answered before httptools sees it at all.

Body timeouts, the upload cap and spooling live where bodies are read (``api/requests.py``,
``api/uploads.py``). ``--workers N`` hands the settings to each worker as one JSON variable
(``Settings.worker_environ``), secrets included, and a Prometheus folder of the run's own
(``metrics_folder``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import tempfile
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httptools
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from audiocache.api.errors import CORRELATION_HEADER, envelope_bytes
from audiocache.api.hot_lane import HotLane, LaneAnswer, LaneRoute
from audiocache.api.lane_request import parse_plain
from audiocache.config import Settings
from audiocache.errors import AudioCacheError, HeadersTooLarge, RequestTimeout
from audiocache.logs import configure_logging
from audiocache.metrics import MULTIPROC_ENV

log = logging.getLogger("audiocache.server")
_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
LINGER_SECONDS = 2.0  # how long a refused client may go on sending before the socket closes


@dataclass(frozen=True)
class EdgeLimits:
    head_timeout: float
    max_header_count: int
    max_head_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> EdgeLimits:
        return cls(
            settings.head_timeout_seconds, settings.max_header_count, settings.max_head_bytes
        )


class EdgeConfig(uvicorn.Config):
    """uvicorn's Config carrying the limits to every connection (and, pickled, to workers)."""

    def __init__(self, app: Any, *, limits: EdgeLimits, **kwargs: Any) -> None:
        super().__init__(app, http=EdgeProtocol, **kwargs)
        self.edge_limits = limits


class _HeadRefused(Exception):
    """Raised in a parser callback to stop parsing a head that broke a limit."""


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head timer and head limits."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        assert isinstance(config, EdgeConfig), "EdgeProtocol needs an EdgeConfig"
        self.limits = config.edge_limits
        self._head_timer: asyncio.TimerHandle | None = None
        self._awaiting_head = True  # the next bytes on the connection belong to a head
        self._head_begun = False  # some of that head has arrived
        self._head_bytes = 0  # bytes of the current head, as parsed
        self._head_raw = 0  # bytes received while the head is incomplete (not yet parsed)
        self._header_count = 0
        self._heads_completed = 0  # heads completed within the current data_received
        self._refused = False  # answered and closing: whatever still arrives is dropped
        self._linger: asyncio.TimerHandle | None = None
        self.lane = _lane_of(config)
        # A request the lane may answer, held (no task started) until its body is in
        self._held: tuple[LaneRoute, bytearray] | None = None
        self._hold_timer: asyncio.TimerHandle | None = None
        self._sock: socket.socket | Literal[False] | None = None  # for the lane (False: none)
        self._lane_at = float("-inf")  # when the lane last answered a plain request

    # -- the head timer -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_hold_timer()
        self._close_socket()
        self._held = None
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        # A pipelined request already has its head. Otherwise the next head is due, and
        # so is the rest of a body the app answered without reading.
        if not pipelined and not self.transport.is_closing() and not self._refused:
            self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self._refused:
            return
        later = self._lane_at + self.limits.head_timeout - self.loop.time()
        if later > 0:  # armed before the last plain lane answer (which leaves it be)
            self._head_timer = self.loop.call_later(later, self._head_timed_out)
            return
        if self._head_begun:  # a request is waiting for an answer: say why it gets none
            log.info("request head not complete after %.1f s; closing", self.limits.head_timeout)
            self._refuse(RequestTimeout("The request head did not arrive in time"))
        else:  # an idle connection: close it quietly, as a keep-alive timeout does
            self.transport.close()

    # -- head limits ----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self.lane is not None and self._at_rest() and self._plain_lane(self.lane, data):
            return
        self._unset_keepalive_if_required()
        head_was_incomplete = self._awaiting_head
        self._heads_completed = 0
        try:
            self.parser.feed_data(data)
            if self._held is not None and self._hold_timer is None:
                # the rest of the body is due in the next read or two (a client that writes
                # head and body apart); one that takes longer goes the usual way
                assert self.lane is not None
                self._hold_timer = self.loop.call_later(self.lane.hold_seconds, self._release)
        except httptools.HttpParserError:
            if not self._refused:  # a limit already answered and closed
                self._bad_request()
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        else:
            if head_was_incomplete and self._awaiting_head and not self._heads_completed:
                # httptools holds a partial header line until it ends: count it raw. (Not
                # when a whole message, head and body, arrived in this one read.)
                self._head_raw += len(data)
                if self._head_raw > self.limits.max_head_bytes:
                    self._refuse(HeadersTooLarge(self._too_large_message()))

    def _bad_request(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_head = True
        self._head_begun = True
        self._head_bytes = self._head_raw = self._header_count = 0
        if self._head_timer is None:  # pipelined after a response that did not re-arm it
            self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_header_count:
            self._refuse(
                HeadersTooLarge(
                    f"The request has more than {self.limits.max_header_count} header fields"
                )
            )
            raise _HeadRefused
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._heads_completed += 1
        self._awaiting_head = False
        self._head_begun = False
        self._cancel_head_timer()
        if self.lane is not None and self._hold_for_lane(self.lane):
            return
        self._start_cycle()

    def _start_cycle(self) -> None:
        super().on_headers_complete()
        if self.cycle is not None and not isinstance(self.cycle.transport, _LingeringTransport):
            self.cycle.transport = _LingeringTransport(self)  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        if self._held is not None:
            self._held[1].extend(body)  # at most the declared length, which the lane bounds
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._cancel_hold_timer()
            if self._lane_answered(*held):
                self._awaiting_head = True
                return
            self._start_cycle()
            self.cycle.body += held[1]
        super().on_message_complete()
        self._awaiting_head = True

    # -- the hot lane (api/hot_lane.py) ---------------------------------------------------

    def _at_rest(self) -> bool:
        """Between requests, nothing held, under way or queued: the next bytes start a
        request that may be answered before (and without) the parser seeing it."""
        cycle = self.cycle
        return (
            self._awaiting_head
            and not self._head_begun
            and self._held is None
            and not self.pipeline
            and (cycle is None or cycle.response_complete)
            and not self.flow.write_paused
            and not self.transport.is_closing()
        )

    def _plain_lane(self, lane: HotLane, data: bytes) -> bool:
        """Answer a plain request that arrived whole in this read (``api/lane_request.py``)
        from the lane, without the parser, its callbacks or new timers; False (nothing
        done, nothing consumed) sends the bytes the usual way.

        The keep-alive and head timers armed after the previous response stay armed:
        re-arming both costs more than the rest of a lane answer. When one fires, it looks
        at ``_lane_at`` and waits on for what is left of its time."""
        limits = self.limits
        request = parse_plain(data, limits.max_header_count, limits.max_head_bytes)
        if request is None:
            return False
        method, target, headers, body = request
        route = lane.route(method, target)
        if route is None:
            return False
        if not lane.body_fits(len(body)) if route.has_body else body:
            return False  # a runtime-path call needs a body that may be a memo key; GET none
        try:
            answer = lane.answer(
                route, method, target, headers, body, self.server_state.default_headers, True
            )
        except Exception:  # the usual way answers it (and reports what is wrong)
            log.exception("the hot lane failed; answering the usual way")
            return False
        if answer is None:
            return False
        self._send(answer)
        lane.unparsed += 1
        self.server_state.total_requests += 1
        self._lane_at = self.loop.time()
        if self.timeout_keep_alive_task is None:  # the connection's first request
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )
        return True

    def timeout_keep_alive_handler(self) -> None:
        later = self._lane_at + self.timeout_keep_alive - self.loop.time()
        if later > 0:  # armed before the last plain lane answer: see _plain_lane
            self.timeout_keep_alive_task = self.loop.call_later(
                later, self.timeout_keep_alive_handler
            )
            return
        super().timeout_keep_alive_handler()

    def _hold_for_lane(self, lane: HotLane) -> bool:
        """Hold a request the lane may answer (no cycle, no task) until it is complete."""
        if self.pipeline or (self.cycle is not None and not self.cycle.response_complete):
            return False  # answers go out in order: behind the one under way
        if self.flow.write_paused:
            return False  # the client is not reading: the usual way waits for it to drain
        if self.parser.should_upgrade():
            return False
        route = lane.route(self.parser.get_method(), self.url)
        if route is None:
            return False
        declared = b"0"
        for name, value in self.headers:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding" or name == b"expect":
                return False
        if route.has_body:
            if not declared.isdigit() or not lane.body_fits(int(declared)):
                return False
        elif declared != b"0":
            return False
        self._held = (route, bytearray())
        return True

    def _send(self, answer: LaneAnswer) -> None:
        """Head, then body. With nothing queued on the transport (so the bytes go out in
        order): the head with MSG_MORE, so it waits in the socket for the body (one segment
        train, one wake-up of the client: nginx's tcp_nopush), then the body by ``sendfile``
        from the blob's file; whatever the socket did not take goes through the transport."""
        transport = self.transport
        head, body, file = answer
        sock = self._socket() if file is not None and body else None
        if file is None or sock is None or transport.get_write_buffer_size() != 0:
            transport.writelines((head, body))
            return
        try:
            placed = sock.send(head, socket.MSG_MORE)
        except OSError:  # full (or gone: the transport finds out and says so)
            placed = 0
        if placed < len(head):
            transport.writelines((head[placed:], body))
            return
        try:
            sent = os.sendfile(sock.fileno(), file, 0, len(body))
        except OSError:
            sent = 0
        if sent < len(body):
            transport.write(memoryview(body)[sent:])

    def _socket(self) -> socket.socket | None:
        """A socket object over the connection's descriptor (a duplicate, closed with the
        connection: uvloop's own stand-in cannot send), made once per connection; None
        if the connection is not TCP."""
        if self._sock is None:
            raw = self.transport.get_extra_info("socket")
            if raw is None or raw.family not in _TCP_FAMILIES:
                self._sock = False
            else:
                self._sock = socket.socket(fileno=os.dup(raw.fileno()))
                self._sock.setblocking(False)  # as uvloop keeps it (the flag is shared)
        return self._sock or None

    def _close_socket(self) -> None:
        if self._sock:
            self._sock.close()
        self._sock = False

    def _release(self) -> None:
        """A held request whose body is late goes the usual way, with what has arrived."""
        self._hold_timer = None
        held, self._held = self._held, None
        if held is None or self.transport.is_closing():
            return
        self._start_cycle()
        self.cycle.body += held[1]
        self.cycle.message_event.set()

    def _cancel_hold_timer(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None

    def _lane_answered(self, route: LaneRoute, body: bytearray) -> bool:
        assert self.lane is not None
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        try:
            answer = self.lane.answer(
                route,
                self.parser.get_method(),
                self.url,
                self.headers,
                bytes(body),
                self.server_state.default_headers,
                keep_alive,
            )
        except Exception:  # the usual way answers it (and reports what is wrong)
            log.exception("the hot lane failed; answering the usual way")
            return False
        if answer is None:
            return False
        self._send(answer)
        if not keep_alive:
            self.transport.close()
        self.on_response_complete()
        return True

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.limits.max_head_bytes:
            self._refuse(HeadersTooLarge(self._too_large_message()))
            raise _HeadRefused

    def _too_large_message(self) -> str:
        return f"The request head exceeds {self.limits.max_head_bytes} bytes"

    def _refuse(self, error: AudioCacheError) -> None:
        """Answer in the envelope (no app has seen the request) and close the connection."""
        self._refused = True
        self._cancel_head_timer()
        cid = str(uuid.uuid4())
        body = envelope_bytes(cid, error.error_code, error.message)
        head = (
            f"HTTP/1.1 {error.status} {_REASONS.get(error.status, '')}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            f"{CORRELATION_HEADER.lower()}: {cid}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode("latin-1") + body)
        self.linger_close()

    def linger_close(self) -> None:
        """Close after an answer sent before the request was read in full.

        Closing a socket with unread data resets the connection, and a client still sending
        may then lose the answer before it reads it. So: send FIN after the answer, drop what
        the client still sends for a moment, then close (nginx's lingering close)."""
        if self.transport.is_closing():
            return
        self._refused = True
        self._cancel_head_timer()
        if self.cycle is not None:
            self.cycle.body = bytearray()  # body that arrived unread: nobody will read it now
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._linger = self.loop.call_later(LINGER_SECONDS, self.transport.close)


class _LingeringTransport:
    """The transport as a request's cycle sees it: closing it while the request body is
    still arriving (an answer with ``Connection: close`` before the body was read: 400
    PAYLOAD_TOO_LARGE, 408, 503 UPLOADS_BUSY) is a lingering close."""

    def __init__(self, protocol: EdgeProtocol) -> None:
        # weak: protocol -> cycle -> this must not be a reference cycle, or each closed
        # connection (and the body buffer its cycle holds) lives until a full collection
        self._protocol = weakref.ref(protocol)
        self._transport = protocol.transport

    def close(self) -> None:
        protocol = self._protocol()
        if protocol is None or protocol._awaiting_head:  # the body was read in full
            self._transport.close()
        else:
            protocol.linger_close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large"}

WORKER_APP = "audiocache.server:worker_app"


def _lane_of(config: uvicorn.Config) -> HotLane | None:
    """The app's hot lane (``app.state.hot_lane``), found once per server through the
    wrappers uvicorn puts around the app (proxy headers, message logger)."""
    if not hasattr(config, "_hot_lane"):
        lane = None
        layer: Any = config.loaded_app if config.loaded else None
        for _ in range(8):
            if layer is None:
                break
            state = getattr(layer, "state", None)
            candidate = getattr(state, "hot_lane", None) if state is not None else None
            if isinstance(candidate, HotLane):
                lane = candidate
                break
            layer = getattr(layer, "app", None)
        config._hot_lane = lane  # type: ignore[attr-defined]
    return config._hot_lane  # type: ignore[attr-defined, no-any-return]


def worker_app() -> FastAPI:
    """The app factory each worker process calls (``--workers N``)."""
    from audiocache.app import create_app

    return create_app(Settings.for_worker())


def uvicorn_config(settings: Settings, app: Any = None, **overrides: Any) -> EdgeConfig:
    """The server's configuration; ``app`` None means the worker factory (``--workers``)."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": False,
        "loop": "uvloop",
        "timeout_graceful_shutdown": 10,
        "log_config": configure_logging(settings.log_level),
        # The client address (audit log, access log) through the trusted reverse proxies
        # only; uvicorn's own default would come from FORWARDED_ALLOW_IPS, unsaid.
        "proxy_headers": bool(settings.trusted_proxy_list()),
        "forwarded_allow_ips": settings.trusted_proxy_list(),
    }
    if app is None:
        app = WORKER_APP
        options.update(factory=True, workers=settings.workers)
    options.update(overrides)
    return EdgeConfig(app, limits=EdgeLimits.of(settings), **options)


@contextlib.contextmanager
def metrics_folder() -> Iterator[Path]:
    """Where the workers keep their Prometheus values (``metrics.py``): one folder per run,
    set before any worker starts, so a scrape of any worker adds up all of them and a new
    run starts from zero. An operator's own PROMETHEUS_MULTIPROC_DIR is used (emptied of
    an earlier run's files) and kept."""
    given = os.environ.get(MULTIPROC_ENV)
    folder = Path(given) if given else Path(tempfile.mkdtemp(prefix="audiocache-metrics-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)
    try:
        yield folder
    finally:
        if not given:
            shutil.rmtree(folder, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)


def serve(settings: Settings) -> None:
    """Run the server in the foreground (what ``audiocache serve`` does)."""
    if settings.workers > 1:
        # Workers are spawned: they import the app factory and read the settings from here.
        os.environ.update(settings.worker_environ())
        config = uvicorn_config(settings)
        with metrics_folder():
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    from audiocache.app import create_app

    server = uvicorn.Server(uvicorn_config(settings, create_app(settings)))
    server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's start-up failure code (port taken, lifespan failed)
