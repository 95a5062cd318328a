"""Plain domain records passed between storage, the cache service and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Principal:
    """Who is calling: an account and the permissions its key was granted."""

    key_id: str
    account_id: str
    grants: frozenset[str]

    def can(self, permission: str) -> bool:
        resource = permission.split(":", 1)[0]
        return bool({permission, f"{resource}:*", "*"} & self.grants)


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    account_id: str
    grants: frozenset[str]
    label: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class AdmissionPolicy:
    """``always``, ``never``, or ``min_hits``: store once asked min_hits times within window."""

    mode: str
    min_hits: int = 2
    window_seconds: int = 86400


@dataclass(frozen=True)
class Agent:
    id: str  # internal: entries and cache keys refer to it; never shown to clients
    account_id: str
    public_id: str  # the agentId clients use, unique within the account
    name: str
    greeting: str
    language_code: str
    voice_id: str | None
    llm_model_id: str | None
    admission: str
    admission_min_hits: int | None
    admission_window_seconds: int | None
    branch_count: int
    created_at: datetime
    updated_at: datetime
    # Eviction (``cache/eviction.py``): None is "no limit of the agent's own".
    max_entries: int | None = None
    max_bytes: int | None = None
    eviction: str | None = None  # "lru" | "lfu"; None: the installation's default
    ttl_seconds: int | None = None
    ttl_from: str | None = None  # "cached" | "last_hit"; None: "cached"
    evicted_total: int = 0
    # Runtime paths only: "skip" never stores a phrase that looks personal, "cache" does.
    personal_data: str = "skip"


@dataclass(frozen=True)
class Entry:
    id: int
    agent_id: str
    cache_key: str
    transcript: str
    provider: str
    provider_voice_id: str
    language_code: str
    model: str
    config: dict[str, Any]
    blob_sha256: str
    size_bytes: int
    duration: float
    hit_count: int
    cached_at: datetime
    last_hit_at: datetime | None
    regenerated: bool
    imported: bool
    pinned: bool
    audio_filename: str | None
    warmed: bool = False  # a warm-up asked for it (exports carry it)


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool


@dataclass(frozen=True)
class FilterClause:
    field: str
    op: str
    value: str | bool


@dataclass(frozen=True)
class EntryQuery:
    limit: int = 50
    offset: int = 0
    sort: tuple[SortKey, ...] = (SortKey("cached_at", True),)
    filters: tuple[FilterClause, ...] = field(default_factory=tuple)


# -- eviction (the rules are in cache/eviction.py) ------------------------------------


@dataclass(frozen=True)
class Ttl:
    seconds: int
    since: str = "cached"  # "cached": from cachedAt; "last_hit": sliding from the last hit


@dataclass(frozen=True)
class Limits:
    max_entries: int | None = None
    max_bytes: int | None = None
    policy: str = "lru"
    ttls: tuple[Ttl, ...] = ()

    @property
    def bounded(self) -> bool:
        return self.max_entries is not None or self.max_bytes is not None

    @property
    def active(self) -> bool:
        return self.bounded or bool(self.ttls)


@dataclass(frozen=True)
class InstallationLimits:
    """The settings: per-agent quota and TTL, default policy, and the cap over all agents."""

    agent: Limits = Limits()
    total: Limits = Limits()


@dataclass(frozen=True)
class Usage:
    entries: int
    bytes: int


@dataclass(frozen=True)
class Candidate:
    id: int
    agent_id: str
    size_bytes: int
    hit_count: int
    cached_at: datetime
    last_hit_at: datetime | None

    @property
    def last_used(self) -> datetime:
        return self.last_hit_at or self.cached_at


@dataclass(frozen=True)
class Take:
    """An earlier take of an entry: its audio and the details it was made with."""

    id: int
    entry_id: int
    agent_id: str
    created_at: datetime  # when it was replaced (moved into the history)
    reason: str  # what replaced it: replace | replace_with_settings | regenerate | restore
    blob_sha256: str
    size_bytes: int
    duration: float
    cache_key: str
    transcript: str
    provider: str
    provider_voice_id: str
    language_code: str
    model: str
    config: dict[str, Any]
    regenerated: bool
    imported: bool
    audio_filename: str | None


@dataclass(frozen=True)
class AuditEvent:
    """One write request an API key made: who, what, when, from where, and how it ended.

    ``agent_id``, ``entry_id`` and ``target_id`` (a take or voice) are the public ids the
    request's path named, as the caller wrote them; ``agent_id`` is createAgent's new agent
    too, ``target_id`` duplicateAgent's copy, and ``entry_ids`` the entries a bulk delete
    removed (at most 20)."""

    at: datetime  # naive UTC, when the response went out
    account_id: str
    key_id: str
    operation: str  # the OpenAPI operationId
    method: str
    route: str  # the path template
    status: int
    correlation_id: str
    agent_id: str | None = None
    entry_id: str | None = None
    target_id: str | None = None
    address: str | None = None
    entry_ids: tuple[str, ...] = ()
    id: int | None = None  # set once stored


@dataclass(frozen=True)
class AuditQuery:
    """A page of an account's audit log, newest first; ``since`` inclusive, ``until``
    exclusive (naive UTC)."""

    limit: int = 50
    offset: int = 0
    operation: str | None = None
    since: datetime | None = None
    until: datetime | None = None
