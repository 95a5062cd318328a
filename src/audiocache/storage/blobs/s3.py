"""Blobs as objects in an S3-compatible bucket, under ``<prefix>/<sha[:2]>/<sha>``.

The client is obstore (Rust's ``object_store`` under Python): async without a thread per
call, streamed reads whose first chunk arrives before the whole object, ranged reads sent
to S3 as ``Range``. Edge cases, as the protocol in ``base.py`` states them:

- ``put`` is idempotent (an object of the same size under the hash is left alone) and
  checked: a single-part PUT's ETag is the MD5 of the body, so a mismatch means the bytes
  did not arrive intact and the put raises rather than acknowledging.
- An S3 PUT is atomic (an object is visible whole or not at all), so no temp key is needed.
- Missing keys: ``stat``/``read`` → None, ``open_range`` → KeyError, ``delete`` → no-op.
- Every other client or server failure is ``StorageUnavailable``; a bucket quota refusal
  is ``StorageFull``.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store

if TYPE_CHECKING:
    from obstore import GetOptions  # a TypedDict of the stubs only

from audiocache.errors import StorageFull, StorageUnavailable
from audiocache.storage.blobs.base import CHUNK, BlobInfo, StoredBlob, is_sha256, sha256_hex
from audiocache.storage.blobs.presign import presign_get


@dataclass(frozen=True)
class S3Location:
    """Where the blobs live and how to reach them (from ``AUDIOCACHE_BLOB_URL`` & co)."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    timeout_seconds: float = 10.0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> S3Location:
        """``s3://bucket/some/prefix`` plus the connection options."""
        if not url.startswith("s3://"):
            raise ValueError(f"not an s3:// URL: {url!r}")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {url!r}")
        return cls(bucket=bucket, prefix=prefix.strip("/"), **options)


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """obstore's errors as audiocache's: the one place this driver's failures are mapped."""
    try:
        yield
    except FileNotFoundError:
        raise  # obstore's NotFoundError is one: the callers turn it into None / KeyError
    except BaseError as exc:
        text = str(exc)
        if "QuotaExceeded" in text or "EntityTooLarge" in text:
            raise StorageFull(f"object storage refused to {action}: quota exceeded") from exc
        raise StorageUnavailable(f"object storage failed to {action}") from exc
    except (OSError, TimeoutError) as exc:
        raise StorageUnavailable(f"object storage unreachable ({action})") from exc


class S3BlobStore:
    def __init__(self, location: S3Location) -> None:
        self.location = location
        self._prefix = f"{location.prefix}/" if location.prefix else ""
        self.requests: Counter[str] = Counter()  # S3 requests sent, by kind (tests, benches)
        http = location.endpoint is not None and location.endpoint.startswith("http://")
        timeout = f"{max(1, round(location.timeout_seconds))}s"
        self._store = S3Store(
            location.bucket,
            endpoint=location.endpoint,
            region=location.region,
            access_key_id=location.access_key_id,
            secret_access_key=location.secret_access_key,
            virtual_hosted_style_request=False,
            client_options={"allow_http": http, "timeout": timeout, "connect_timeout": "3s"},
            retry_config={
                "max_retries": 2,
                "retry_timeout": timedelta(seconds=location.timeout_seconds),
                "backoff": {
                    "init_backoff": timedelta(seconds=0.05),
                    "max_backoff": timedelta(seconds=1.0),
                    "base": 2,
                },
            },
        )

    def _key(self, sha256: str) -> str:
        if not is_sha256(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return f"{self._prefix}{sha256[:2]}/{sha256}"

    def local_path(self, sha256: str) -> Path | None:
        return None

    def presigned_get(
        self, sha256: str, expires_seconds: int, overrides: Mapping[str, str] | None = None
    ) -> str:
        """A URL that GETs the blob without credentials for ``expires_seconds``, path style
        as this store's own requests; ``overrides`` are S3's ``response-*`` parameters (the
        headers S3 answers with, e.g. ``response-content-type``). No request is sent."""
        location = self.location
        if location.access_key_id is None or location.secret_access_key is None:
            raise ValueError("presigning needs the S3 access key id and secret access key")
        endpoint = location.endpoint or f"https://s3.{location.region}.amazonaws.com"
        return presign_get(
            endpoint=endpoint,
            path=f"/{location.bucket}/{self._key(sha256)}",
            region=location.region,
            access_key_id=location.access_key_id,
            secret_access_key=location.secret_access_key,
            expires_seconds=expires_seconds,
            query=overrides,
        )

    async def put(self, data: bytes) -> BlobInfo:
        sha = sha256_hex(data)
        existing = await self.stat(sha)
        if existing is not None and existing.size == len(data):
            return existing
        self.requests["put"] += 1
        with _translated("store a blob"):
            result = await obstore.put_async(self._store, self._key(sha), data)
        etag = (result.get("e_tag") or "").strip('"')
        if etag and "-" not in etag and etag != hashlib.md5(data).hexdigest():
            raise StorageUnavailable(f"object storage stored blob {sha} corrupted (ETag {etag})")
        return BlobInfo(sha, len(data))

    async def stat(self, sha256: str) -> BlobInfo | None:
        self.requests["head"] += 1
        try:
            with _translated("stat a blob"):
                meta = await obstore.head_async(self._store, self._key(sha256))
        except FileNotFoundError:
            return None
        return BlobInfo(sha256, int(meta["size"]))

    async def read(self, sha256: str) -> bytes | None:
        self.requests["get"] += 1
        try:
            with _translated("read a blob"):
                result = await obstore.get_async(self._store, self._key(sha256))
                return bytes(await result.bytes_async())
        except FileNotFoundError:
            return None

    async def open_range(
        self, sha256: str, start: int = 0, end: int | None = None, chunk_size: int = CHUNK
    ) -> AsyncIterator[bytes]:
        if end is not None and end <= start:
            if await self.stat(sha256) is None:
                raise KeyError(sha256)
            return
        options: GetOptions = {}
        if end is not None:
            options["range"] = (start, end)
        elif start:
            options["range"] = {"offset": start}
        self.requests["get"] += 1
        try:
            with _translated("read a blob"):
                result = await obstore.get_async(self._store, self._key(sha256), options=options)
        except FileNotFoundError as exc:
            raise KeyError(sha256) from exc
        except StorageUnavailable as exc:
            # A start past the end is a 416 from S3; a range from the size on is just empty.
            if start and await self._size_or_none(sha256) == start:
                return
            raise exc
        with _translated("read a blob"):
            async for chunk in result.stream(min_chunk_size=chunk_size):
                yield bytes(chunk)

    async def _size_or_none(self, sha256: str) -> int | None:
        info = await self.stat(sha256)
        return info.size if info else None

    async def delete(self, sha256: str) -> None:
        self.requests["delete"] += 1
        try:
            with _translated("delete a blob"):
                await obstore.delete_async(self._store, self._key(sha256))
        except FileNotFoundError:
            return

    async def iter_blobs(self) -> AsyncIterator[StoredBlob]:
        now = time.time()
        with _translated("list blobs"):
            async for batch in obstore.list(self._store, prefix=self._prefix or None):
                for meta in batch:
                    name = str(meta["path"]).rsplit("/", 1)[-1]
                    if not is_sha256(name):
                        continue
                    age = max(0.0, now - meta["last_modified"].timestamp())
                    yield StoredBlob(name, int(meta["size"]), age)

    async def close(self) -> None:
        return None
