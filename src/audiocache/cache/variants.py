"""Audio in the format a caller asked for: the stored original, or a converted copy that is
made once per (blob, format) and then served like any other blob."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import anyio.to_thread

from audiocache.audio.formats import OutputFormat
from audiocache.audio.transcode import transcode
from audiocache.cache.degraded import StorageDegradation
from audiocache.cache.singleflight import SingleFlight
from audiocache.errors import NotFound, StorageUnavailable
from audiocache.storage.blobs.base import BlobStore, sha256_hex
from audiocache.storage.variants_repo import Variant, VariantRepository

_EXTENSIONS = {
    ("wav", "pcm"): "wav",
    ("wav", "ulaw"): "wav",
    ("wav", "alaw"): "wav",
    ("raw", "pcm"): "pcm",
    ("raw", "ulaw"): "ulaw",
    ("raw", "alaw"): "alaw",
    ("mp3", "pcm"): "mp3",
    ("ogg", "pcm"): "opus",
    ("flac", "pcm"): "flac",
}


@dataclass(frozen=True)
class StoredAudio:
    """Audio to serve: a stored blob, or (``data`` set) a conversion storage refused to keep."""

    sha256: str
    size: int
    media_type: str
    data: bytes | None = None


def filename_for(base: str, fmt: OutputFormat) -> str:
    """``greeting.wav`` asked as raw μ-law downloads as ``greeting.ulaw``."""
    if fmt.passthrough:
        return base
    stem = base.rsplit(".", 1)[0] if "." in base else base
    return f"{stem}.{_EXTENSIONS[(fmt.container, fmt.encoding)]}"


class VariantCache:
    def __init__(
        self,
        repo: VariantRepository,
        blobs: BlobStore,
        degraded: StorageDegradation | None = None,
        concurrency: int = 2,
    ) -> None:
        self.repo = repo
        # Conversions (resampling, MP3/Opus/FLAC encoding) are CPU work in threads: at most
        # this many at once; the rest wait their turn rather than crowd the engines out.
        self.limiter = anyio.CapacityLimiter(concurrency)
        self.blobs = blobs
        self.degraded = degraded or StorageDegradation()
        self.conversions = 0  # how many times audio was actually converted (tests, metrics)
        self._flights: SingleFlight[StoredAudio] = SingleFlight()

    async def stored(self, sha256: str, size: int, fmt: OutputFormat) -> StoredAudio:
        """The blob holding ``sha256``'s audio in ``fmt``, converting it once if need be; if
        the conversion cannot be stored, it is handed back in ``data`` to serve uncached."""
        if fmt.passthrough:
            return StoredAudio(sha256, size, fmt.media_type)
        known = await self.repo.get(sha256, fmt.name)
        if known is not None and await self.blobs.stat(known.variant_sha256) is not None:
            return StoredAudio(known.variant_sha256, known.size_bytes, fmt.media_type)
        result, _leader = await self._flights.run(
            (sha256, fmt.name), lambda: self._convert_blob(sha256, fmt)
        )
        return result

    async def convert(self, wav: bytes, fmt: OutputFormat) -> bytes:
        """Convert audio in hand (a fresh synthesis) without storing it."""
        if fmt.passthrough:
            return wav
        self.conversions += 1
        return await anyio.to_thread.run_sync(transcode, wav, fmt, limiter=self.limiter)

    async def remember(self, source_sha256: str, fmt: OutputFormat, converted: bytes) -> None:
        """Keep a conversion made for a miss, so the next hit in that format costs nothing."""
        if fmt.passthrough:
            return
        try:
            await self._keep(source_sha256, fmt, converted)
        except StorageUnavailable as exc:
            self.degraded.variant_not_stored(exc, f"{fmt.name} of {source_sha256}")

    async def _convert_blob(self, sha256: str, fmt: OutputFormat) -> StoredAudio:
        source = await self.blobs.read(sha256)
        if source is None:
            raise NotFound("The audio of this entry is gone")
        converted = await self.convert(source, fmt)
        try:
            return await self._keep(sha256, fmt, converted)
        except StorageUnavailable as exc:
            self.degraded.variant_not_stored(exc, f"{fmt.name} of {sha256}")
            return StoredAudio(sha256_hex(converted), len(converted), fmt.media_type, converted)

    async def _keep(self, source_sha256: str, fmt: OutputFormat, data: bytes) -> StoredAudio:
        blob = await self.blobs.put(data)

        async def ensure() -> None:
            if await self.blobs.stat(blob.sha256) is None:
                await self.blobs.put(data)

        await self.repo.save(
            Variant(source_sha256, fmt.name, blob.sha256, blob.size), before_commit=ensure
        )
        return StoredAudio(blob.sha256, blob.size, fmt.media_type)
