"""The one exception tree of audiocache.

Every error a client can see is an ``AudioCacheError``; the web layer maps it to the
wire envelope in one place (``api/errors.py``) using the class attributes below::

    AudioCacheError                      500 INTERNAL_ERROR
    ├── InvalidInput                     400 INVALID_REQUEST
    │   ├── InvalidId                    400 INVALID_ID
    │   ├── InvalidSort                  400 INVALID_SORT
    │   ├── InvalidFilter                400 INVALID_FILTER
    │   ├── PayloadTooLarge              400 PAYLOAD_TOO_LARGE   (the contract says 400, not 413)
    │   ├── EmptyPayload                 400 EMPTY_PAYLOAD
    │   ├── InvalidAudio                 400 INVALID_AUDIO
    │   ├── InvalidFormat                400 INVALID_FORMAT
    │   ├── InvalidSettings              400 INVALID_SETTINGS
    │   ├── InvalidVoice                 400 INVALID_VOICE
    │   ├── InvalidText                  400 INVALID_TEXT
    │   ├── InvalidArchive               400 INVALID_ARCHIVE     (import: corrupt or unknown)
    │   ├── InvalidMapping               400 INVALID_MAPPING     (takes upload: file → text)
    │   └── ProviderUnavailable          400 PROVIDER_UNAVAILABLE
    ├── Unauthorized                     401 UNAUTHORIZED
    ├── Forbidden                        403 FORBIDDEN
    ├── NotFound                         404 NOT_FOUND
    │   ├── NotCached                    404 NOT_CACHED             (a lookup found no audio)
    │   └── UnknownTake                  404 TAKE_NOT_FOUND         (no such take of the entry)
    ├── MethodNotAllowed                 405 METHOD_NOT_ALLOWED
    ├── RequestTimeout                   408 REQUEST_TIMEOUT        (body stalled or too slow)
    ├── Conflict                         409 CONFLICT
    ├── RangeNotSatisfiable              416 RANGE_NOT_SATISFIABLE
    ├── HeadersTooLarge                  431 HEADERS_TOO_LARGE      (too many or too large)
    ├── SynthesisFailed                  502 SYNTHESIS_FAILED
    │   ├── SynthesisTimeout             504 SYNTHESIS_TIMEOUT      (engine pool's time limit)
    │   └── ProviderError                502 PROVIDER_ERROR         (cloud TTS: 5xx, bad audio)
    │       ├── ProviderAuthFailed       502 PROVIDER_AUTH_FAILED   (provider refused our key)
    │       ├── ProviderRejected         502 PROVIDER_ERROR         (any other provider 4xx)
    │       ├── ProviderRateLimited      503 PROVIDER_RATE_LIMITED  (429 after all retries)
    │       └── ProviderTimeout          504 PROVIDER_TIMEOUT
    ├── Busy                             503 BUSY                   (Retry-After)
    │   ├── EngineBusy                   503 ENGINE_BUSY            (engine pool full / deadline)
    │   ├── UploadsBusy                  503 UPLOADS_BUSY           (concurrent upload cap)
    │   └── LeaseWaitersBusy             503 LEASE_WAITERS_BUSY     (waits on other instances)
    ├── NotReady                         503 NOT_READY              (/readyz: a part is down)
    └── StorageUnavailable               503 STORAGE_UNAVAILABLE
        └── StorageFull                  507 STORAGE_FULL           (disk or quota full)

An error with a ``retry_after`` (seconds) is answered with a ``Retry-After`` header.

The domain raises these; it never imports the web framework.
"""

from __future__ import annotations


class AudioCacheError(Exception):
    status: int = 500
    error_code: str = "INTERNAL_ERROR"
    default_message: str = "Internal server error"
    retry_after: float | None = None

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidInput(AudioCacheError):
    status = 400
    error_code = "INVALID_REQUEST"
    default_message = "Invalid request"


class InvalidId(InvalidInput):
    error_code = "INVALID_ID"
    default_message = "Invalid ID"


class InvalidSort(InvalidInput):
    error_code = "INVALID_SORT"
    default_message = "Invalid sort expression"


class InvalidFilter(InvalidInput):
    error_code = "INVALID_FILTER"
    default_message = "Invalid filter expression"


class PayloadTooLarge(InvalidInput):
    error_code = "PAYLOAD_TOO_LARGE"
    default_message = "Payload exceeds the size limit"


class EmptyPayload(InvalidInput):
    error_code = "EMPTY_PAYLOAD"
    default_message = "Request body is empty"


class InvalidAudio(InvalidInput):
    error_code = "INVALID_AUDIO"
    default_message = "Body is not a valid WAV file"


class InvalidFormat(InvalidInput):
    error_code = "INVALID_FORMAT"
    default_message = "Unknown output format"


class InvalidSettings(InvalidInput):
    error_code = "INVALID_SETTINGS"
    default_message = "settings must be a JSON object {text, config}"


class InvalidVoice(InvalidInput):
    error_code = "INVALID_VOICE"
    default_message = "Unknown voice"


class InvalidText(InvalidInput):
    error_code = "INVALID_TEXT"
    default_message = "Invalid text"


class InvalidArchive(InvalidInput):
    error_code = "INVALID_ARCHIVE"
    default_message = "The archive is not a valid audiocache export"


class InvalidMapping(InvalidInput):
    error_code = "INVALID_MAPPING"
    default_message = "The mapping of files to transcripts is invalid"


class ProviderUnavailable(InvalidInput):
    error_code = "PROVIDER_UNAVAILABLE"
    default_message = "No engine is configured for this provider"


class Unauthorized(AudioCacheError):
    status = 401
    error_code = "UNAUTHORIZED"
    default_message = "Missing or invalid API key"


class Forbidden(AudioCacheError):
    status = 403
    error_code = "FORBIDDEN"
    default_message = "The API key lacks the permission for this action"


class NotFound(AudioCacheError):
    status = 404
    error_code = "NOT_FOUND"
    default_message = "Resource not found"


class NotCached(NotFound):
    """A lookup found no stored audio for the phrase (the runtime synthesizes it itself)."""

    error_code = "NOT_CACHED"
    default_message = "The phrase is not cached"


class UnknownTake(NotFound):
    """The entry has no earlier take of that id (never had, or it was restored or trimmed)."""

    error_code = "TAKE_NOT_FOUND"
    default_message = "Take not found"


class MethodNotAllowed(AudioCacheError):
    status = 405
    error_code = "METHOD_NOT_ALLOWED"
    default_message = "Method not allowed"


class RequestTimeout(AudioCacheError):
    status = 408
    error_code = "REQUEST_TIMEOUT"
    default_message = "The request body did not arrive in time"


class Conflict(AudioCacheError):
    status = 409
    error_code = "CONFLICT"
    default_message = "Resource already exists"


class RangeNotSatisfiable(AudioCacheError):
    status = 416
    error_code = "RANGE_NOT_SATISFIABLE"
    default_message = "Requested range not satisfiable"

    def __init__(self, size: int, message: str | None = None) -> None:
        self.size = size
        super().__init__(message)


class HeadersTooLarge(AudioCacheError):
    status = 431
    error_code = "HEADERS_TOO_LARGE"
    default_message = "Request header fields too large"


class SynthesisFailed(AudioCacheError):
    status = 502
    error_code = "SYNTHESIS_FAILED"
    default_message = "The TTS engine failed"


class SynthesisTimeout(SynthesisFailed):
    status = 504
    error_code = "SYNTHESIS_TIMEOUT"
    default_message = "The TTS engine did not finish in time"


class StorageUnavailable(AudioCacheError):
    status = 503
    error_code = "STORAGE_UNAVAILABLE"
    default_message = "Storage is unavailable"


class StorageConflict(StorageUnavailable):
    """The database aborted a transaction for another one's sake (PostgreSQL: a deadlock
    or a serialization failure). ``Database.write_retrying`` runs it again a few times;
    past those, a 503 like any unavailable storage."""

    default_message = "The metadata database aborted a conflicting transaction"


class StorageFull(StorageUnavailable):
    status = 507
    error_code = "STORAGE_FULL"
    default_message = "Storage is full"


class Busy(AudioCacheError):
    """Refused for now because a bounded resource is at its limit; retry later."""

    status = 503
    error_code = "BUSY"
    default_message = "The service is busy; try again later"

    def __init__(self, message: str | None = None, retry_after: float | None = 1.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class EngineBusy(Busy):
    error_code = "ENGINE_BUSY"
    default_message = "The TTS engine is at capacity; try again later"


class UploadsBusy(Busy):
    error_code = "UPLOADS_BUSY"
    default_message = "Too many uploads in progress; try again later"


class LeaseWaitersBusy(Busy):
    error_code = "LEASE_WAITERS_BUSY"
    default_message = (
        "Too many requests are waiting for other instances' syntheses; try again later"
    )


class ProviderError(SynthesisFailed):
    error_code = "PROVIDER_ERROR"
    default_message = "The cloud TTS provider failed"


class ProviderAuthFailed(ProviderError):
    error_code = "PROVIDER_AUTH_FAILED"
    default_message = "The TTS provider rejected the API key"


class ProviderRejected(ProviderError):
    default_message = "The TTS provider rejected the request"


class ProviderRateLimited(ProviderError):
    status = 503
    error_code = "PROVIDER_RATE_LIMITED"
    default_message = "The TTS provider is rate limiting us; try again later"

    def __init__(self, message: str | None = None, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ProviderTimeout(ProviderError):
    status = 504
    error_code = "PROVIDER_TIMEOUT"
    default_message = "The TTS provider did not answer in time"


class NotReady(AudioCacheError):
    """The database or the blob store does not answer (``GET /readyz``)."""

    status = 503
    error_code = "NOT_READY"
    default_message = "Not ready"

    def __init__(self, message: str | None = None, retry_after: float | None = 5.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)
