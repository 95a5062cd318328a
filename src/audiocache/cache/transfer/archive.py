"""The export archive: an uncompressed tar of ``audio/<sha256>.wav`` files and a manifest.

Layout (format ``audiocache-export``, version 1)::

    audio/<sha256>.wav     one per distinct audio (entries sharing audio share the file)
    manifest.json          written last: the format, the agent, and one record per entry

Tar is written here by hand, header by header (``tarfile`` builds each 512-byte header), so
an export streams blob chunks straight into the archive: nothing but one chunk and the
manifest (spooled to disk past 1 MiB) is ever held. Reading uses ``tarfile`` on a seekable
file (a local file, or an upload spooled to disk); gzip-compressed tars are read too.
"""

from __future__ import annotations

import tarfile
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audiocache.errors import InvalidArchive

FORMAT = "audiocache-export"
VERSION = 1
MANIFEST = "manifest.json"
BLOCK = tarfile.BLOCKSIZE  # 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)
SHA256_PATTERN = r"^[0-9a-f]{64}$"


def audio_name(sha256: str) -> str:
    return f"audio/{sha256}.wav"


def member_header(name: str, size: int, mtime: float | None = None) -> bytes:
    """The 512-byte ustar header of a regular file member."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = int(time.time() if mtime is None else mtime)
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict")


def padding(size: int) -> bytes:
    """Zero bytes that fill a member's data up to the next 512-byte block."""
    return b"\0" * (-size % BLOCK)


def iso(value: datetime | None) -> str | None:
    """Naive UTC (as stored) → ISO 8601 with ``Z``."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def naive_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


class Flags(BaseModel):
    model_config = ConfigDict(extra="ignore")
    imported: bool = False
    regenerated: bool = False
    pinned: bool = False
    warmed: bool = False


class ManifestEntry(BaseModel):
    """One entry as exported; the cache key is not carried (it names the source agent), the
    importer computes it for the target agent from these fields."""

    model_config = ConfigDict(extra="ignore")
    id: str | None = None  # the entry's id on the source instance (informative)
    transcript: str
    provider: str = Field(min_length=1, max_length=64)
    voice: str = Field(min_length=1, max_length=200)
    language: str = Field(max_length=35)
    model: str = Field("", max_length=200)
    config: dict[str, Any] = Field(default_factory=dict)
    flags: Flags = Field(default_factory=Flags)
    hitCount: int = Field(0, ge=0)
    cachedAt: datetime | None = None
    lastHitAt: datetime | None = None
    duration: float | None = None
    audioFilename: str | None = Field(None, max_length=255)
    file: str
    sha256: str = Field(pattern=SHA256_PATTERN)
    sizeBytes: int = Field(ge=1)


class ManifestAgent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    agentId: str
    name: str = ""
    languageCode: str = ""
    voiceId: str | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    format: str
    version: int
    exportedAt: datetime | None = None
    generator: str | None = None
    agent: ManifestAgent
    entries: list[ManifestEntry]
    missingAudio: list[str] = Field(default_factory=list)  # entry ids left out: no audio


def parse_manifest(raw: bytes) -> Manifest:
    """The manifest, checked: our format, a version this code reads, well-formed entries
    whose file names match their hashes. Anything else is ``InvalidArchive``."""
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidArchive(
            f"The archive's {MANIFEST} is invalid ({exc.error_count()} problems; first: "
            f"{where or 'document'}: {first.get('msg', 'invalid')})"
        ) from exc
    if manifest.format != FORMAT:
        raise InvalidArchive(f"Not an audiocache export (format {manifest.format!r})")
    if manifest.version != VERSION:
        raise InvalidArchive(
            f"Export format version {manifest.version} is not supported (this server reads "
            f"version {VERSION})"
        )
    for index, entry in enumerate(manifest.entries):
        if entry.file != audio_name(entry.sha256):
            raise InvalidArchive(
                f"{MANIFEST}: entry {index} names file {entry.file!r}, "
                f"not {audio_name(entry.sha256)!r}"
            )
    return manifest
