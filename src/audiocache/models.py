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
