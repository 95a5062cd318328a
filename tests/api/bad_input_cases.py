"""The bad inputs of ``test_bad_input.py``: a case per endpoint and fault."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from bad_input_bodies import (
    AGENT,
    BASE,
    BOUNDARY,
    JSON_BODY,
    JSON_TYPE,
    LONG_TEXT,
    MIB,
    MP3,
    MULTIPART,
    OGG,
    SETTINGS_OK,
    TEXT,
    WAV_TYPE,
    chunked,
    details,
    float_wav,
    fmt_after_data,
    lying_block_align,
    lying_byte_rate,
    lying_data_size,
    lying_riff_size,
    multipart,
    oversized_wav,
    small_wav,
    truncated_wav,
    zero_channels,
)

# -- the cases -----------------------------------------------------------------------------


@dataclass
class Case:
    method: str
    path: str  # "{entry}" is the seeded entry's URL, "{base}" the agent's audio cache
    code: str | set[str] | None
    body: Callable[[], bytes] | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: Any = None
    stream: bool = False  # send the body as an async generator (no Content-Length)
    status: int = 400

    async def send(self, seeded: Any):  # type: ignore[no-untyped-def]  # a test_bad_input.Seeded
        api = seeded.api
        url = self.path.format(entry=seeded.entry_url, base=BASE, agent=AGENT)
        content: Any = self.body() if callable(self.body) else self.body
        if self.stream and content is not None:
            content = chunked(content)
        return await api.client.request(
            self.method,
            url,
            content=content,
            params=self.params,
            headers={**api.headers, **self.headers},
        )


def case(name: str, *args: Any, **kwargs: Any) -> Any:
    return pytest.param(Case(*args, **kwargs), id=name)


def json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


PATCH_FILE = "{entry}/file"
PUT_DETAILS = "{entry}/details"
SYNTH = "{entry}/synthesize"
BULK = "{base}/bulk-delete"
TTS = "/v1/agents/{agent}/tts"
LIST = "{base}"
SETTINGS_CODES = {"INVALID_REQUEST", "INVALID_SETTINGS"}
TEXT_CODES = {"INVALID_TEXT", "INVALID_REQUEST"}

FILE_CASES = [
    case("too-large", "PATCH", PATCH_FILE, "PAYLOAD_TOO_LARGE", oversized_wav, WAV_TYPE),
    case(
        "too-large-chunked",
        "PATCH",
        PATCH_FILE,
        "PAYLOAD_TOO_LARGE",
        oversized_wav,
        WAV_TYPE,
        stream=True,
    ),
    case("empty", "PATCH", PATCH_FILE, "EMPTY_PAYLOAD", b"", WAV_TYPE),
    case("empty-chunked", "PATCH", PATCH_FILE, "EMPTY_PAYLOAD", b"", WAV_TYPE, stream=True),
    case("truncated", "PATCH", PATCH_FILE, "INVALID_AUDIO", truncated_wav, WAV_TYPE),
    case("header-only", "PATCH", PATCH_FILE, "INVALID_AUDIO", lambda: small_wav()[:44]),
    case("mp3", "PATCH", PATCH_FILE, "INVALID_AUDIO", MP3, {"Content-Type": "audio/mpeg"}),
    case("ogg", "PATCH", PATCH_FILE, "INVALID_AUDIO", OGG, {"Content-Type": "audio/ogg"}),
    case("text", "PATCH", PATCH_FILE, "INVALID_AUDIO", TEXT, {"Content-Type": "text/plain"}),
    case("json", "PATCH", PATCH_FILE, "INVALID_AUDIO", JSON_BODY, JSON_TYPE),
    case("mp3-as-wav", "PATCH", PATCH_FILE, "INVALID_AUDIO", MP3, WAV_TYPE),
    case("lying-byte-rate", "PATCH", PATCH_FILE, "INVALID_AUDIO", lying_byte_rate, WAV_TYPE),
    case("lying-block-align", "PATCH", PATCH_FILE, "INVALID_AUDIO", lying_block_align),
    case("lying-data-size", "PATCH", PATCH_FILE, "INVALID_AUDIO", lying_data_size, WAV_TYPE),
    case("lying-riff-size", "PATCH", PATCH_FILE, "INVALID_AUDIO", lying_riff_size, WAV_TYPE),
    case("fmt-after-data", "PATCH", PATCH_FILE, "INVALID_AUDIO", fmt_after_data, WAV_TYPE),
    case("float-format", "PATCH", PATCH_FILE, "INVALID_AUDIO", float_wav, WAV_TYPE),
    case("zero-channels", "PATCH", PATCH_FILE, "INVALID_AUDIO", zero_channels, WAV_TYPE),
    case(
        "bad-wav-and-traversal-name",
        "PATCH",
        PATCH_FILE,
        "INVALID_AUDIO",
        TEXT,
        {**WAV_TYPE, "X-Filename": "../../etc/passwd"},
    ),
]

DETAILS_CASES = [
    case("missing-file", "PUT", PUT_DETAILS, None, lambda: details(None), MULTIPART),
    case(
        "file-as-plain-field",
        "PUT",
        PUT_DETAILS,
        None,
        lambda: multipart([("file", None, small_wav()), ("settings", None, b"{}")]),
        MULTIPART,
    ),
    case(
        "missing-settings",
        "PUT",
        PUT_DETAILS,
        None,
        lambda: details(small_wav(), None),
        MULTIPART,
    ),
    case(
        "settings-not-json",
        "PUT",
        PUT_DETAILS,
        SETTINGS_CODES,
        lambda: details(small_wav(), "{not json"),
        MULTIPART,
    ),
    case(
        "settings-a-list",
        "PUT",
        PUT_DETAILS,
        SETTINGS_CODES,
        lambda: details(small_wav(), "[1, 2]"),
        MULTIPART,
    ),
    case(
        "settings-text-missing",
        "PUT",
        PUT_DETAILS,
        SETTINGS_CODES,
        lambda: details(small_wav(), json.dumps({"config": {}})),
        MULTIPART,
    ),
    case(
        "settings-config-missing",
        "PUT",
        PUT_DETAILS,
        SETTINGS_CODES,
        lambda: details(small_wav(), json.dumps({"text": "x"})),
        MULTIPART,
    ),
    case(
        "settings-config-not-object",
        "PUT",
        PUT_DETAILS,
        SETTINGS_CODES,
        lambda: details(small_wav(), json.dumps({"text": "x", "config": "fast"})),
        MULTIPART,
    ),
    case(
        "settings-speed-negative",
        "PUT",
        PUT_DETAILS,
        SETTINGS_CODES,
        lambda: details(small_wav(), json.dumps({"text": "x", "config": {"speed": -1}})),
        MULTIPART,
    ),
    case(
        "settings-text-not-string",
        "PUT",
        PUT_DETAILS,
        SETTINGS_CODES,
        lambda: details(small_wav(), json.dumps({"text": 5, "config": {}})),
        MULTIPART,
    ),
    case(
        "settings-text-10000",
        "PUT",
        PUT_DETAILS,
        "INVALID_TEXT",
        lambda: details(small_wav(), json.dumps({"text": LONG_TEXT, "config": {}})),
        MULTIPART,
    ),
    case(
        "settings-text-whitespace",
        "PUT",
        PUT_DETAILS,
        "INVALID_TEXT",
        lambda: details(small_wav(), json.dumps({"text": " \n\t ", "config": {}})),
        MULTIPART,
    ),
    case(
        "settings-text-surrogate",
        "PUT",
        PUT_DETAILS,
        "INVALID_SETTINGS",
        lambda: details(small_wav(), '{"text": "a\\ud800b", "config": {}}'),
        MULTIPART,
    ),
    case(
        "file-too-large",
        "PUT",
        PUT_DETAILS,
        "PAYLOAD_TOO_LARGE",
        lambda: details(oversized_wav()),
        MULTIPART,
    ),
    case(
        "file-too-large-chunked",
        "PUT",
        PUT_DETAILS,
        "PAYLOAD_TOO_LARGE",
        lambda: details(oversized_wav()),
        MULTIPART,
        stream=True,
    ),
    case("file-empty", "PUT", PUT_DETAILS, "EMPTY_PAYLOAD", lambda: details(b""), MULTIPART),
    case("file-not-wav", "PUT", PUT_DETAILS, "INVALID_AUDIO", lambda: details(MP3), MULTIPART),
    case(
        "file-truncated-wav",
        "PUT",
        PUT_DETAILS,
        "INVALID_AUDIO",
        lambda: details(truncated_wav()),
        MULTIPART,
    ),
    case(
        "not-multipart-json",
        "PUT",
        PUT_DETAILS,
        None,
        lambda: json_bytes({"text": "x", "config": {}}),
        JSON_TYPE,
    ),
    case("not-multipart-wav", "PUT", PUT_DETAILS, None, small_wav, WAV_TYPE),
    case("no-content-type", "PUT", PUT_DETAILS, None, lambda: details(small_wav())),
    case(
        "multipart-without-boundary",
        "PUT",
        PUT_DETAILS,
        None,
        lambda: details(small_wav()),
        {"Content-Type": "multipart/form-data"},
    ),
    case(
        "multipart-unclosed",
        "PUT",
        PUT_DETAILS,
        None,
        lambda: details(small_wav(), close=False),
        MULTIPART,
    ),
    case(
        "multipart-cut-in-file",
        "PUT",
        PUT_DETAILS,
        None,
        lambda: (
            multipart([("settings", None, SETTINGS_OK.encode())], close=False)
            + f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            'filename="a.wav"\r\n\r\n'.encode()
            + small_wav()[:2000]
        ),
        MULTIPART,
    ),
    case(
        "multipart-wrong-boundary",
        "PUT",
        PUT_DETAILS,
        None,
        lambda: details(small_wav(), boundary="some-other-boundary"),
        MULTIPART,
    ),
    case("multipart-garbage", "PUT", PUT_DETAILS, None, TEXT, MULTIPART),
    case("multipart-empty", "PUT", PUT_DETAILS, None, b"", MULTIPART),
]


def json_cases(name: str, path: str, valid: dict[str, Any]) -> list[Any]:
    """Malformed JSON bodies that every JSON endpoint refuses the same way."""
    big = {**valid, "text": "a" * (MIB + 1)}
    return [
        case(f"{name}-invalid-json", "POST", path, "INVALID_REQUEST", b'{"text": ', JSON_TYPE),
        case(f"{name}-not-utf8", "POST", path, "INVALID_REQUEST", b'{"text": "\xff\xfe"}'),
        case(f"{name}-list", "POST", path, "INVALID_REQUEST", json_bytes([valid]), JSON_TYPE),
        case(f"{name}-string", "POST", path, "INVALID_REQUEST", json_bytes("hello"), JSON_TYPE),
        case(f"{name}-number", "POST", path, "INVALID_REQUEST", b"42", JSON_TYPE),
        case(f"{name}-null", "POST", path, "INVALID_REQUEST", b"null", JSON_TYPE),
        case(f"{name}-empty-object", "POST", path, "INVALID_REQUEST", b"{}", JSON_TYPE),
        case(f"{name}-empty-body", "POST", path, "EMPTY_PAYLOAD", b"", JSON_TYPE),
        case(f"{name}-over-1mib", "POST", path, "PAYLOAD_TOO_LARGE", json_bytes(big), JSON_TYPE),
        case(
            f"{name}-over-1mib-chunked",
            "POST",
            path,
            "PAYLOAD_TOO_LARGE",
            json_bytes(big),
            JSON_TYPE,
            stream=True,
        ),
    ]


def text_cases(name: str, path: str, extra: dict[str, Any]) -> list[Any]:
    def body(text: str) -> bytes:
        return json_bytes({"text": text, **extra})

    def raw(escaped: str) -> bytes:
        """The text as a raw JSON string literal: json.dumps cannot write a lone surrogate."""
        rest = json.dumps(extra)[1:-1]
        return ('{"text": "' + escaped + '"' + (", " + rest if rest else "") + "}").encode()

    return [
        case(f"{name}-text-10000", "POST", path, "INVALID_TEXT", body(LONG_TEXT), JSON_TYPE),
        case(f"{name}-text-empty", "POST", path, "INVALID_TEXT", body(""), JSON_TYPE),
        case(f"{name}-text-whitespace", "POST", path, "INVALID_TEXT", body(" \n\t "), JSON_TYPE),
        case(f"{name}-text-nul", "POST", path, "INVALID_TEXT", body("hi\x00there"), JSON_TYPE),
        case(f"{name}-text-escape", "POST", path, "INVALID_TEXT", body("hi \x1b[31m"), JSON_TYPE),
        case(f"{name}-text-surrogate", "POST", path, TEXT_CODES, raw("a\\ud800b"), JSON_TYPE),
        case(f"{name}-text-low-surrogate", "POST", path, TEXT_CODES, raw("\\udfff"), JSON_TYPE),
        case(f"{name}-text-escaped-nul", "POST", path, "INVALID_TEXT", raw("a\\u0000"), JSON_TYPE),
    ]


TTS_CASES = [
    *json_cases("tts", TTS, {"text": "hi"}),
    *text_cases("tts", TTS, {}),
    case("tts-text-wrong-type", "POST", TTS, "INVALID_REQUEST", json_bytes({"text": 5})),
    case("tts-text-null", "POST", TTS, "INVALID_REQUEST", json_bytes({"text": None})),
    case(
        "tts-unknown-field",
        "POST",
        TTS,
        "INVALID_REQUEST",
        json_bytes({"text": "hi", "bogus": 1}),
        JSON_TYPE,
    ),
    case(
        "tts-config-not-object",
        "POST",
        TTS,
        "INVALID_REQUEST",
        json_bytes({"text": "hi", "config": [1]}),
        JSON_TYPE,
    ),
    case(
        "tts-speed-negative",
        "POST",
        TTS,
        "INVALID_REQUEST",
        json_bytes({"text": "hi", "config": {"speed": -1}}),
        JSON_TYPE,
    ),
    case(
        "tts-language-too-long",
        "POST",
        TTS,
        "INVALID_REQUEST",
        json_bytes({"text": "hi", "language": "x" * 100}),
        JSON_TYPE,
    ),
    case(
        "tts-voice-wrong-type",
        "POST",
        TTS,
        "INVALID_REQUEST",
        json_bytes({"text": "hi", "voice": ["fake:alpha"]}),
        JSON_TYPE,
    ),
]

SYNTH_CASES = [
    *json_cases("synthesize", SYNTH, {"text": "hi", "config": {}}),
    *text_cases("synthesize", SYNTH, {"config": {}}),
    case(
        "synthesize-config-missing",
        "POST",
        SYNTH,
        "INVALID_REQUEST",
        json_bytes({"text": "hi"}),
        JSON_TYPE,
    ),
    case(
        "synthesize-text-missing",
        "POST",
        SYNTH,
        "INVALID_REQUEST",
        json_bytes({"config": {}}),
        JSON_TYPE,
    ),
    case(
        "synthesize-text-wrong-type",
        "POST",
        SYNTH,
        "INVALID_REQUEST",
        json_bytes({"text": ["hi"], "config": {}}),
        JSON_TYPE,
    ),
    case(
        "synthesize-config-a-list",
        "POST",
        SYNTH,
        "INVALID_REQUEST",
        json_bytes({"text": "hi", "config": []}),
        JSON_TYPE,
    ),
    case(
        "synthesize-speed-a-string",
        "POST",
        SYNTH,
        "INVALID_REQUEST",
        json_bytes({"text": "hi", "config": {"speed": "fast"}}),
        JSON_TYPE,
    ),
    case(
        "synthesize-language-wrong-type",
        "POST",
        SYNTH,
        "INVALID_REQUEST",
        json_bytes({"text": "hi", "config": {}, "language": 7}),
        JSON_TYPE,
    ),
]

NESTED = b'{"text": "hi", "config": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
SURROGATE = "INVALID_REQUEST"  # a lone surrogate outside a text field: refused as bad JSON input

UNICODE_CASES = [
    case(
        "tts-config-value-surrogate",
        "POST",
        TTS,
        SURROGATE,
        b'{"text": "hi", "config": {"emotion": "\\ud800"}}',
        JSON_TYPE,
    ),
    case(
        "tts-config-extra-surrogate",
        "POST",
        TTS,
        SURROGATE,
        b'{"text": "hi", "config": {"style": "\\udc00"}}',
        JSON_TYPE,
    ),
    case(
        "synthesize-config-surrogate",
        "POST",
        SYNTH,
        SURROGATE,
        b'{"text": "hi", "config": {"modelId": "\\ud800"}}',
        JSON_TYPE,
    ),
    case("bulk-id-surrogate", "POST", BULK, SURROGATE, b'{"ids": ["\\ud800"]}', JSON_TYPE),
    case(
        "details-config-surrogate",
        "PUT",
        PUT_DETAILS,
        "INVALID_SETTINGS",
        lambda: details(small_wav(), '{"text": "x", "config": {"emotion": "\\ud800"}}'),
        MULTIPART,
    ),
    case("tts-nested-too-deep", "POST", TTS, "INVALID_REQUEST", NESTED, JSON_TYPE),
    case("synthesize-nested-too-deep", "POST", SYNTH, "INVALID_REQUEST", NESTED, JSON_TYPE),
    case(
        "details-nested-too-deep",
        "PUT",
        PUT_DETAILS,
        "INVALID_SETTINGS",
        lambda: details(small_wav(), NESTED.decode()),
        MULTIPART,
    ),
    *[
        case(
            f"{where}-{name}-{literal.decode()}",
            "POST",
            path,
            "INVALID_REQUEST",
            b'{"text": "hi", "config": {"' + name.encode() + b'": ' + literal + b"}}",
            JSON_TYPE,
        )
        for where, path in (("tts", TTS), ("synthesize", SYNTH))
        for name in ("volume", "stability", "speed")
        for literal in (b"1e999", b"-1e999", b"NaN")
    ],
]

BULK_CASES = [
    *json_cases("bulk", BULK, {"ids": ["1"]}),
    case("bulk-ids-empty", "POST", BULK, "INVALID_REQUEST", json_bytes({"ids": []}), JSON_TYPE),
    case(
        "bulk-ids-21",
        "POST",
        BULK,
        "INVALID_REQUEST",
        # the seeded entry is among them: a refused call must not delete it
        lambda: json_bytes({"ids": [str(n) for n in range(1, 22)]}),
        JSON_TYPE,
    ),
    case("bulk-ids-string", "POST", BULK, "INVALID_REQUEST", json_bytes({"ids": "1"})),
    case("bulk-ids-object", "POST", BULK, "INVALID_REQUEST", json_bytes({"ids": {"1": 1}})),
    case("bulk-ids-null", "POST", BULK, "INVALID_REQUEST", json_bytes({"ids": None})),
    case("bulk-ids-ints", "POST", BULK, "INVALID_REQUEST", json_bytes({"ids": [1]}), JSON_TYPE),
    case("bulk-ids-mixed", "POST", BULK, "INVALID_REQUEST", json_bytes({"ids": ["1", 2]})),
    case("bulk-ids-nulls", "POST", BULK, "INVALID_REQUEST", json_bytes({"ids": [None]})),
    case("bulk-ids-nested", "POST", BULK, "INVALID_REQUEST", json_bytes({"ids": [["1"]]})),
]

LIST_CASES = [
    case(f"list-{name}", "GET", LIST, code, params=params)
    for name, params, code in [
        ("limit-0", {"limit": "0"}, "INVALID_REQUEST"),
        ("limit-201", {"limit": "201"}, "INVALID_REQUEST"),
        ("limit-huge", {"limit": "99999999999999999999999"}, "INVALID_REQUEST"),
        ("limit-negative", {"limit": "-1"}, "INVALID_REQUEST"),
        ("limit-abc", {"limit": "abc"}, "INVALID_REQUEST"),
        ("limit-float", {"limit": "1.5"}, "INVALID_REQUEST"),
        ("limit-empty", {"limit": ""}, "INVALID_REQUEST"),
        ("offset-negative", {"offset": "-1"}, "INVALID_REQUEST"),
        ("offset-abc", {"offset": "abc"}, "INVALID_REQUEST"),
        ("offset-huge", {"offset": "99999999999999999999999"}, "INVALID_REQUEST"),
        ("sort-unknown-field", {"sort": "nope:asc"}, "INVALID_SORT"),
        ("sort-bad-direction", {"sort": "id:sideways"}, "INVALID_SORT"),
        ("sort-empty", {"sort": ""}, "INVALID_SORT"),
        ("sort-trailing-comma", {"sort": "id:asc,"}, "INVALID_SORT"),
        ("filter-bad", {"filter": "bad"}, "INVALID_FILTER"),
        ("filter-unknown-op", {"filter": "transcript:like:x"}, "INVALID_FILTER"),
        ("filter-bool-maybe", {"filter": "imported:eq:maybe"}, "INVALID_FILTER"),
        ("filter-unknown-field", {"filter": "secret:eq:x"}, "INVALID_FILTER"),
        ("filter-empty-value", {"filter": "provider:eq:"}, "INVALID_FILTER"),
        ("filter-nul", {"filter": "transcript:contains:\x00"}, "INVALID_FILTER"),
        ("filter-too-many", {"filter": ["provider:eq:x"] * 11}, "INVALID_FILTER"),
    ]
]

ALL_CASES = [
    *FILE_CASES,
    *DETAILS_CASES,
    *TTS_CASES,
    *SYNTH_CASES,
    *UNICODE_CASES,
    *BULK_CASES,
    *LIST_CASES,
]
