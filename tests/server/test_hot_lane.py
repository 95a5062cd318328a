"""The hot lane (``api/hot_lane.py``) under a real ``audiocache serve``: a repeated download
or runtime-path hit is answered by the server's protocol from memory, byte for byte as the
app answers it; counted and logged the same; never after a change another instance made;
in order when requests are pipelined; and a request whose body comes in pieces goes the
usual way. Two servers share one data folder: ``lane`` (the default) and ``plain``
(``AUDIOCACHE_HOT_LANE=false``), the reference and the "other instance"."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import LiveServer, sine_wav

pytestmark = pytest.mark.slow

IGNORED = {"date", "x-polyai-correlation-id"}
SAY = "/v1/agents/bot/tts"
PHRASE = {"text": "Thanks for calling, how can I help?"}


class World:
    def __init__(self, lane: LiveServer, plain: LiveServer, key: str, key_id: str) -> None:
        self.lane, self.plain = lane, plain
        self.key, self.key_id = key, key_id
        self.headers = {"X-API-KEY": key}
        self.entry = ""

    def file_path(self, entry: str | None = None) -> str:
        return f"/v1/agents/bot/audio-cache/{entry or self.entry}/file"


def _env(**extra: str) -> dict[str, str]:
    # no background flush between the requests of a test unless it asks for one
    return {"AUDIOCACHE_PIPER_ENABLED": "false", "AUDIOCACHE_HIT_FLUSH_SECONDS": "600", **extra}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("lane")
    lane = LiveServer(data, env=_env())
    plain = LiveServer(data, env=_env(AUDIOCACHE_HOT_LANE="false"))
    created = lane.cli(
        "keys", "create", "--account", "acme", "--grant", "agents:write",
        "--grant", "audio_cache:read", "--grant", "audio_cache:write",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    key_id = (created.stdout + created.stderr).split("key id ", 1)[1].split()[0]
    lane.start(timeout=60)
    plain.start(timeout=60)
    try:
        w = World(lane, plain, key, key_id)
        agent = {
            "name": "Bot",
            "agentId": "bot",
            "responseSettings": {"greeting": "hi"},
            "voiceSettings": {"voiceId": "en-us"},
        }
        policy = {"admission": "always", "personalData": "cache"}
        with httpx.Client(base_url=plain.url, headers=w.headers, timeout=30) as client:
            assert client.post("/v1/accounts/acme/agents", json=agent).status_code == 200
            assert client.put("/v1/agents/bot/cache-policy", json=policy).status_code == 200
            miss = client.post(SAY, json=PHRASE)
            assert miss.headers["x-audio-cache"] == "miss"
            w.entry = miss.headers["x-audio-cache-entry-id"]
        yield w
    finally:
        lane.stop()
        plain.stop()


def lane_answers(server: LiveServer) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "audiocache_hot_lane_answers_total":
                return sample.value
    raise AssertionError("no audiocache_hot_lane_answers_total in /metrics")


def _answered_by_the_lane(
    server: LiveServer, send: Callable[[], httpx.Response], tries: int = 5
) -> httpx.Response:
    """The first response the lane answered (a commit of a background task, e.g. the audit
    log's flush, may empty the memo once in between: the next request fills it again)."""
    for _ in range(tries):
        before = lane_answers(server)
        response = send()
        if lane_answers(server) - before == 1:
            return response
    raise AssertionError(f"the lane answered none of {tries} repeated requests")


def comparable(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(k, v) for k, v in response.headers.multi_items() if k not in IGNORED]
    return response.status_code, headers, response.content


def test_a_repeated_download_and_hit_are_answered_by_the_lane_as_the_app_answers_them(
    world: World,
) -> None:
    with (
        httpx.Client(base_url=world.lane.url, headers=world.headers, timeout=30) as lane,
        httpx.Client(base_url=world.plain.url, headers=world.headers, timeout=30) as plain,
    ):
        for method, path, body in (
            ("GET", world.file_path(), None),
            ("HEAD", world.file_path(), None),
            ("POST", SAY, PHRASE),
        ):
            first = lane.request(method, path, json=body)  # the usual way; fills the memo
            again = _answered_by_the_lane(
                world.lane,
                lambda m=method, p=path, b=body: lane.request(  # type: ignore[misc]
                    m, p, json=b, headers={"X-PolyAI-Correlation-Id": "c-1"}
                ),
            )
            reference = plain.request(method, path, json=body)
            assert comparable(again) == comparable(first) == comparable(reference), method
            assert again.headers["x-polyai-correlation-id"] == "c-1"
            assert again.headers["date"] and again.headers["server"] == "uvicorn"
            if method == "POST":
                assert again.headers["x-audio-cache"] == "hit"


def test_the_lane_answers_only_what_the_memo_holds_whole(world: World) -> None:
    """Errors, ranges, conditional requests and queries go the usual way, every time."""
    with httpx.Client(base_url=world.lane.url, timeout=30) as lane:
        path = world.file_path()
        assert lane.get(path, headers=world.headers).status_code == 200
        etag = lane.get(path, headers=world.headers).headers["etag"]
        before = lane_answers(world.lane)
        for _ in range(2):
            assert lane.get(path).status_code == 401
            assert lane.get(path, headers={"X-API-KEY": "nope"}).status_code == 401
            ranged = lane.get(path, headers={**world.headers, "Range": "bytes=0-9"})
            assert ranged.status_code == 206 and len(ranged.content) == 10
            cached = lane.get(path, headers={**world.headers, "If-None-Match": etag})
            assert cached.status_code == 304
            query = lane.get(path + "?output_format=wav_8000", headers=world.headers)
            assert query.status_code == 200
            assert lane.get(world.file_path("999999"), headers=world.headers).status_code == 404
        assert lane_answers(world.lane) == before


def test_a_change_on_another_instance_is_seen_by_the_lane_at_the_next_request(
    world: World,
) -> None:
    created = world.plain.cli("keys", "create", "--account", "acme", "--grant", "audio_cache:read")
    key = created.stdout.strip().splitlines()[-1]
    key_id = (created.stdout + created.stderr).split("key id ", 1)[1].split()[0]
    with (
        httpx.Client(base_url=world.lane.url, timeout=30) as lane,
        httpx.Client(base_url=world.plain.url, headers=world.headers, timeout=30) as plain,
    ):
        other = plain.post(SAY, json={"text": "Let me transfer you now."})
        other_path = world.file_path(other.headers["x-audio-cache-entry-id"])
        reader = {"X-API-KEY": key}
        for _ in range(2):
            assert lane.get(other_path, headers=reader).status_code == 200
        held = _answered_by_the_lane(world.lane, lambda: lane.get(other_path, headers=reader))
        assert held.status_code == 200  # the lane holds it
        assert world.plain.cli("keys", "revoke", key_id).returncode == 0
        assert lane.get(other_path, headers=reader).status_code == 401
        for _ in range(2):
            assert lane.get(other_path, headers=world.headers).status_code == 200
        assert plain.delete(other_path.removesuffix("/file")).status_code in (200, 204)
        assert lane.get(other_path, headers=world.headers).status_code == 404


def test_hits_answered_by_the_lane_are_counted_as_hits(world: World) -> None:
    with httpx.Client(base_url=world.lane.url, headers=world.headers, timeout=30) as lane:
        text = {"text": "Please hold while I check that for you."}
        assert lane.post(SAY, json=text).headers["x-audio-cache"] in ("miss", "hit")
        entry = lane.post(SAY, json=text).headers["x-audio-cache-entry-id"]
        before_lane = lane_answers(world.lane)
        for _ in range(5):
            assert lane.post(SAY, json=text).headers["x-audio-cache"] == "hit"
        assert lane_answers(world.lane) - before_lane >= 3  # most; a flush may cost one or two
    # The lane server flushes its hit counts when it stops; a restart reads them back.
    world.lane.stop()
    world.lane.start(timeout=60)
    listed = httpx.get(
        f"{world.plain.url}/v1/agents/bot/audio-cache", headers=world.headers, timeout=30
    ).json()
    [counted] = [e for e in listed["entries"] if e["id"] == entry]
    assert counted["hitCount"] == 6, counted  # the hit before the five, and the five


def _raw(server: LiveServer, payload: bytes, *, pause_after: int | None = None) -> bytes:
    """Send ``payload`` (optionally in two writes, a pause between) and read until the server
    closes the connection or 3 s pass without a byte."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
        if pause_after is None:
            sock.sendall(payload)
        else:
            sock.sendall(payload[:pause_after])
            time.sleep(
                0.6
            )  # longer than the lane holds a request (AUDIOCACHE_HOT_LANE_HOLD_SECONDS, 0.25)
            sock.sendall(payload[pause_after:])
        received = bytearray()
        try:
            while chunk := sock.recv(1 << 16):
                received += chunk
        except TimeoutError:
            pass
        return bytes(received)


def _responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    found = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        size = int(headers.get("content-length", "0"))
        found.append((int(lines[0].split()[1]), headers, rest[:size]))
        raw = rest[size:]
    return found


def test_pipelined_requests_are_answered_in_order(world: World) -> None:
    path = world.file_path()
    expected = httpx.get(world.lane.url + path, headers=world.headers, timeout=30).content
    head = f"GET {path} HTTP/1.1\r\nHost: x\r\nX-API-KEY: {world.key}\r\n"
    requests = [head + f"X-PolyAI-Correlation-Id: n-{n}\r\n\r\n" for n in range(40)]
    requests[10] = "GET /no/such/thing HTTP/1.1\r\nHost: x\r\nX-PolyAI-Correlation-Id: n-10\r\n\r\n"
    requests[-1] = requests[-1].replace("Host: x", "Host: x\r\nConnection: close")
    for _ in range(3):  # until the lane answered some (a background commit may empty the memo)
        before = lane_answers(world.lane)
        answers = _responses(_raw(world.lane, "".join(requests).encode()))
        assert [a[1]["x-polyai-correlation-id"] for a in answers] == [f"n-{n}" for n in range(40)]
        assert [a[0] for a in answers] == [404 if n == 10 else 200 for n in range(40)]
        assert all(a[2] == expected for n, a in enumerate(answers) if n != 10)
        assert answers[-1][1]["connection"] == "close"
        if lane_answers(world.lane) > before:
            return
    raise AssertionError("the lane answered none of the pipelined requests")


def test_a_body_in_pieces_and_http_1_0_are_answered_correctly(world: World) -> None:
    body = json.dumps(PHRASE).encode()
    expected = httpx.post(world.lane.url + SAY, json=PHRASE, headers=world.headers, timeout=30)
    request = (
        f"POST {SAY} HTTP/1.1\r\nHost: x\r\nX-API-KEY: {world.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    before = lane_answers(world.lane)
    [(status, headers, content)] = _responses(
        _raw(world.lane, request, pause_after=len(request) - 5)
    )
    assert (status, headers["x-audio-cache"], content) == (200, "hit", expected.content)
    assert lane_answers(world.lane) == before  # the body came in two reads: the usual way
    old = f"GET {world.file_path()} HTTP/1.0\r\nX-API-KEY: {world.key}\r\n\r\n".encode()
    whole = httpx.get(world.lane.url + world.file_path(), headers=world.headers).content
    for _ in range(5):
        before = lane_answers(world.lane)
        [(status, headers, content)] = _responses(_raw(world.lane, old))  # closed by the server
        assert status == 200 and headers["connection"] == "close" and content == whole
        if lane_answers(world.lane) - before == 1:
            return
    raise AssertionError("the lane answered no HTTP/1.0 request")


def test_a_large_take_is_sent_whole_when_the_socket_takes_only_part_of_it(world: World) -> None:
    """3 MB (the memo keeps blobs up to 4 MiB): more than one ``sendfile`` places in a
    socket buffer, so the rest goes through the transport; a slow reader too."""
    wav = sine_wav(seconds=95, rate=16000)
    with httpx.Client(base_url=world.plain.url, headers=world.headers, timeout=30) as plain:
        made = plain.post(SAY, json={"text": "A very long announcement follows."})
        path = world.file_path(made.headers["x-audio-cache-entry-id"])
        headers = {"Content-Type": "audio/wav"}
        assert plain.patch(path, content=wav, headers=headers).status_code == 204
    with httpx.Client(base_url=world.lane.url, headers=world.headers, timeout=30) as lane:
        assert lane.get(path).content == wav
        assert _answered_by_the_lane(world.lane, lambda: lane.get(path)).content == wav
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nX-API-KEY: {world.key}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", world.lane.port), timeout=10) as sock:
        for _ in range(2):
            sock.sendall(request)
            time.sleep(0.2)  # not reading: the server's socket buffer fills
            received = bytearray()
            while b"\r\n\r\n" not in received:
                received += sock.recv(65536)
            head, _, rest = bytes(received).partition(b"\r\n\r\n")
            size = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = bytearray(rest)
            while len(body) < size:
                body += sock.recv(1 << 20)
            assert size == len(wav) and body == wav
