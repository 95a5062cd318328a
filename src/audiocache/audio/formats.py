"""Output formats a client may ask for, named as in ElevenLabs' ``output_format``.

* ``wav``: the stored WAV as is (no conversion; ``sample_rate`` is None).
* ``wav_<rate>``: 16-bit PCM WAV, mono, at 8000/16000/22050/24000/44100/48000 Hz.
* ``pcm_<rate>``: the same samples raw, signed 16-bit little-endian, no header.
* ``ulaw_8000`` / ``alaw_8000``: raw G.711 at 8 kHz, what Twilio-style media streams take.
* ``wav_ulaw_8000`` / ``wav_alaw_8000``: G.711 in a WAV (format tags 7 / 6).
* ``mp3_24000``, ``opus_24000`` (Ogg), ``flac_24000``: compressed, mono 16-bit at 24 kHz
  (``audio/encode.py``), in ``ENCODED_FORMATS``: what the OpenAI-compatible route offers.

Every converted format is mono. ``parse_output_format`` resolves a request's format name,
falling back to the ``Accept`` header (``audio/basic`` means raw mu-law) and then to ``wav``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from audiocache.errors import InvalidFormat

__all__ = [
    "DEFAULT_FORMAT",
    "ENCODED_FORMATS",
    "FORMATS",
    "OutputFormat",
    "parse_output_format",
]

Container = Literal["wav", "raw", "mp3", "ogg", "flac"]
Encoding = Literal["pcm", "ulaw", "alaw"]

PCM_RATES = (8000, 16000, 22050, 24000, 44100, 48000)

# Media types:
# * WAV: ``audio/wav``, what browsers and the rest of this API send (``audio/vnd.wave`` of
#   RFC 2361 is registered but rarely recognised).
# * raw mu-law 8 kHz mono is exactly ``audio/basic`` (RFC 2046 section 4.3.3).
# * raw A-law has no registered type for files or HTTP bodies: ``audio/PCMA`` (RFC 4856) is
#   restricted to RTP framing, so we use the unregistered ``audio/x-alaw-basic``, the
#   A-law sibling of ``audio/basic``.
# * raw PCM: ``audio/L16`` (RFC 2586) is by definition big-endian (network byte order), so it
#   would mislabel little-endian bytes; ``audio/pcm`` is the de-facto type for signed 16-bit
#   little-endian (AWS Lex/Polly, OpenAI-compatible TTS APIs), with ``rate`` and ``channels``
#   parameters in the style of L16 so that the stream is self-describing.
WAV_MEDIA_TYPE = "audio/wav"
ULAW_MEDIA_TYPE = "audio/basic"
ALAW_MEDIA_TYPE = "audio/x-alaw-basic"


@dataclass(frozen=True)
class OutputFormat:
    """One output format: container, sample encoding, rate (None = as stored), media type."""

    name: str
    container: Container
    encoding: Encoding  # for ``wav`` (as stored) only nominal: the stored encoding is kept
    sample_rate: int | None
    media_type: str

    @property
    def passthrough(self) -> bool:
        """True for ``wav``: the stored bytes are served unchanged."""
        return self.sample_rate is None


def _formats() -> dict[str, OutputFormat]:
    formats = [OutputFormat("wav", "wav", "pcm", None, WAV_MEDIA_TYPE)]
    for rate in PCM_RATES:
        formats.append(OutputFormat(f"wav_{rate}", "wav", "pcm", rate, WAV_MEDIA_TYPE))
    for rate in PCM_RATES:
        media_type = f"audio/pcm;rate={rate};channels=1"
        formats.append(OutputFormat(f"pcm_{rate}", "raw", "pcm", rate, media_type))
    formats += [
        OutputFormat("ulaw_8000", "raw", "ulaw", 8000, ULAW_MEDIA_TYPE),
        OutputFormat("alaw_8000", "raw", "alaw", 8000, ALAW_MEDIA_TYPE),
        OutputFormat("wav_ulaw_8000", "wav", "ulaw", 8000, WAV_MEDIA_TYPE),
        OutputFormat("wav_alaw_8000", "wav", "alaw", 8000, WAV_MEDIA_TYPE),
    ]
    return {fmt.name: fmt for fmt in formats}


FORMATS: dict[str, OutputFormat] = _formats()
# Compressed formats, encoded at 24 kHz (Opus takes no 22.05 or 44.1 kHz): kept out of
# FORMATS, so the Agents API routes keep the names of their contract.
ENCODED_FORMATS: dict[str, OutputFormat] = {
    fmt.name: fmt
    for fmt in (
        OutputFormat("mp3_24000", "mp3", "pcm", 24000, "audio/mpeg"),
        OutputFormat("opus_24000", "ogg", "pcm", 24000, "audio/ogg;codecs=opus"),
        OutputFormat("flac_24000", "flac", "pcm", 24000, "audio/flac"),
    )
}
DEFAULT_FORMAT = FORMATS["wav"]

# Accept media ranges we can honour without an explicit name. Anything matching WAV (or a
# wildcard) keeps the default; only a strictly preferred ``audio/basic`` switches to mu-law.
_ACCEPT_WAV = {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/*", "*/*"}


def _accept_quality(accept: str) -> dict[str, float]:
    """Media range -> q value (the highest seen) for an Accept header; malformed q is 0."""
    quality: dict[str, float] = {}
    for item in accept.split(","):
        media_range, *params = (part.strip() for part in item.split(";"))
        if not media_range:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        media_range = media_range.lower()
        quality[media_range] = max(q, quality.get(media_range, 0.0))
    return quality


def _from_accept(accept: str) -> OutputFormat:
    quality = _accept_quality(accept)
    basic = quality.get(ULAW_MEDIA_TYPE, 0.0)
    wav = max((q for media_range, q in quality.items() if media_range in _ACCEPT_WAV), default=0)
    return FORMATS["ulaw_8000"] if basic > 0 and basic > wav else DEFAULT_FORMAT


def parse_output_format(name: str | None, accept: str | None = None) -> OutputFormat:
    """The format named ``name`` (case-insensitive); without a name, negotiate from ``accept``.

    No name and no usable Accept -> ``wav``. An unknown name raises InvalidFormat (400).
    """
    if name is not None and name.strip():
        key = name.strip().lower()
        fmt = FORMATS.get(key)
        if fmt is None:
            valid = ", ".join(FORMATS)
            raise InvalidFormat(f"unknown output format {name!r}; valid formats: {valid}")
        return fmt
    if accept:
        return _from_accept(accept)
    return DEFAULT_FORMAT
