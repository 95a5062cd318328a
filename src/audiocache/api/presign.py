"""Downloads answered with a redirect to a presigned S3 GET (``Settings.offload`` =
``s3-presigned``): audiocache checks the key and the entry, S3 sends the bytes.

The URL is signed when a response is sent, never when it is built: a response kept in the
hot path's memo answers many requests, each with a URL valid ``offload_presign_seconds``
from then (signing is local, ~20 µs, no request to S3). What S3 answers with is named in
the signed query (``response-*``): the objects are stored without a content type, and a
download's Content-Disposition and Cache-Control are audiocache's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from audiocache.config import Settings
from audiocache.storage.blobs.base import BlobStore, Presigning

Location = Callable[[], str]


@dataclass(frozen=True)
class Presigner:
    store: Presigning
    seconds: int

    def location(
        self, sha256: str, media_type: str, cache_control: str, disposition: str | None
    ) -> Location:
        """What signs the blob's URL anew each time it is called."""
        overrides = {"response-content-type": media_type, "response-cache-control": cache_control}
        if disposition:
            overrides["response-content-disposition"] = disposition
        store, seconds = self.store, self.seconds
        return lambda: store.presigned_get(sha256, seconds, overrides)


def presigner_of(settings: Settings, blobs: BlobStore) -> Presigner | None:
    """The presigner of ``offload=s3-presigned``, or None: send the bytes (or X-Accel)."""
    if settings.offload != "s3-presigned":
        return None
    # build_services refused a store that cannot presign (check_offload)
    return Presigner(cast(Presigning, blobs), settings.offload_presign_seconds)
