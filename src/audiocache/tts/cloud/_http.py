"""What every cloud engine shares: an HTTP client with retries, error translation, WAV checks.

``ProviderClient.post`` returns the complete body of a 2xx answer or raises; nothing half-read
leaves it. Attempts are bounded by ``attempt_timeout_seconds``, all of them by
``deadline_seconds``. Retried (``max_attempts``): 408, 429, 5xx, transport errors, attempt
timeouts; the wait is ``Retry-After`` (seconds or HTTP date) else exponential backoff with
jitter, and a wait past the deadline is not taken. Mapping (``from`` the httpx error):

    401, 403 (or the adapter's ``is_auth_error``)   ProviderAuthFailed   502 (key is wrong)
    4xx the adapter's ``is_voice_error`` accepts     InvalidVoice         400
    any other 4xx                                    ProviderRejected     502
    429 on the last attempt                          ProviderRateLimited  503 (temporary)
    5xx/408 on the last attempt, unreachable host    ProviderError        502
    attempt timeouts exhausted, deadline reached     ProviderTimeout      504
    a 2xx body that is not usable audio              ProviderError        502
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import re
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn

import certifi
import httpx

from audiocache import errors
from audiocache.audio.wav import build_wav, normalize_wav, parse_wav
from audiocache.errors import AudioCacheError, InvalidAudio, ProviderError, ProviderTimeout

log = logging.getLogger("audiocache.tts.cloud")
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_NOT_PCM = ("application/json", "text/", "audio/mpeg", "audio/mp3", "audio/ogg", "audio/aac")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    deadline_seconds: float = 15.0
    attempt_timeout_seconds: float = 10.0
    backoff_seconds: float = 0.5  # first wait; doubles with each attempt
    max_backoff_seconds: float = 4.0
    max_response_bytes: int = 64 * 1024 * 1024

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": between half and all of the ceiling."""
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class ProviderReply:
    status: int
    headers: httpx.Headers
    content: bytes

    @property
    def content_type(self) -> str:
        return str(self.headers.get("content-type", "")).split(";")[0].strip().lower()

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.content)
        except ValueError:
            return None

    def snippet(self, limit: int = 200) -> str:
        return self.content[:limit].decode("utf-8", errors="replace").strip()


ResponseCheck = Callable[[ProviderReply], bool]


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context shared by all engines: building one costs ~0.1 s."""
    return ssl.create_default_context(cafile=certifi.where())


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def mentions_voice(reply: ProviderReply) -> bool:
    """Default voice check: a 400/404/422 whose body talks about the voice."""
    return reply.status in (400, 404, 422) and "voice" in reply.snippet(500).lower()


def check_voice(provider: str, voice: str, pattern: str, example: str) -> None:
    """Local voice-id sanity check (no remote call)."""
    if not voice or not re.fullmatch(pattern, voice):
        raise errors.InvalidVoice(
            f"{voice!r} is not a valid {provider} voice id (e.g. {example!r})"
        )


def tuning(config: Mapping[str, Any], key: str, low: float, high: float, who: str) -> float | None:
    """``config[key]`` as a float checked against the provider's range; None if unset."""
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise errors.InvalidInput(f"config.{key} must be a number")
    if not low <= value <= high:
        raise errors.InvalidInput(f"config.{key} must be between {low:g} and {high:g} for {who}")
    return float(value)


def wav_from_file(provider: str, data: bytes) -> bytes:
    """A provider's WAV file, header repaired, validated as the cache will validate it."""
    try:
        wav = normalize_wav(data)
        parse_wav(wav)
    except InvalidAudio as exc:
        raise ProviderError(f"{provider} returned audio that is not a usable WAV: {exc}") from exc
    return wav


def wav_from_pcm(provider: str, reply: ProviderReply, sample_rate: int) -> bytes:
    """Wrap a raw 16-bit mono PCM answer in a WAV header (a WAV answer is accepted as is)."""
    body = reply.content
    if reply.content_type.startswith(_NOT_PCM) or body[:4] in (b"OggS", b"fLaC", b"ID3\x03"):
        raise ProviderError(f"{provider} answered {reply.content_type or 'no type'}, not PCM")
    if body[:4] == b"RIFF":
        return wav_from_file(provider, body)
    if not body or len(body) % 2:
        raise ProviderError(f"{provider} returned {len(body)} bytes: not 16-bit PCM audio")
    return build_wav(body, sample_rate=sample_rate)


@contextmanager
def provider_errors(provider: str) -> Iterator[None]:
    """Translate httpx exceptions raised inside into audiocache errors, ``from`` the original."""
    try:
        yield
    except (httpx.TimeoutException, TimeoutError) as exc:
        raise ProviderTimeout(f"{provider} did not answer in time") from exc
    except httpx.TransportError as exc:
        raise ProviderError(f"could not reach {provider}: {type(exc).__name__}") from exc


def error_for_status(provider: str, reply: ProviderReply, attempts: int = 1) -> AudioCacheError:
    """The audiocache error for a final non-2xx answer (auth/voice checks aside)."""
    if reply.status == 429:
        return errors.ProviderRateLimited(
            f"{provider} is rate limiting us (HTTP 429, {attempts} attempt(s))",
            retry_after=parse_retry_after(reply.headers.get("retry-after")),
        )
    detail = f"{provider} answered HTTP {reply.status}: {reply.snippet() or '(empty body)'}"
    if reply.status in RETRYABLE_STATUS:
        return ProviderError(f"{detail} ({attempts} attempt(s))")
    return errors.ProviderRejected(detail)


class ProviderClient:
    """One ``httpx.AsyncClient`` per engine, with the retry loop around it."""

    def __init__(
        self,
        provider: str,
        *,
        base_url: str,
        headers: Mapping[str, str],
        policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        is_auth_error: ResponseCheck = lambda reply: False,
        is_voice_error: ResponseCheck = mentions_voice,
    ) -> None:
        self.provider = provider
        self.policy = policy or RetryPolicy()
        self.is_auth_error = is_auth_error
        self.is_voice_error = is_voice_error
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"User-Agent": "audiocache", **headers},
            timeout=self.policy.attempt_timeout_seconds,
            transport=transport,
            verify=_tls_context(),
        )

    async def post(self, path: str, **kwargs: Any) -> ProviderReply:
        """POST with retries; ``kwargs`` go to httpx (json, content, params, headers)."""
        policy, loop = self.policy, asyncio.get_running_loop()
        deadline = loop.time() + policy.deadline_seconds
        failure: ProviderReply | Exception | None = None
        for attempt in range(1, policy.max_attempts + 1):
            budget = min(policy.attempt_timeout_seconds, deadline - loop.time())
            if budget <= 0:
                self._give_up(failure or TimeoutError(), attempt - 1)
            retry_after: float | None = None
            try:
                reply = await self._attempt(path, budget, kwargs)
            except (httpx.TransportError, TimeoutError) as exc:
                failure = exc
            else:
                if reply.status < 300:
                    return reply
                if reply.status not in RETRYABLE_STATUS:
                    raise self._rejection(reply)
                failure = reply
                retry_after = parse_retry_after(reply.headers.get("retry-after"))
            wait = policy.backoff(attempt) if retry_after is None else retry_after
            if attempt == policy.max_attempts or loop.time() + wait >= deadline:
                self._give_up(failure, attempt)
            log.info("%s: attempt %d failed, retrying in %.2fs", self.provider, attempt, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or gives up")

    async def _attempt(self, path: str, budget: float, kwargs: dict[str, Any]) -> ProviderReply:
        limit, chunks, size = self.policy.max_response_bytes, list[bytes](), 0
        async with asyncio.timeout(budget):
            request = self._client.build_request("POST", path, timeout=budget, **kwargs)
            response = await self._client.send(request, stream=True)
            try:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise ProviderError(f"{self.provider} answer exceeds {limit} bytes")
                    chunks.append(chunk)
            finally:
                await response.aclose()
        return ProviderReply(response.status_code, response.headers, b"".join(chunks))

    def _rejection(self, reply: ProviderReply) -> AudioCacheError:
        if reply.status in (401, 403) or self.is_auth_error(reply):
            return errors.ProviderAuthFailed(
                f"{self.provider} rejected the API key (HTTP {reply.status}); "
                f"check AUDIOCACHE_{self.provider.upper()}_API_KEY"
            )
        if self.is_voice_error(reply):
            return errors.InvalidVoice(
                f"{self.provider} does not know this voice: {reply.snippet()}"
            )
        return error_for_status(self.provider, reply)

    def _give_up(self, failure: ProviderReply | Exception, attempts: int) -> NoReturn:
        if isinstance(failure, ProviderReply):
            raise error_for_status(self.provider, failure, attempts)
        with provider_errors(self.provider):
            raise failure

    async def aclose(self) -> None:
        await self._client.aclose()
