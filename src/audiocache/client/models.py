"""What the API answers, as typed, frozen dataclasses (built from the wire JSON).

Names follow Python (``hit_count``), the wire follows the contract (``hitCount``); ``raw``
keeps the answer as received, for fields a newer server adds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "Agent",
    "AuditPage",
    "BulkDeleteResult",
    "CachePolicy",
    "Entry",
    "EntryPage",
    "ImportReport",
    "Phrase",
    "PhraseStatus",
    "Speech",
    "Stats",
    "StoreResult",
    "Take",
    "TakesReport",
    "Voice",
    "VoiceSample",
    "WarmResult",
    "Whoami",
]


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class Entry:
    id: str
    transcript: str
    cached_at: datetime
    hit_count: int
    duration: float
    regenerated: bool
    provider: str
    provider_voice_id: str
    imported: bool
    audio_filename: str | None = None
    language_code: str = ""
    pinned: bool = False
    last_hit_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Entry:
        cached_at = _time(data["cachedAt"])
        assert cached_at is not None
        return cls(
            id=str(data["id"]),
            transcript=data["transcript"],
            cached_at=cached_at,
            hit_count=int(data["hitCount"]),
            duration=float(data["duration"]),
            regenerated=bool(data["regenerated"]),
            provider=data["provider"],
            provider_voice_id=data["providerVoiceId"],
            imported=bool(data["imported"]),
            audio_filename=data.get("audioFilename"),
            language_code=data.get("languageCode", ""),
            pinned=bool(data.get("pinned", False)),
            last_hit_at=_time(data.get("lastHitAt")),
            raw=data,
        )


@dataclass(frozen=True)
class EntryPage:
    entries: list[Entry]
    total_count: int

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> EntryPage:
        return cls([Entry.from_wire(e) for e in data["entries"]], int(data["totalCount"]))


@dataclass(frozen=True)
class BulkDeleteResult:
    deleted: list[str]
    failed: list[str]

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> BulkDeleteResult:
        return cls(list(data["deleted"]), list(data["failed"]))


@dataclass(frozen=True)
class Agent:
    account_id: str
    agent_id: str
    name: str
    created_at: datetime | None
    updated_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Agent:
        return cls(
            account_id=data["accountId"],
            agent_id=data["agentId"],
            name=data["agentName"],
            created_at=_time(data.get("createdAt")),
            updated_at=_time(data.get("updatedAt")),
            raw=data,
        )


@dataclass(frozen=True)
class CachePolicy:
    """An agent's admission and eviction policy; ``None`` limits mean "no limit of its own".
    ``evicted_total``, ``usage_entries`` and ``usage_bytes`` are read-only."""

    admission: str = "default"
    min_hits: int | None = None
    window_seconds: int | None = None
    max_entries: int | None = None
    max_bytes: int | None = None
    eviction: str | None = None
    ttl_seconds: int | None = None
    ttl_from: str | None = None
    personal_data: str = "skip"
    evicted_total: int | None = None
    usage_entries: int | None = None
    usage_bytes: int | None = None

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> CachePolicy:
        usage = data.get("usage") or {}
        return cls(
            admission=data["admission"],
            min_hits=data.get("minHits"),
            window_seconds=data.get("windowSeconds"),
            max_entries=data.get("maxEntries"),
            max_bytes=data.get("maxBytes"),
            eviction=data.get("eviction"),
            ttl_seconds=data.get("ttlSeconds"),
            ttl_from=data.get("ttlFrom"),
            personal_data=data.get("personalData", "skip"),
            evicted_total=data.get("evictedTotal"),
            usage_entries=usage.get("entries"),
            usage_bytes=usage.get("bytes"),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "admission": self.admission,
            "minHits": self.min_hits,
            "windowSeconds": self.window_seconds,
            "maxEntries": self.max_entries,
            "maxBytes": self.max_bytes,
            "eviction": self.eviction,
            "ttlSeconds": self.ttl_seconds,
            "ttlFrom": self.ttl_from,
            "personalData": self.personal_data,
        }


@dataclass(frozen=True)
class Stats:
    """An agent's cache stats; ``raw`` holds the full answer (windows, top phrases, savings)."""

    entries: int
    bytes: int
    pinned: int
    evicted_total: int
    characters_saved: int
    hit_ratio_day: float | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Stats:
        return cls(
            entries=int(data["entries"]),
            bytes=int(data["bytes"]),
            pinned=int(data["pinned"]),
            evicted_total=int(data.get("evictedTotal", 0)),
            characters_saved=int(data.get("charactersSaved", 0)),
            hit_ratio_day=data.get("windows", {}).get("day", {}).get("hitRatio"),
            raw=data,
        )


@dataclass(frozen=True)
class Voice:
    id: str
    name: str
    provider: str
    provider_voice_id: str
    config: dict[str, Any]
    metadata: dict[str, Any]
    is_poly_voice: bool = False

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Voice:
        return cls(
            id=data["id"],
            name=data["name"],
            provider=data["provider"],
            provider_voice_id=data["providerVoiceId"],
            config=dict(data.get("config") or {}),
            metadata=dict(data.get("metadata") or {}),
            is_poly_voice=bool(data.get("isPolyVoice", False)),
        )


@dataclass(frozen=True)
class VoiceSample:
    voice_id: str
    sample_url: str
    expires_in_seconds: int
    text: str

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> VoiceSample:
        return cls(data["voiceId"], data["sampleUrl"], int(data["expiresInSeconds"]), data["text"])


@dataclass(frozen=True)
class Speech:
    """Audio from the runtime path (``tts``) or a lookup: bytes, whether it was a hit, and
    the entry now holding it (None when not stored)."""

    audio: bytes
    media_type: str
    hit: bool
    entry_id: str | None


@dataclass(frozen=True)
class PhraseStatus:
    index: int
    text: str
    cached: bool
    entry_id: str | None

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> PhraseStatus:
        return cls(int(data["index"]), data["text"], bool(data["cached"]), data.get("entryId"))


@dataclass(frozen=True)
class StoreResult:
    stored: bool
    created: bool
    reason: str | None = None
    entry: Entry | None = None

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> StoreResult:
        entry = data.get("entry")
        return cls(
            stored=bool(data["stored"]),
            created=bool(data["created"]),
            reason=data.get("reason"),
            entry=Entry.from_wire(entry) if entry else None,
        )


@dataclass(frozen=True)
class WarmResult:
    entries: list[Entry]
    synthesized: int

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> WarmResult:
        return cls([Entry.from_wire(e) for e in data["entries"]], int(data["synthesized"]))


@dataclass(frozen=True)
class Phrase:
    """The key parts of a phrase, as the runtime path takes them."""

    text: str
    voice: str | None = None
    language: str | None = None
    config: dict[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        parts: dict[str, Any] = {"text": self.text}
        for name in ("voice", "language", "config"):
            value = getattr(self, name)
            if value is not None:
                parts[name] = value
        return parts


@dataclass(frozen=True)
class Take:
    """An earlier take of an entry (what a replace, regenerate or restore moved out)."""

    id: str
    created_at: datetime
    reason: str
    transcript: str
    duration: float
    size: int
    sha256: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Take:
        created = _time(data["createdAt"])
        assert created is not None
        return cls(
            id=str(data["id"]),
            created_at=created,
            reason=data["reason"],
            transcript=data["transcript"],
            duration=float(data["duration"]),
            size=int(data["size"]),
            sha256=data["sha256"],
            raw=data,
        )


@dataclass(frozen=True)
class ImportReport:
    """What an import did; ``failures`` as the server lists them (index, transcript, reason)."""

    total: int
    created: int
    replaced: int
    unchanged: int
    failed: int
    missing_audio: int
    failures: list[dict[str, Any]]

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ImportReport:
        return cls(
            total=int(data["total"]),
            created=int(data["created"]),
            replaced=int(data["replaced"]),
            unchanged=int(data["unchanged"]),
            failed=int(data["failed"]),
            missing_audio=int(data.get("missingAudio", 0)),
            failures=list(data.get("failures", [])),
        )


@dataclass(frozen=True)
class TakesReport:
    """What a bulk takes upload did, per file (``results``: file, action, entryIds, …)."""

    created: int
    replaced: int
    failed: int
    skipped: int
    results: list[dict[str, Any]]

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> TakesReport:
        return cls(
            created=int(data["created"]),
            replaced=int(data["replaced"]),
            failed=int(data["failed"]),
            skipped=int(data["skipped"]),
            results=list(data["results"]),
        )


@dataclass(frozen=True)
class AuditPage:
    """A page of the account's audit log, newest first (``events`` as the server lists them)."""

    events: list[dict[str, Any]]
    total_count: int

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> AuditPage:
        return cls(list(data["events"]), int(data["totalCount"]))


@dataclass(frozen=True)
class Whoami:
    account_id: str
    key_id: str
    scopes: list[str]

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Whoami:
        return cls(data["accountId"], data["keyId"], list(data["scopes"]))
