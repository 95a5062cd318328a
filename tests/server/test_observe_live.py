"""``audiocache serve --workers 2``: a known sequence of requests, each sent on a connection
whose worker is known (psutil names the process holding the socket), so both workers serve
some. Then one scrape of /metrics, parsed with prometheus-client's parser, must add up both
workers exactly; and, once the server has stopped, its log must hold exactly one access line
per request, naming method, route template, status, duration, correlation id, key id and the
worker that served it, the hot path's hits and the 4xx included."""

from __future__ import annotations

import http.client
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import LiveServer

from audiocache.api.hot_path import FILE_ROUTE, SPEAK_ROUTE

pytestmark = pytest.mark.slow

LIST_ROUTE = "/v1/agents/{agentId}/audio-cache"
AGENTS_ROUTE = "/v1/accounts/{accountId}/agents"
POLICY_ROUTE = "/v1/agents/{agentId}/cache-policy"


@dataclass
class Sent:
    method: str
    route: str
    status: int
    correlation_id: str
    pid: int
    body: bytes
    authenticated: bool
    headers: dict[str, str]


class Worker:
    """One keep-alive connection, held by a known worker process."""

    def __init__(self, port: int, pids: list[int]) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.connect()
        assert self.conn.sock is not None
        local_port = self.conn.sock.getsockname()[1]
        self.sent: list[Sent] = []
        self.request("GET", "/healthz", "/healthz", None)  # accepted by now
        [self.pid] = [pid for pid in pids if _holds(pid, local_port)]
        self.sent[0].pid = self.pid

    def request(
        self, method: str, path: str, route: str, key: str | None, body: Any = None
    ) -> Sent:
        cid = f"test-{uuid.uuid4()}"
        headers = {"X-PolyAI-Correlation-Id": cid}
        if key is not None:
            headers["X-API-KEY"] = key
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=payload, headers=headers)
        response = self.conn.getresponse()
        content = response.read()
        assert response.getheader("x-polyai-correlation-id") == cid
        sent = Sent(
            method,
            route,
            response.status,
            cid,
            getattr(self, "pid", 0),
            content,
            key is not None,
            {k.lower(): v for k, v in response.getheaders()},
        )
        self.sent.append(sent)
        return sent


def _holds(pid: int, local_port: int) -> bool:
    return any(
        c.raddr and c.raddr.port == local_port
        for c in psutil.Process(pid).net_connections(kind="tcp")
    )


def _workers_on_each_process(port: int, pids: list[int]) -> tuple[Worker, Worker]:
    """Fresh connections until two are held by different workers (the others are closed;
    their /healthz calls still count)."""
    first = Worker(port, pids)
    spare: list[Worker] = []
    for _attempt in range(100):
        other = Worker(port, pids)
        if other.pid != first.pid:
            return first, other
        spare.append(other)
    raise AssertionError(f"100 connections, all accepted by worker {first.pid}")


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_two_workers_count_and_log_every_request(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "srv", env={"AUDIOCACHE_PIPER_ENABLED": "false"}, workers=2)
    created = server.cli(
        "keys",
        "create",
        "--account",
        "acme",
        "--grant",
        "agents:write",
        "--grant",
        "audio_cache:read",
        "--grant",
        "audio_cache:write",
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    key_id = (created.stdout + created.stderr).split("key id ", 1)[1].split()[0]
    server.start()
    try:
        assert server.process is not None
        pids = [p.pid for p in psutil.Process(server.process.pid).children()]
        a, b = _workers_on_each_process(server.port, pids)
        agent = {
            "name": "Bot",
            "agentId": "bot",
            "responseSettings": {"greeting": "hi"},
            "voiceSettings": {"voiceId": "en-us"},
        }
        assert a.request("POST", "/v1/accounts/acme/agents", AGENTS_ROUTE, key, agent).status == 200
        policy = {"admission": "always", "personalData": "cache"}
        assert (
            a.request("PUT", "/v1/agents/bot/cache-policy", POLICY_ROUTE, key, policy).status == 200
        )
        say = "/v1/agents/bot/tts"
        miss = a.request("POST", say, SPEAK_ROUTE, key, {"text": "Phrase one"})
        assert miss.status == 200 and miss.headers["x-audio-cache"] == "miss"
        assert (
            a.request("POST", say, SPEAK_ROUTE, key, {"text": "Phrase one"}).headers[
                "x-audio-cache"
            ]
            == "hit"
        )
        hit = b.request("POST", say, SPEAK_ROUTE, key, {"text": "Phrase one"})
        assert hit.status == 200 and hit.headers["x-audio-cache"] == "hit"
        assert (
            b.request("POST", say, SPEAK_ROUTE, key, {"text": "Phrase two"}).headers[
                "x-audio-cache"
            ]
            == "miss"
        )
        entry = miss.headers["x-audio-cache-entry-id"]
        file = b.request("GET", f"/v1/agents/bot/audio-cache/{entry}/file", FILE_ROUTE, key)
        assert file.status == 200 and file.body == miss.body
        assert b.request("GET", "/v1/agents/bot/audio-cache", LIST_ROUTE, key).status == 200
        assert b.request("GET", "/v1/agents/bot/audio-cache", LIST_ROUTE, None).status == 401
        assert a.request("GET", "/no/such/route", "unmatched", key).status == 404
        scrape = a.request("GET", "/metrics", "/metrics", None)
        assert scrape.status == 200
    finally:
        server.stop()
    before_scrape = [s for s in a.sent + b.sent if s is not scrape]
    samples = _samples(scrape.body.decode())

    def requests(route: str, status: int) -> float:
        labels = frozenset({"route": route, "status": str(status)}.items())
        return samples.get(("audiocache_requests_total", labels), 0.0)

    # LiveServer.start's one successful /healthz, our two, and any spare connection's
    spare = int(requests("/healthz", 200)) - 3
    assert spare >= 0
    assert requests(AGENTS_ROUTE, 200) == 1
    assert requests(POLICY_ROUTE, 200) == 1
    assert requests(SPEAK_ROUTE, 200) == 4
    assert requests(FILE_ROUTE, 200) == 1
    assert requests(LIST_ROUTE, 200) == 1
    assert requests(LIST_ROUTE, 401) == 1
    assert requests("unmatched", 404) == 1
    assert requests("/metrics", 200) == 0  # the scrape itself is counted once it is done

    def lookups(result: str) -> float:
        labels = frozenset({"agent": "bot", "result": result}.items())
        return samples.get(("audiocache_cache_lookups_total", labels), 0.0)

    assert (lookups("hit"), lookups("miss")) == (2, 2)
    healthz_bytes = len(a.sent[0].body)
    sent_bytes = sum(len(s.body) for s in before_scrape) + (1 + spare) * healthz_bytes
    assert samples[("audiocache_bytes_served_total", frozenset())] == sent_bytes

    # The access log: one line per request, both workers', the scrape's too.
    log = server.log_path.read_text()
    assert key not in log, "the key must never be logged"
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = {
        line["correlation_id"]: line for line in lines if line["logger"] == "audiocache.access"
    }
    ours = a.sent + b.sent
    assert {s.pid for s in ours} == {a.pid, b.pid} and a.pid != b.pid
    for s in ours:
        line = access.pop(s.correlation_id)
        assert (line["method"], line["route"], line["status"], line["pid"]) == (
            s.method,
            s.route,
            s.status,
            s.pid,
        ), line
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0, line
        assert line["key_id"] == (key_id if s.authenticated and s.status != 404 else None), line
        assert line["bytes"] == len(s.body)
    # what is left: LiveServer.start's /healthz and the spare connections' ones
    assert len(access) == 1 + spare, access
    assert {(line["route"], line["status"]) for line in access.values()} == {("/healthz", 200)}
