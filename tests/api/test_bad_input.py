"""Bad input on every endpoint that takes a body or query: a 4xx in the envelope, and
nothing stored changes (every row of every table, every blob file, byte for byte).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pytest
import sqlalchemy as sa
from support import Api, assert_envelope, sine_wav

from audiocache.audio.wav import build_wav, parse_wav
from audiocache.storage.tables import metadata

AGENT = "bot"
BASE = f"/v1/agents/{AGENT}/audio-cache"
MIB = 1024 * 1024
LIMIT = 6 * MIB
CHUNK = 64 * 1024
BOUNDARY = "audiocache-test-boundary"
SETTINGS_OK = json.dumps({"text": "Replaced text", "config": {}})
LONG_TEXT = "a" * 10_000
UNICODE_TEXT = "Grüße aus Köln 👋 — ¿qué tal? 日本語"


# -- what is stored ------------------------------------------------------------------------


async def snapshot(api: Api) -> dict[str, Any]:
    """Every row of every table and every file of the blob folder (name → sha256).

    Hit counts kept in memory are flushed first, so a bad request that counted a hit
    would show up as a change.
    """
    services = api.services
    await services.hits.flush()
    tables: dict[str, list[str]] = {}
    async with services.db.read() as conn:
        on_disk = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        for name in sorted(set(metadata.tables) | set(on_disk)):
            rows = (await conn.execute(sa.text(f'select * from "{name}"'))).all()
            tables[name] = sorted(repr(tuple(row)) for row in rows)
    blobs = {}
    async for blob in services.blobs.iter_blobs():
        data = await services.blobs.read(blob.sha256)
        blobs[blob.sha256] = hashlib.sha256(data or b"").hexdigest()
    assert tables["audio_cache_entries"], "the snapshot should see the seeded entry"
    assert blobs, "the snapshot should see the seeded entry's blob"
    return {"tables": tables, "blobs": blobs}


@dataclass
class Seeded:
    api: Api
    entry_id: str

    @property
    def entry_url(self) -> str:
        return f"{BASE}/{self.entry_id}"


@pytest.fixture
async def seeded(api: Api) -> Seeded:
    await api.create_agent(AGENT)
    return Seeded(api, await api.seed_entry(AGENT, "hello there"))


# -- bodies --------------------------------------------------------------------------------


async def chunked(data: bytes) -> AsyncIterator[bytes]:
    """An async generator body: httpx sends it without Content-Length (chunked)."""
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]


def wav_of_size(size: int) -> bytes:
    """A WAV that parse_wav accepts, exactly ``size`` bytes long (8-bit mono PCM)."""
    audio = bytes([128]) * (size - 44)
    wav = build_wav(audio, sample_rate=8000, bits_per_sample=8)
    if len(audio) % 2:  # an odd data chunk may lack its pad byte, which parse_wav accepts
        wav = wav[:-1]
    assert len(wav) == size
    parse_wav(wav)
    return wav


def exact_limit_wav() -> bytes:
    return wav_of_size(LIMIT)


def oversized_wav() -> bytes:
    """A valid WAV one byte over the limit: only its size can make it fail."""
    return wav_of_size(LIMIT + 1)


def patched(wav: bytes, offset: int, fmt: str, value: int) -> bytes:
    data = bytearray(wav)
    struct.pack_into(fmt, data, offset, value)
    return bytes(data)


def small_wav() -> bytes:
    wav = sine_wav(0.2)
    # support.sine_wav writes the canonical 44-byte header this module's offsets assume
    assert wav[12:16] == b"fmt " and wav[36:40] == b"data"
    return wav


def lying_byte_rate() -> bytes:
    return patched(small_wav(), 28, "<I", 16000 * 2 * 2)


def lying_block_align() -> bytes:
    return patched(small_wav(), 32, "<H", 4)


def lying_data_size() -> bytes:
    wav = small_wav()
    return patched(wav, 40, "<I", len(wav) - 44 + 10_000)


def lying_riff_size() -> bytes:
    wav = small_wav()
    return patched(wav, 4, "<I", len(wav) + 10_000)


def fmt_after_data() -> bytes:
    wav = small_wav()
    fmt_chunk, data_chunk = wav[12:36], wav[36:]
    return wav[:12] + data_chunk + fmt_chunk


def float_wav() -> bytes:
    """A consistent IEEE-float WAV (format tag 3): real audio, but not PCM or G.711."""
    frames = 1600
    body = struct.pack("<HHIIHH", 3, 1, 16000, 16000 * 4, 4, 32)
    audio = struct.pack(f"<{frames}f", *([0.25] * frames))
    chunks = b"WAVE" + b"fmt " + struct.pack("<I", 16) + body
    chunks += b"data" + struct.pack("<I", len(audio)) + audio
    return b"RIFF" + struct.pack("<I", len(chunks)) + chunks


def zero_channels() -> bytes:
    return patched(small_wav(), 22, "<H", 0)


def truncated_wav() -> bytes:
    wav = small_wav()
    return wav[: 44 + (len(wav) - 44) // 2]  # cut in the middle of the data chunk


MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(4000)
OGG = b"OggS\x00\x02" + bytes(22) + b"\x01vorbis" + bytes(4000)
TEXT = b"This is plainly not audio.\n" * 20
JSON_BODY = b'{"audio": "UklGRg==", "format": "wav"}'


def multipart(
    parts: list[tuple[str, str | None, bytes]],
    *,
    boundary: str = BOUNDARY,
    close: bool = True,
) -> bytes:
    """Raw multipart/form-data: (name, filename or None for a plain field, content)."""
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: audio/wav\r\n"
        out += b"\r\n" + content + b"\r\n"
    if close:
        out += f"--{boundary}--\r\n".encode()
    return out


def details(file: bytes | None = None, settings: str | None = SETTINGS_OK, **kwargs: Any) -> bytes:
    parts: list[tuple[str, str | None, bytes]] = []
    if file is not None:
        parts.append(("file", "take.wav", file))
    if settings is not None:
        parts.append(("settings", None, settings.encode()))
    return multipart(parts, **kwargs)


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
JSON_TYPE = {"Content-Type": "application/json"}
WAV_TYPE = {"Content-Type": "audio/wav"}


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

    async def send(self, seeded: Seeded):  # type: ignore[no-untyped-def]
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


@pytest.mark.parametrize("bad", ALL_CASES)
async def test_bad_input_is_refused_and_changes_nothing(seeded: Seeded, bad: Case) -> None:
    before = await snapshot(seeded.api)
    response = await bad.send(seeded)
    body = assert_envelope(response, bad.status, bad.code if isinstance(bad.code, str) else None)
    if isinstance(bad.code, set):
        assert body["error_code"] in bad.code, body
    assert await snapshot(seeded.api) == before


# -- the boundaries and what is accepted -------------------------------------------------


async def test_exactly_the_limit_is_accepted(seeded: Seeded) -> None:
    api = seeded.api
    wav = exact_limit_wav()
    r = await api.client.patch(
        f"{seeded.entry_url}/file", content=wav, headers={**api.headers, **WAV_TYPE}
    )
    assert r.status_code == 204, r.text
    r = await api.client.get(f"{seeded.entry_url}/file", headers=api.headers)
    assert r.status_code == 200 and r.content == wav


async def test_exactly_the_limit_is_accepted_chunked(seeded: Seeded) -> None:
    api = seeded.api
    wav = exact_limit_wav()
    r = await api.client.patch(
        f"{seeded.entry_url}/file", content=chunked(wav), headers={**api.headers, **WAV_TYPE}
    )
    assert r.status_code == 204, r.text
    r = await api.client.get(f"{seeded.entry_url}/file", headers=api.headers)
    assert r.status_code == 200 and r.content == wav


async def test_details_with_exactly_the_limit_is_accepted(seeded: Seeded) -> None:
    api = seeded.api
    wav = exact_limit_wav()
    r = await api.client.put(
        f"{seeded.entry_url}/details",
        content=details(wav),
        headers={**api.headers, **MULTIPART},
    )
    assert r.status_code == 204, r.text
    [entry] = (await api.entries(AGENT))["entries"]
    assert entry["transcript"] == "Replaced text"
    r = await api.client.get(f"{seeded.entry_url}/file", headers=api.headers)
    assert r.content == wav


async def test_synthesize_preview_stores_nothing(seeded: Seeded) -> None:
    before = await snapshot(seeded.api)
    r = await seeded.api.client.post(
        f"{seeded.entry_url}/synthesize",
        json={"text": UNICODE_TEXT, "config": {"speed": 1.2}},
        headers=seeded.api.headers,
    )
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    parse_wav(r.content)
    assert await snapshot(seeded.api) == before


async def test_unicode_text_round_trips(seeded: Seeded) -> None:
    api = seeded.api
    r = await api.speak(AGENT, UNICODE_TEXT)
    assert r.status_code == 200, r.text
    parse_wav(r.content)
    entry_id = r.headers["x-audio-cache-entry-id"]
    listed = await api.entries(AGENT, limit=200)
    [entry] = [e for e in listed["entries"] if e["id"] == entry_id]
    assert entry["transcript"] == UNICODE_TEXT
    found = await api.entries(AGENT, filter="transcript:contains:Köln 👋")
    assert [e["id"] for e in found["entries"]] == [entry_id]
    again = await api.speak(AGENT, UNICODE_TEXT)
    assert again.headers["x-audio-cache"] == "hit"
    assert again.headers["x-audio-cache-entry-id"] == entry_id


async def test_escaped_surrogate_pair_is_accepted(seeded: Seeded) -> None:
    """A pair of escapes is one real character (👋); only a lone half is refused."""
    api = seeded.api
    r = await api.client.post(
        f"/v1/agents/{AGENT}/tts",
        content=b'{"text": "wave \\ud83d\\udc4b", "config": {"emotion": "\\u00e9\\ud83d\\ude00"}}',
        headers={**api.headers, **JSON_TYPE},
    )
    assert r.status_code == 200, r.text
    entry_id = r.headers["x-audio-cache-entry-id"]
    [entry] = [e for e in (await api.entries(AGENT))["entries"] if e["id"] == entry_id]
    assert entry["transcript"] == "wave 👋"


async def test_text_at_the_limit_is_accepted(seeded: Seeded) -> None:
    api = seeded.api
    at_limit = "é" * 5000  # characters, not bytes
    body = details(sine_wav(0.2), json.dumps({"text": at_limit, "config": {}}))
    r = await api.client.put(
        f"{seeded.entry_url}/details", content=body, headers={**api.headers, **MULTIPART}
    )
    assert r.status_code == 204, r.text
    [entry] = (await api.entries(AGENT))["entries"]
    assert entry["transcript"] == at_limit
    before = await snapshot(api)
    assert_envelope(await api.speak(AGENT, "a" * 5001), 400, "INVALID_TEXT")
    assert await snapshot(api) == before


def disposition_filename(header: str) -> str:
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "filename*":
            assert value.startswith("UTF-8''"), header
            return unquote(value[len("UTF-8''") :])
    raise AssertionError(f"no filename* in {header!r}")


def assert_safe_name(name: str) -> None:
    assert name and name not in (".", "..")
    assert "/" not in name and "\\" not in name and not name.startswith("."), name
    assert all(ord(c) >= 0x20 and ord(c) != 0x7F for c in name), repr(name)


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("/etc/shadow", "shadow"),
        ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe"),
        ("take\x01\x1fone.wav", "takeone.wav"),
        ("del\x7fete.wav", "delete.wav"),
        ("tab\tname.wav", "tabname.wav"),
        ("..", None),
        ("....", None),
        ("a/..", None),
        ("./.", None),
        ("  ", None),
        ("..hidden.wav", "hidden.wav"),
        ("what?<>|*:.wav", "what______.wav"),
        ("Grüße.wav".encode(), "Grüße.wav"),
    ],
    ids=lambda value: repr(value)[:40],
)
async def test_x_filename_is_sanitised(
    seeded: Seeded, sent: str | bytes, expected: str | None
) -> None:
    api = seeded.api
    wav = sine_wav(0.3)
    r = await api.client.patch(
        f"{seeded.entry_url}/file",
        content=wav,
        headers={**api.headers, **WAV_TYPE, "X-Filename": sent},  # type: ignore[dict-item]
    )
    assert r.status_code == 204, r.text
    expected = expected or f"{seeded.entry_id}.wav"
    [entry] = (await api.entries(AGENT))["entries"]
    assert entry["audioFilename"] == expected
    assert_safe_name(entry["audioFilename"])
    r = await api.client.get(f"{seeded.entry_url}/file", headers=api.headers)
    assert r.status_code == 200 and r.content == wav
    assert disposition_filename(r.headers["content-disposition"]) == expected
    ascii_part = r.headers["content-disposition"].split('filename="', 1)[1].split('"', 1)[0]
    assert_safe_name(ascii_part)
    # and nothing was written outside the blob folder under the sent name
    blob_dir = api.services.settings.resolved_blob_dir()
    assert not any(p.name == expected for p in blob_dir.rglob("*"))


async def test_details_part_filename_is_sanitised(seeded: Seeded) -> None:
    api = seeded.api
    wav = sine_wav(0.3)
    body = multipart(
        [("file", "../../../etc/passwd\x7f", wav), ("settings", None, SETTINGS_OK.encode())]
    )
    r = await api.client.put(
        f"{seeded.entry_url}/details", content=body, headers={**api.headers, **MULTIPART}
    )
    assert r.status_code == 204, r.text
    [entry] = (await api.entries(AGENT))["entries"]
    assert entry["audioFilename"] == "passwd"
