"""One conformance suite for every BlobStore backend."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from audiocache.storage.blobs.base import BlobStore
from audiocache.storage.blobs.fs import FilesystemBlobStore
from audiocache.storage.blobs.memory import MemoryBlobStore
from audiocache.storage.blobs.s3 import S3BlobStore, S3Location


@pytest.fixture
def fs_store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


@pytest.fixture
def memory_store() -> MemoryBlobStore:
    return MemoryBlobStore()


@pytest.fixture
def s3_store(s3_location: S3Location) -> S3BlobStore:
    return S3BlobStore(s3_location)


@pytest.fixture(params=["fs_store", "s3_store", "memory_store"])
def blob_store(request: pytest.FixtureRequest) -> BlobStore:
    store = request.getfixturevalue(request.param)
    assert isinstance(store, BlobStore)
    return store


async def _collect(store: BlobStore, sha: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([c async for c in store.open_range(sha, start, end, chunk_size=7)])


async def test_put_is_content_addressed_and_idempotent(blob_store: BlobStore) -> None:
    data = b"RIFF" + os.urandom(1000)
    info = await blob_store.put(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest() and info.size == len(data)
    again = await blob_store.put(data)
    assert again == info
    assert await blob_store.read(info.sha256) == data
    assert await blob_store.stat(info.sha256) == info
    assert [b.sha256 async for b in blob_store.iter_blobs()] == [info.sha256]


async def test_ranges(blob_store: BlobStore) -> None:
    data = bytes(range(256)) * 4
    sha = (await blob_store.put(data)).sha256
    assert await _collect(blob_store, sha) == data
    assert await _collect(blob_store, sha, 10, 20) == data[10:20]
    assert await _collect(blob_store, sha, 1000) == data[1000:]
    assert await _collect(blob_store, sha, 5, 5) == b""


async def test_missing_blobs(blob_store: BlobStore) -> None:
    missing = "0" * 64
    assert await blob_store.stat(missing) is None
    assert await blob_store.read(missing) is None
    await blob_store.delete(missing)  # a no-op, not an error
    with pytest.raises(KeyError):
        await _collect(blob_store, missing)


async def test_delete(blob_store: BlobStore) -> None:
    keep = await blob_store.put(b"keep me")
    drop = await blob_store.put(b"drop me")
    await blob_store.delete(drop.sha256)
    assert await blob_store.stat(drop.sha256) is None
    assert await blob_store.read(keep.sha256) == b"keep me"
    assert [b.sha256 async for b in blob_store.iter_blobs()] == [keep.sha256]


async def test_fs_writes_atomically_and_ignores_temp_files(fs_store: FilesystemBlobStore) -> None:
    info = await fs_store.put(b"audio")
    path = fs_store.local_path(info.sha256)
    assert path is not None and path.read_bytes() == b"audio"
    # A crash mid-write leaves only a temp file: never listed, removed by the collector.
    leftover = path.parent / f".tmp-{'a' * 64}-1-1"
    leftover.write_bytes(b"partial")
    assert [b.sha256 async for b in fs_store.iter_blobs()] == [info.sha256]
    assert fs_store.remove_stale_temp_files(older_than_seconds=0) == 1
    assert not leftover.exists()


async def test_fs_rejects_non_hash_names(fs_store: FilesystemBlobStore) -> None:
    with pytest.raises(ValueError):
        await fs_store.stat("../../etc/passwd")


async def test_fs_repairs_a_truncated_blob_on_put(fs_store: FilesystemBlobStore) -> None:
    info = await fs_store.put(b"0123456789")
    path = fs_store.local_path(info.sha256)
    assert path is not None
    path.write_bytes(b"01234")  # damaged by something outside audiocache
    await fs_store.put(b"0123456789")
    assert path.read_bytes() == b"0123456789"
