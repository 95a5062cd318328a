"""Degrade, don't fail: what was served without being stored because storage refused.

When the blob store is full or unavailable, or the database is read-only or locked past
its timeout, a caller still gets its audio; only the caching is skipped. Each skip is
logged as a warning and counted here (in-process, for a /metrics endpoint and tests).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from audiocache.errors import StorageUnavailable

log = logging.getLogger("audiocache.degraded")


@dataclass
class StorageDegradation:
    unstored_phrases: int = 0  # syntheses answered to the caller but not stored
    unstored_variants: int = 0  # conversions served without caching them
    by_error: Counter[str] = field(default_factory=Counter)  # error_code → skips

    def phrase_not_stored(self, exc: StorageUnavailable, what: str) -> None:
        self.unstored_phrases += 1
        self._note(exc, f"served {what} without storing it")

    def variant_not_stored(self, exc: StorageUnavailable, what: str) -> None:
        self.unstored_variants += 1
        self._note(exc, f"served {what} without caching the conversion")

    def _note(self, exc: StorageUnavailable, doing: str) -> None:
        self.by_error[exc.error_code] += 1
        log.warning("storage refused a write (%s: %s); %s", exc.error_code, exc.message, doing)
