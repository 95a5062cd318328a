"""WAV (RIFF/WAVE) validation and construction, in memory, standard library only.

``parse_wav`` validates an uploaded WAV file and accepts:

* a little-endian ``RIFF`` container of form ``WAVE`` whose declared size matches the file
  (exactly, or one byte more when the final odd-sized chunk lacks its pad byte);
* chunks walked by their declared sizes, odd sizes padded to even; unknown chunks
  (``LIST``, ``fact``, ``cue `` ...) are skipped;
* one ``fmt `` chunk, before the one ``data`` chunk, describing linear PCM (format tag 1,
  8/16/24/32 bits), mu-law (tag 7) or A-law (tag 6) at 8 bits, or ``WAVE_FORMAT_EXTENSIBLE``
  (0xFFFE, cbSize >= 22) whose sub-format is one of those;
* 1..8 channels, 1000..384000 Hz, with a consistent block align and byte rate;
* a complete, non-empty ``data`` chunk holding a whole number of sample frames.

Anything else raises :class:`~audiocache.errors.InvalidAudio` with a specific message; no
other exception escapes for any input. ``build_wav`` writes a canonical header around raw
audio, and ``normalize_wav`` repairs the streamed headers TTS engines write to pipes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace

from audiocache.errors import InvalidAudio

__all__ = ["WavInfo", "build_wav", "normalize_wav", "parse_wav"]

_EXTENSIBLE = 0xFFFE
_ENCODINGS = {1: "pcm", 7: "ulaw", 6: "alaw"}
_TAGS = {encoding: tag for tag, encoding in _ENCODINGS.items()}
_TAG_NAMES = {2: "MS ADPCM", 3: "IEEE float", 0x11: "IMA ADPCM", 0x31: "GSM 6.10", 0x55: "MP3"}
_PCM_BITS = (8, 16, 24, 32)
_MAX_CHANNELS = 8
_MIN_RATE, _MAX_RATE = 1000, 384000


@dataclass(frozen=True)
class WavInfo:
    """What ``parse_wav`` found: the audio format and where the samples are."""

    encoding: str  # "pcm" | "ulaw" | "alaw"
    channels: int
    sample_rate: int
    bits_per_sample: int  # 8/16/24/32 for pcm, 8 for G.711
    block_align: int
    frames: int  # number of sample frames in the data chunk
    data_offset: int  # byte offset of the first audio byte in the file
    data_size: int  # bytes of audio

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def _tag_name(tag: int) -> str:
    name = _TAG_NAMES.get(tag)
    return f"0x{tag:04X} ({name})" if name else f"0x{tag:04X}"


def _parse_fmt(body: bytes) -> WavInfo:
    if len(body) < 16:
        raise InvalidAudio(f"fmt chunk is {len(body)} bytes; at least 16 are required")
    tag, channels, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", body)
    what = "format tag"
    if tag == _EXTENSIBLE:
        if len(body) < 40:
            raise InvalidAudio(f"WAVE_FORMAT_EXTENSIBLE fmt chunk is {len(body)} bytes, under 40")
        (cb_size,) = struct.unpack_from("<H", body, 16)
        if cb_size < 22:
            raise InvalidAudio(f"WAVE_FORMAT_EXTENSIBLE cbSize is {cb_size}; 22 is required")
        (tag,) = struct.unpack_from("<H", body, 24)
        what = "WAVE_FORMAT_EXTENSIBLE sub-format"
    encoding = _ENCODINGS.get(tag)
    if encoding is None:
        raise InvalidAudio(
            f"unsupported {what} {_tag_name(tag)}; only PCM, mu-law and A-law are accepted"
        )
    if not 1 <= channels <= _MAX_CHANNELS:
        raise InvalidAudio(f"{channels} channels; 1 to {_MAX_CHANNELS} are supported")
    if not _MIN_RATE <= rate <= _MAX_RATE:
        raise InvalidAudio(f"sample rate {rate} Hz is outside {_MIN_RATE}..{_MAX_RATE} Hz")
    allowed = _PCM_BITS if encoding == "pcm" else (8,)
    if bits not in allowed:
        raise InvalidAudio(f"{bits} bits per sample is not supported for {encoding}")
    if align != channels * bits // 8:
        raise InvalidAudio(
            f"block align {align} does not match {channels} channels x {bits} bits "
            f"(expected {channels * bits // 8})"
        )
    if byte_rate != rate * align:
        raise InvalidAudio(
            f"byte rate {byte_rate} does not match sample rate x block align "
            f"(expected {rate * align})"
        )
    # frames and data location are filled in once the data chunk is found
    return WavInfo(encoding, channels, rate, bits, align, frames=0, data_offset=0, data_size=0)


def _riff_size(data: bytes) -> int:
    if len(data) < 12 or data[0:4] != b"RIFF" or data[8:12] != b"WAVE":
        if len(data) < 12:
            detail = f"only {len(data)} bytes"
        elif data[0:4] == b"RIFF":
            detail = f"RIFF form type is {bytes(data[8:12])!r}"
        else:
            detail = f"starts with {bytes(data[0:4])!r}"
        raise InvalidAudio(f"not a RIFF/WAVE file ({detail})")
    (size,) = struct.unpack_from("<I", data, 4)
    return int(size)


def _chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Yield (chunk id, body offset, declared body size) for each chunk header after WAVE."""
    pos = 12
    while pos + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, pos)
        yield cid, pos + 8, size
        pos += 8 + size + (size & 1)


def _info(fmt: WavInfo, offset: int, size: int) -> WavInfo:
    if size % fmt.block_align:
        raise InvalidAudio(
            f"data chunk of {size} bytes is not a whole number of {fmt.block_align}-byte frames"
        )
    if size == 0:
        raise InvalidAudio("data chunk is empty: no audio")
    return replace(fmt, frames=size // fmt.block_align, data_offset=offset, data_size=size)


def parse_wav(data: bytes) -> WavInfo:
    """Validate a complete WAV file held in memory; raise InvalidAudio on anything wrong."""
    riff_size = _riff_size(data)
    if riff_size < 4:
        raise InvalidAudio(f"RIFF size {riff_size} is too small to hold the WAVE form type")
    present = len(data) - 8
    if riff_size > present + 1:
        raise InvalidAudio(
            f"truncated: RIFF header declares {riff_size + 8} bytes but the file has {len(data)}"
        )
    if riff_size < present:
        raise InvalidAudio(
            f"RIFF header declares {riff_size + 8} bytes but the file has {len(data)} "
            "(trailing bytes after the RIFF chunk)"
        )
    fmt: WavInfo | None = None
    found: tuple[int, int] | None = None
    for cid, start, size in _chunks(data):
        name = cid.decode("latin-1")
        if start + size > len(data):
            raise InvalidAudio(
                f"truncated: {name!r} chunk declares {size} bytes "
                f"but only {len(data) - start} are present"
            )
        if cid == b"fmt ":
            if fmt is not None:
                raise InvalidAudio("more than one fmt chunk")
            fmt = _parse_fmt(data[start : start + size])
        elif cid == b"data":
            if fmt is None:
                raise InvalidAudio("data chunk comes before the fmt chunk")
            if found is not None:
                raise InvalidAudio("more than one data chunk")
            found = (start, size)
    if fmt is None:
        raise InvalidAudio("fmt chunk missing")
    if found is None:
        raise InvalidAudio("data chunk missing")
    return _info(fmt, *found)


def build_wav(
    audio: bytes,
    *,
    sample_rate: int,
    channels: int = 1,
    bits_per_sample: int = 16,
    encoding: str = "pcm",
) -> bytes:
    """Wrap raw audio bytes in a canonical RIFF/WAVE header.

    ``audio`` is little-endian PCM, or G.711 bytes with ``encoding`` "ulaw"/"alaw" (format
    tags 7/6, always 8 bits, so ``bits_per_sample`` is ignored; the fmt chunk carries
    cbSize=0 and a fact chunk follows, as the spec wants for non-PCM). Bad arguments are a
    caller bug and raise ValueError, as does audio that is not a whole number of frames.
    """
    tag = _TAGS.get(encoding)
    if tag is None:
        raise ValueError(f"unknown encoding {encoding!r}; expected pcm, ulaw or alaw")
    bits = bits_per_sample if encoding == "pcm" else 8
    if bits not in _PCM_BITS:
        raise ValueError(f"bits_per_sample must be one of {_PCM_BITS}, not {bits}")
    if not 1 <= channels <= _MAX_CHANNELS:
        raise ValueError(f"channels must be 1..{_MAX_CHANNELS}, not {channels}")
    if not _MIN_RATE <= sample_rate <= _MAX_RATE:
        raise ValueError(f"sample_rate must be {_MIN_RATE}..{_MAX_RATE}, not {sample_rate}")
    align = channels * bits // 8
    if len(audio) % align:
        raise ValueError(f"{len(audio)} audio bytes is not a whole number of {align}-byte frames")
    fmt = struct.pack("<HHIIHH", tag, channels, sample_rate, sample_rate * align, align, bits)
    parts = [b"WAVE"]
    if encoding == "pcm":
        parts += [b"fmt ", struct.pack("<I", len(fmt)), fmt]
    else:
        parts += [b"fmt ", struct.pack("<I", len(fmt) + 2), fmt, b"\0\0"]
        parts += [b"fact", struct.pack("<II", 4, len(audio) // align)]
    parts += [b"data", struct.pack("<I", len(audio)), bytes(audio), b"\0" * (len(audio) & 1)]
    riff_size = sum(map(len, parts))
    if riff_size > 0xFFFFFFFF:
        raise ValueError(f"{len(audio)} audio bytes do not fit in a RIFF file")
    return b"".join([b"RIFF", struct.pack("<I", riff_size), *parts])


def normalize_wav(data: bytes) -> bytes:
    """Return a canonical WAV for engine output whose header sizes may be placeholders.

    Streamed writers (e.g. ``espeak-ng --stdout``) leave the RIFF and data sizes as
    0xFFFFFFFF, 0x7FFFFFFF or 0. A file ``parse_wav`` accepts is returned as is; otherwise
    the audio present after the data header (up to its declared size, when that is a real
    size) is trimmed to whole frames and re-wrapped with ``build_wav``. The fmt chunk is
    validated exactly as by ``parse_wav``. Raises InvalidAudio if no usable fmt/data.
    """
    try:
        parse_wav(data)
        return bytes(data)
    except InvalidAudio:
        pass
    _riff_size(data)
    fmt: WavInfo | None = None
    for cid, start, size in _chunks(data):
        if cid == b"fmt " and fmt is None:
            fmt = _parse_fmt(data[start : start + size])
        elif cid == b"data":
            if fmt is None:
                raise InvalidAudio("data chunk comes before the fmt chunk")
            available = len(data) - start
            if size == 0 or size > available:
                size = available
            size -= size % fmt.block_align
            if size == 0:
                raise InvalidAudio("data chunk is empty: no audio")
            return build_wav(
                data[start : start + size],
                sample_rate=fmt.sample_rate,
                channels=fmt.channels,
                bits_per_sample=fmt.bits_per_sample,
                encoding=fmt.encoding,
            )
    raise InvalidAudio("fmt chunk missing" if fmt is None else "data chunk missing")


def streaming_header(sample_rate: int, channels: int = 1, bits_per_sample: int = 16) -> bytes:
    """A PCM WAV header for audio of unknown length, sizes set to the 0xFFFFFFFF placeholder
    that streaming writers (and readers such as ffmpeg, sox, browsers) use."""
    block_align = channels * bits_per_sample // 8
    return (
        b"RIFF"
        + struct.pack("<I", 0xFFFFFFFF)
        + b"WAVEfmt "
        + struct.pack(
            "<IHHIIHH",
            16,
            1,
            channels,
            sample_rate,
            sample_rate * block_align,
            block_align,
            bits_per_sample,
        )
        + b"data"
        + struct.pack("<I", 0xFFFFFFFF)
    )
