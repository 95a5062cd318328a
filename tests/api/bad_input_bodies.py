"""Bodies for ``test_bad_input.py``: WAVs that lie, multipart forms, chunked streams."""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator
from typing import Any

from support import sine_wav

from audiocache.audio.wav import build_wav, parse_wav

AGENT = "bot"
BASE = f"/v1/agents/{AGENT}/audio-cache"
MIB = 1024 * 1024
LIMIT = 6 * MIB
CHUNK = 64 * 1024
BOUNDARY = "audiocache-test-boundary"
SETTINGS_OK = json.dumps({"text": "Replaced text", "config": {}})
LONG_TEXT = "a" * 10_000
UNICODE_TEXT = "Grüße aus Köln 👋 — ¿qué tal? 日本語"


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
