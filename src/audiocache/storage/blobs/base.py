"""The blob store protocol: immutable audio bytes addressed by their sha256.

Edge cases every backend honours (the conformance suite in tests/storage checks them):
- ``put`` is idempotent: putting bytes whose hash exists is a no-op that still returns the info.
- ``put`` is atomic and durable: once it returns, a crash cannot leave a partial blob under
  that hash, and the bytes survive a process kill.
- ``stat`` / ``open_range`` of a missing hash return ``None``; ``delete`` of one is a no-op.
- ``iter_blobs`` yields every complete blob (never a temp file) with its age in seconds.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Read size when streaming a blob: a typical prompt (50-300 KB) goes out in one or two writes.
CHUNK = 256 * 1024


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_sha256(value: str) -> bool:
    return bool(_SHA256.match(value))


@dataclass(frozen=True)
class BlobInfo:
    sha256: str
    size: int


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    age_seconds: float


@runtime_checkable
class BlobStore(Protocol):
    async def put(self, data: bytes) -> BlobInfo: ...

    async def stat(self, sha256: str) -> BlobInfo | None: ...

    async def read(self, sha256: str) -> bytes | None: ...

    def open_range(
        self, sha256: str, start: int = 0, end: int | None = None, chunk_size: int = CHUNK
    ) -> AsyncIterator[bytes]:
        """Yield bytes [start, end) of the blob in chunks; raise KeyError if it is missing."""
        ...

    async def delete(self, sha256: str) -> None: ...

    def iter_blobs(self) -> AsyncIterator[StoredBlob]: ...

    def local_path(self, sha256: str) -> Path | None:
        """A filesystem path for zero-copy serving, or None when the backend has none."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class Presigning(Protocol):
    """A blob store that can hand out a credential-free GET URL of a blob (S3's)."""

    def presigned_get(
        self, sha256: str, expires_seconds: int, overrides: Mapping[str, str] | None = None
    ) -> str: ...
