"""``parse_plain`` (api/lane_request.py) reads a request without httptools only when it is
a request httptools reads the same way: one whole HTTP/1.1 message, same method, target,
fields and body, kept alive. Checked on a corpus and on generated and mutated requests."""

from __future__ import annotations

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiocache.api.lane_request import parse_plain

MAX_FIELDS = 30
MAX_HEAD = 8192
KEY = b"ack_0123456789abcdef0123456789abcdef0123"
BODY = b'{"text":"Please hold while I check that for you."}'
POST = (
    b"POST /v1/agents/bot/tts HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    b"Content-Length: %d\r\nContent-Type: application/json\r\nX-API-KEY: %s\r\n\r\n%s"
    % (len(BODY), KEY, BODY)
)
GET = b"GET /v1/agents/bot/audio-cache/1/file HTTP/1.1\r\nHost: x\r\nX-API-KEY: %s\r\n\r\n" % KEY


class _Messages:
    """What httptools makes of some bytes, field by field as uvicorn keeps them."""

    def __init__(self) -> None:
        self.done: list[tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes, bool]] = []
        self.parser = httptools.HttpRequestParser(self)

    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", [], b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value.rstrip(b" \t")))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        p = self.parser
        kept = p.get_http_version() == "1.1" and p.should_keep_alive() and not p.should_upgrade()
        self.done.append((p.get_method(), self.url, self.headers, self.body, kept))


def httptools_reads(
    data: bytes,
) -> list[tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes, bool]]:
    messages = _Messages()
    try:
        messages.parser.feed_data(data)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return []
    return messages.done


def assert_read_as_httptools_reads(data: bytes) -> None:
    plain = parse_plain(data, MAX_FIELDS, MAX_HEAD)
    if plain is None:
        return
    assert httptools_reads(data) == [(*plain, True)], data


@pytest.mark.parametrize(
    "data",
    [
        GET,
        GET.replace(b"GET", b"HEAD", 1),
        POST,
        GET.replace(b"Host: x", b"Connection: keep-alive"),
        GET.replace(b"Host: x", b"Connection: Keep-Alive"),
        GET.replace(b"Host: x", b"Host:x \t"),
        GET.replace(b"Host: x", b"Accept: audio/wav;q=1, */*"),
        GET.replace(b"Host: x", b"X-Note: caf\xe9"),  # obs-text in a value
        GET.replace(b"Host: x", b"X-Empty:"),
        b"GET / HTTP/1.1\r\n\r\n",
    ],
)
def test_a_plain_request_is_read_as_httptools_reads_it(data: bytes) -> None:
    plain = parse_plain(data, MAX_FIELDS, MAX_HEAD)
    assert plain is not None
    assert httptools_reads(data) == [(*plain, True)]


def test_fields_come_lower_cased_without_surrounding_whitespace() -> None:
    plain = parse_plain(GET.replace(b"Host: x", b"Accept:  \taudio/wav \t"), 30, MAX_HEAD)
    assert plain is not None
    method, target, headers, body = plain
    assert headers == [(b"accept", b"audio/wav"), (b"x-api-key", KEY)]
    assert (method, target, body) == (b"GET", b"/v1/agents/bot/audio-cache/1/file", b"")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (POST[:-1], "the body is not all in"),
        (POST + b"x", "more than the declared body"),
        (GET[:-2], "the head is not all in"),
        (GET + GET, "a second request behind the first"),
        (GET.replace(b"HTTP/1.1", b"HTTP/1.0"), "HTTP/1.0"),
        (GET.replace(b"Host: x", b"Connection: close"), "connection: close"),
        (GET.replace(b"Host: x", b"Connection: keep-alive, Upgrade"), "a connection list"),
        (GET.replace(b"Host: x", b"Upgrade: websocket"), "upgrade"),
        (GET.replace(b"Host: x", b"Expect: 100-continue"), "expect"),
        (POST.replace(b"Content-Length: 50", b"Transfer-Encoding: chunked"), "chunked"),
        (POST.replace(b"Host: 127.0.0.1:8080", b"Content-Length: 50"), "two lengths"),
        (POST.replace(b"Content-Length: 50", b"Content-Length: +50"), "a signed length"),
        (GET.replace(b"Host: x", b"Host : x"), "whitespace before the colon"),
        (GET.replace(b"Host: x", b"Host: x\r\n y"), "obs-fold"),
        (GET.replace(b"Host: x", b"Host: x\ny: z"), "a bare LF"),
        (GET.replace(b"Host: x", b"Host: x\ry"), "a bare CR"),
        (GET.replace(b"Host: x", b"Host: x\x00"), "a NUL"),
        (GET.replace(b"Host: x", b"Host: x\x7f"), "DEL"),
        (GET.replace(b"Host: x", b"H\xe9st: x"), "a name that is not a token"),
        (GET.replace(b"Host: x", b": x"), "an empty name"),
        (GET.replace(b"\r\n", b"\n"), "LF line ends"),
        (GET.replace(b"GET ", b"PUT "), "a method the lane never answers"),
        (GET.replace(b"GET ", b"get "), "a lower-case method"),
        (GET.replace(b" HTTP", b"  HTTP"), "two spaces"),
        (GET.replace(b"/v1/", b"/v1 /"), "a space in the target"),
        (GET.replace(b"/v1/", b"http://x/v1/"), "an absolute-form target"),
        (GET.replace(b"/v1/", b"/v1/\xe9"), "a non-ASCII target"),
        (GET.replace(b"Host: x", b"X: " + b"y" * MAX_HEAD), "a head over the limit"),
        (
            GET.replace(b"Host: x", b"\r\n".join(b"X%d: y" % i for i in range(MAX_FIELDS))),
            "more fields than the limit",
        ),
    ],
)
def test_anything_else_is_left_to_httptools(data: bytes, why: str) -> None:
    assert parse_plain(data, MAX_FIELDS, MAX_HEAD) is None, why


def test_the_field_limit_counts_what_httptools_would_count() -> None:
    fields = b"\r\n".join(b"X%d: y" % i for i in range(MAX_FIELDS - 1))
    assert parse_plain(GET.replace(b"Host: x", fields), MAX_FIELDS, MAX_HEAD) is not None


_NAMES = st.sampled_from(
    [b"Host", b"X-API-KEY", b"Accept", b"Content-Length", b"Connection", b"content-length",
     b"Transfer-Encoding", b"Upgrade", b"Expect", b"X Y", b"X:Y", b"", b"\xff", b"X\x00"]
)  # fmt: skip
_VALUES = st.one_of(
    st.sampled_from([b"0", b"5", b"50", b"keep-alive", b"close", b"chunked", b" 5 ", b"-1"]),
    st.binary(max_size=12),
)
_LINE_ENDS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\r\n "])


@settings(max_examples=1500, deadline=None)
@given(
    method=st.sampled_from([b"GET", b"HEAD", b"POST", b"PUT", b"G T", b""]),
    target=st.one_of(
        st.sampled_from([b"/v1/agents/a/tts", b"/", b"*", b"/a?b"]), st.binary(max_size=8)
    ),
    version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b"HTTP/1.1 "]),
    fields=st.lists(st.tuples(_NAMES, _VALUES, _LINE_ENDS), max_size=5),
    body=st.binary(max_size=8),
)
def test_generated_requests_are_read_as_httptools_reads_them_or_not_at_all(
    method: bytes,
    target: bytes,
    version: bytes,
    fields: list[tuple[bytes, bytes, bytes]],
    body: bytes,
) -> None:
    head = method + b" " + target + b" " + version + b"\r\n"
    head += b"".join(name + b":" + value + end for name, value, end in fields)
    assert_read_as_httptools_reads(head + b"\r\n" + body)


@settings(max_examples=1500, deadline=None)
@given(
    base=st.sampled_from([GET, POST]),
    at=st.integers(min_value=0, max_value=len(POST)),
    cut=st.integers(min_value=0, max_value=3),
    insert=st.binary(max_size=3),
)
def test_mutated_requests_are_read_as_httptools_reads_them_or_not_at_all(
    base: bytes, at: int, cut: int, insert: bytes
) -> None:
    assert_read_as_httptools_reads(base[:at] + insert + base[at + cut :])
