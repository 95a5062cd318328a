"""Content-addressed blob stores behind one protocol."""

from audiocache.storage.blobs.base import BlobInfo, BlobStore, StoredBlob, sha256_hex

__all__ = ["BlobInfo", "BlobStore", "StoredBlob", "sha256_hex"]
