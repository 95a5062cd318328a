"""A whole request in one read, parsed without the HTTP parser's callbacks, if it is plain.

The hot lane (``api/hot_lane.py``) answers from memory in a few microseconds; feeding the
same request through httptools costs as much again, in Python callbacks (message begin,
URL, each header, headers complete, body, message complete) and in the timers uvicorn
cancels and re-arms around each one. A runtime's hit is nearly always the plainest of
requests, alone in one read: ``parse_plain`` reads exactly that shape and nothing else.

It is deliberately narrow. It says None — and the bytes go to httptools as they would
have, nothing consumed — for anything that is not, byte for byte, a request httptools
accepts with the same meaning: a partial head or body, a second request behind the first,
HTTP/1.0, a ``Connection`` other than ``keep-alive``, any ``Transfer-Encoding``, ``Expect``
or ``Upgrade`` field, a repeated or non-numeric ``Content-Length``, a control character, a
bare CR or LF, obs-fold, whitespace before a colon, more fields or head bytes than the
server's limits (httptools then refuses them with 431, as always).
"""

from __future__ import annotations

import re

# The whole head in one pass: request line, fields (a token, a colon, a value of visible
# characters, spaces, tabs and obs-text: no control character, no bare CR or LF, no
# obs-fold), the empty line.
_HEAD = re.compile(
    rb"(GET|HEAD|POST) (/[\x21-\x7e]*) HTTP/1\.1"
    rb"((?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*)*)\r\n\r\n"
)
_FIELD = re.compile(rb"\r\n([^:]+):[ \t]*([^\r]*)")
# Fields that change how the message is framed or the connection is kept: httptools'.
# (``Connection: keep-alive``, which HTTP/1.1 clients such as httpx send, changes nothing.)
_FRAMING = frozenset((b"transfer-encoding", b"expect", b"upgrade"))


# method, target, fields (names lower-cased, values without surrounding whitespace), body.
# A plain tuple: made once per request, for a few microseconds.
PlainRequest = tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]


def parse_plain(data: bytes, max_fields: int, max_head_bytes: int) -> PlainRequest | None:
    """The one HTTP/1.1 request ``data`` holds in full, or None (see the module's doc)."""
    head = _HEAD.match(data, 0, max_head_bytes + 4)
    if head is None:
        return None
    headers: list[tuple[bytes, bytes]] = []
    declared: bytes | None = None
    for name, value in _FIELD.findall(head[3]):
        name = name.lower()
        if name in _FRAMING:
            return None
        value = value.rstrip(b" \t")
        if name == b"connection" and value.lower() != b"keep-alive":
            return None
        if name == b"content-length":
            if declared is not None or not value.isdigit():
                return None
            declared = value
        headers.append((name, value))
    if len(headers) > max_fields:
        return None
    body = data[head.end() :]
    if len(body) != (int(declared) if declared is not None else 0):
        return None  # more to come, or a second request behind this one
    return head[1], head[2], headers, body
