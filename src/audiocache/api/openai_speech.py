"""``POST /v1/audio/speech``: OpenAI's speech API in front of the cache.

Any client that takes a ``base_url`` (the ``openai`` SDK, LiveKit's and Pipecat's OpenAI TTS)
talks to audiocache unchanged: the key is an audiocache key sent as ``Authorization: Bearer``
(grant ``audio_cache:read``), the answer comes from the runtime path's lookup-or-synthesize
(single flight, admission, degrade rules), and errors come in OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``. How ``model``, ``voice``, ``speed`` and
``instructions`` map onto agents and tuning: ``cache/openai_speech.py``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import StreamingResponse

from audiocache.api.deps import ServicesDep
from audiocache.api.docs import json_body
from audiocache.api.errors import correlation_id
from audiocache.api.requests import MAX_JSON_BYTES, read_limited
from audiocache.api.speak import StreamAborted, finished_response
from audiocache.audio.formats import ENCODED_FORMATS, FORMATS, OutputFormat
from audiocache.audio.pcm_stream import PcmResampler
from audiocache.audio.wav import streaming_header
from audiocache.auth import require
from audiocache.cache.admission import personal_skip, skipped_header
from audiocache.cache.openai_speech import (
    RESPONSE_FORMATS,
    InvalidParameter,
    ModelNotFound,
    choose_agent,
    output_format_name,
    tuning,
    voice_name,
)
from audiocache.cache.service import SpeakResult
from audiocache.cache.streaming import SharedStream
from audiocache.cache.tuning import MAX_DESCRIPTION, MAX_SPEED, MIN_SPEED
from audiocache.errors import (
    AudioCacheError,
    InvalidFormat,
    InvalidText,
    InvalidVoice,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    StorageUnavailable,
    Unauthorized,
)
from audiocache.models import Agent, Principal
from audiocache.services import Services

router = APIRouter(tags=["OpenAI-compatible"])
log = logging.getLogger("audiocache.api")
bearer = HTTPBearer(auto_error=False, scheme_name="bearerApiKey")
READ = "audio_cache:read"
_FORMATS = {**FORMATS, **ENCODED_FORMATS}


class VoiceRef(BaseModel):
    """OpenAI's custom-voice form, ``{"id": "voice_…"}``."""

    id: str = Field(max_length=200)


class SpeechRequest(BaseModel):
    """OpenAI's ``CreateSpeechRequest``; fields the SDK may add later are ignored."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    model: str = Field(
        max_length=200,
        description="An agent id of the key's account, or an OpenAI model name (tts-1, "
        "gpt-4o-mini-tts, …) meaning the account's only agent.",
    )
    input: str = Field(description="The text to speak.")
    voice: str | VoiceRef | None = Field(
        None,
        description="A voice of the account's library, 'provider:voice', or a voice of the "
        "default provider; OpenAI's voice names (alloy, nova, …) mean the agent's voice.",
    )
    response_format: str | None = Field(
        None, max_length=16, description=f"One of {', '.join(RESPONSE_FORMATS)}; default mp3."
    )
    speed: float | None = Field(
        None, ge=MIN_SPEED, le=MAX_SPEED, allow_inf_nan=False, description="1.0 is normal."
    )
    instructions: str | None = Field(
        None,
        max_length=MAX_DESCRIPTION,
        description="Used (and part of the cache key) by engines that take a prompt "
        "(openai, google); ignored by the others (X-Audio-Instructions: ignored).",
    )
    stream_format: str | None = Field(
        None,
        max_length=8,
        description="'audio' (the default); 'sse' is answered as 'audio' too, as "
        "OpenAI-compatible servers do (the Content-Type says which one came, and OpenAI's "
        "SDK and LiveKit's OpenAI plugin read it): X-Audio-Stream-Format: audio.",
    )


_DESCRIPTION = """OpenAI's speech API, answered from the cache or synthesized once.

Authenticate with `Authorization: Bearer <audiocache key>` (grant `audio_cache:read`).
`model` is the agent: an agent id of the key's account, or an OpenAI model name (`tts-1`,
`tts-1-hd`, `gpt-4o-mini-tts`) for the account's only agent (a 400 asks for the agent id when
the account has several). OpenAI's voice names (`alloy`, `nova`, …) mean the agent's default
voice. `speed` is part of the cache key; `instructions` only for engines that take a prompt.
`pcm` is 24 kHz 16-bit mono little-endian; `wav` is the stored WAV as is. A miss on an engine
that streams is sent as it is synthesized (wav, pcm). Errors come as
`{"error": {"message", "type", "param", "code"}}`."""


@router.post(
    "/v1/audio/speech",
    operation_id="createSpeech",
    response_model=None,
    summary="OpenAI-compatible speech: the phrase from the cache, or synthesized once",
    description=_DESCRIPTION,
    response_class=Response,
    responses={
        200: {
            "description": "Audio in the requested format",
            "content": {
                _FORMATS[name].media_type: {"schema": {"type": "string", "format": "binary"}}
                for name in RESPONSE_FORMATS.values()
            },
        },
        **{
            status: {"description": text, "content": {"application/json": {}}}
            for status, text in [
                (400, "Invalid request"),
                (401, "Missing or invalid API key"),
                (403, "The key lacks audio_cache:read"),
                (404, "No such agent (model)"),
                (502, "The TTS engine failed"),
                (503, "Busy or storage unavailable (see Retry-After)"),
            ]
        },
    },
    openapi_extra=json_body(SpeechRequest),
)
async def create_speech(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Security(bearer),
    services: Services = ServicesDep,
) -> Response:
    try:
        if credentials is None:
            raise Unauthorized("Missing API key: send it as 'Authorization: Bearer <key>'")
        principal = await services.authenticator.authenticate(credentials.credentials)
        require(principal, READ)
        return await speech_response(services, principal, request)
    except AudioCacheError as exc:
        return openai_error(request, exc)


async def speech_response(services: Services, principal: Principal, request: Request) -> Response:
    body = await _parse(request)
    fmt = _FORMATS[output_format_name(body.response_format)]
    if body.stream_format not in (None, "audio", "sse"):
        raise InvalidParameter("stream_format must be 'audio' or 'sse'", "stream_format")
    agent = await _agent(services, principal, body.model)
    requested = body.voice.id if isinstance(body.voice, VoiceRef) else body.voice
    voice = voice_name(requested)
    chosen = await services.cache.resolve_voice(agent, voice)
    config, used = tuning(body.speed, body.instructions, chosen.provider)
    headers = {"X-Audio-Format": fmt.name}
    if body.stream_format == "sse":
        headers["X-Audio-Stream-Format"] = "audio"  # what came instead (see stream_format)
    if not used:
        headers["X-Audio-Instructions"] = "ignored"
    personal = personal_skip(agent, body.input)  # known before a streamed miss's headers go
    # A streamed miss goes out as the engine makes it: WAV as is, or PCM resampled on the way.
    streamable = fmt.passthrough or (fmt.container == "raw" and fmt.encoding == "pcm")
    speak = services.cache.speak_streaming if streamable else services.cache.speak
    for attempt in range(2):
        result = await speak(
            agent, body.input, voice=voice, config=config or None, check_audio=attempt > 0
        )
        try:
            miss_headers = skipped_header(personal) if personal else {}
            return await _respond(services, result, fmt, headers, miss_headers)
        except (StorageUnavailable, NotFound):
            # A hit whose entry was deleted between the lookup and now, or whose audio is
            # lost: ask again, checking the audio (a miss, or the lost audio made again).
            if attempt or not (isinstance(result, SpeakResult) and result.hit):
                raise
    raise AssertionError("unreachable")


async def _parse(request: Request) -> SpeechRequest:
    raw = await read_limited(request, MAX_JSON_BYTES, what="JSON body")
    try:
        data = json.loads(raw)
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # refuses lone surrogates
    except (ValueError, UnicodeError, RecursionError) as exc:
        raise InvalidParameter("The body is not valid JSON (UTF-8)", None) from exc
    try:
        return SpeechRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = [str(p) for p in first.get("loc", ())]
        message = first.get("msg", "invalid")
        if first.get("type") == "model_type":
            message = "the body must be a JSON object"
        where = ".".join(location)
        raise InvalidParameter(
            f"{where}: {message}" if where else message, location[0] if location else None
        ) from exc


async def _agent(services: Services, principal: Principal, model: str) -> Agent:
    try:
        owned: Agent | None = await services.agents.owned(principal.account_id, model)
    except NotFound:
        owned = None
    others = [] if owned else await services.agents.list_for_account(principal.account_id)
    return choose_agent(model, owned, others)


async def _respond(
    services: Services,
    result: SpeakResult | SharedStream,
    fmt: OutputFormat,
    headers: dict[str, str],
    miss_headers: dict[str, str],
) -> Response:
    if isinstance(result, SharedStream):
        return StreamingResponse(
            _stream(result, fmt),
            media_type=fmt.media_type,
            headers={**headers, **miss_headers, "X-Audio-Cache": "miss"},
        )
    headers = {**headers, "X-Audio-Cache": "hit" if result.hit else "miss"}
    if not result.hit:
        headers.update(miss_headers)
    return await finished_response(services, result, fmt, headers)


async def _stream(shared: SharedStream, fmt: OutputFormat) -> AsyncIterator[bytes]:
    resampler = None
    if fmt.sample_rate is None:
        yield streaming_header(shared.sample_rate)
    else:
        resampler = PcmResampler(shared.sample_rate, fmt.sample_rate)
    try:
        async for chunk in shared.listen():
            out = resampler.feed(chunk) if resampler else chunk
            if out:
                yield out
    except AudioCacheError as exc:
        raise StreamAborted(exc.message) from exc
    if resampler is not None:
        yield resampler.flush()


# -- errors in OpenAI's shape -------------------------------------------------------------

_PARAMS: dict[type[AudioCacheError], str] = {
    InvalidText: "input",
    InvalidVoice: "voice",
    InvalidFormat: "response_format",
}
_CODES = {401: "invalid_api_key", 403: "insufficient_permissions"}


def openai_error(request: Request, exc: AudioCacheError) -> Response:
    """``exc`` as OpenAI renders an error: the SDK raises its own class for each status."""
    param: Any = getattr(exc, "param", None)
    if param is None:
        param = next((p for cls, p in _PARAMS.items() if isinstance(exc, cls)), None)
    code = _CODES.get(exc.status) or (
        "model_not_found" if isinstance(exc, ModelNotFound) else exc.error_code.lower()
    )
    kind = "server_error" if exc.status >= 500 else "invalid_request_error"
    body = {"error": {"message": exc.message, "type": kind, "param": param, "code": code}}
    headers: dict[str, str] = {}
    if exc.retry_after:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    if isinstance(exc, PayloadTooLarge | RequestTimeout):
        headers["Connection"] = "close"  # the rest of the body may still be on its way
    if exc.status >= 500:
        log.warning(
            "%s: %s (correlation id %s)",
            exc.error_code,
            exc.message,
            correlation_id(request.scope),
            extra={"correlation_id": correlation_id(request.scope), "path": request.url.path},
        )
    return Response(
        json.dumps(body, ensure_ascii=False).encode("utf-8"),
        status_code=exc.status,
        media_type="application/json",
        headers=headers,
    )
