"""A Python client of the audiocache API: ``Client`` (blocking) and ``AsyncClient``.

It needs only httpx (no server code): every operation of the HTTP API, typed answers
(``models``), one exception tree (``errors``) and bounded retries of idempotent calls.
"""

from audiocache.client.aio import AsyncClient
from audiocache.client.errors import (
    AudioCacheError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    NotCached,
    NotFound,
    PayloadTooLarge,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    UpstreamError,
)
from audiocache.client.models import (
    Agent,
    AuditPage,
    BulkDeleteResult,
    CachePolicy,
    Entry,
    EntryPage,
    ImportReport,
    Phrase,
    PhraseStatus,
    Speech,
    Stats,
    StoreResult,
    Take,
    TakesReport,
    Voice,
    VoiceSample,
    WarmResult,
    Whoami,
)
from audiocache.client.retry import RetryPolicy
from audiocache.client.sync import Client

__all__ = [
    "Agent",
    "AsyncClient",
    "AudioCacheError",
    "AuditPage",
    "BulkDeleteResult",
    "CachePolicy",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Entry",
    "EntryPage",
    "Forbidden",
    "ImportReport",
    "InvalidRequest",
    "NotCached",
    "NotFound",
    "PayloadTooLarge",
    "Phrase",
    "PhraseStatus",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailable",
    "Speech",
    "Stats",
    "StoreResult",
    "Take",
    "TakesReport",
    "Unauthorized",
    "UpstreamError",
    "Voice",
    "VoiceSample",
    "WarmResult",
    "Whoami",
]
