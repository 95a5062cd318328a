"""The runtime path: text + voice → audio, from the cache or synthesized once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from starlette.responses import StreamingResponse

from audiocache.api.audio_response import BlobResponse, audio_response, offload_of
from audiocache.api.deps import RouteSpec, ServicesDep
from audiocache.api.docs import AUDIO_WAV, errors, json_body
from audiocache.api.requests import parse_json
from audiocache.api.schemas import SpeakRequest
from audiocache.audio.formats import OutputFormat, parse_output_format
from audiocache.audio.wav import streaming_header
from audiocache.cache.admission import personal_skip, skipped_header
from audiocache.cache.service import SpeakResult
from audiocache.cache.streaming import SharedStream
from audiocache.errors import AudioCacheError, NotFound, StorageUnavailable
from audiocache.models import Agent, Entry, Principal
from audiocache.services import Services

router = APIRouter(tags=["Runtime"])
SPEAK = RouteSpec("", "/v1/agents/{agentId}/tts", "audio_cache:read")  # also api/hot_path.py


@dataclass(frozen=True)
class ServedHit:
    """A hit answered from storage: what it takes to answer the same request again and to
    count it as ``CacheService.speak`` counts a hit (the hot path's memo keeps these)."""

    agent: Agent
    entry: Entry
    characters: int
    response: BlobResponse


Remember = Callable[[ServedHit], None]


class StreamAborted(Exception):
    """The engine failed after the response started: the only honest signal left is to
    cut the connection (the chunked body never ends), so the caller knows it is incomplete."""


async def _wav_stream(shared: SharedStream) -> AsyncIterator[bytes]:
    yield streaming_header(shared.sample_rate)
    try:
        async for chunk in shared.listen():
            yield chunk
    except AudioCacheError as exc:
        raise StreamAborted(exc.message) from exc


_HEADERS_DOC = {
    "X-Audio-Cache": {"description": "hit or miss", "schema": {"type": "string"}},
    "X-Audio-Cache-Entry-Id": {
        "description": "The cache entry serving (or now storing) this phrase, if any",
        "schema": {"type": "string"},
    },
}


@router.post(
    SPEAK.path,
    operation_id="speak",
    response_model=None,
    summary="Lookup-or-synthesize: the phrase from the cache, or synthesized once",
    response_class=Response,
    responses={
        200: {"description": "WAV audio", "content": AUDIO_WAV, "headers": _HEADERS_DOC},
        **errors(400, 401, 403, 404, 502, 503, 504),
    },
    openapi_extra=json_body(SpeakRequest),
)
async def speak(
    request: Request,
    agentId: str,
    principal: Principal = SPEAK.caller(),
    services: Services = ServicesDep,
) -> Response:
    return await speak_response(services, principal, agentId, request)


async def speak_response(
    services: Services,
    principal: Principal,
    agent_id: str,
    request: Request,
    remember: Remember | None = None,
) -> Response:
    """The runtime path, past auth: shared by the route and the hot path (api/hot_path.py),
    which passes ``remember`` to be told of a hit it may answer again from its memo."""
    body = await parse_json(request, SpeakRequest)
    fmt = parse_output_format(body.output_format, request.headers.get("accept"))
    agent = await services.agents.owned(principal.account_id, agent_id)
    # A stream goes out as the engine makes it: as stored (converting needs the whole clip).
    streaming = body.stream and fmt.passthrough
    speak = services.cache.speak_streaming if streaming else services.cache.speak
    config = body.config.as_config() if body.config else None
    reason = personal_skip(agent, body.text)  # known before a streamed miss's headers go
    for attempt in range(2):
        result = await speak(
            agent,
            body.text,
            voice=body.voice,
            language=body.language,
            config=config,
            check_audio=attempt > 0,
        )
        try:
            response = await _respond(services, result, fmt, reason)
        except (StorageUnavailable, NotFound):
            # A hit whose entry was deleted between the lookup and now, or whose audio is
            # lost: ask again, checking the audio (a miss, or the lost audio made again).
            if attempt or not (isinstance(result, SpeakResult) and result.hit):
                raise
            continue
        if (
            remember is not None
            and isinstance(result, SpeakResult)
            and result.hit
            and result.entry is not None
            and isinstance(response, BlobResponse)
        ):
            remember(ServedHit(agent, result.entry, len(body.text), response))
        return response
    raise AssertionError("unreachable")


async def _respond(
    services: Services,
    result: SpeakResult | SharedStream,
    fmt: OutputFormat,
    personal: str | None = None,
) -> Response:
    skipped = skipped_header(personal) if personal else {}
    if isinstance(result, SharedStream):
        return StreamingResponse(
            _wav_stream(result),
            media_type="audio/wav",
            headers={"X-Audio-Cache": "miss", **skipped},
        )
    headers = {"X-Audio-Cache": "hit" if result.hit else "miss", "X-Audio-Format": fmt.name}
    if not result.hit:
        headers.update(skipped)
    return await finished_response(
        services, result, fmt, headers, offload=offload_of(services.settings)
    )


async def finished_response(
    services: Services,
    result: SpeakResult,
    fmt: OutputFormat,
    headers: dict[str, str],
    *,
    offload: str | None = None,
) -> Response:
    """A speak result that is not a shared stream, in ``fmt``: audio made now is converted (the
    variant remembered with its entry), a hit is served from the stored variant. ``headers``
    go with it, the entry's id added to them. Also the OpenAI speech route's answer."""
    if result.entry is not None:
        headers["X-Audio-Cache-Entry-Id"] = str(result.entry.id)
    if result.audio is not None:
        audio = await services.variants.convert(result.audio, fmt)
        if result.entry is not None:
            await services.variants.remember(result.entry.blob_sha256, fmt, audio)
        return Response(audio, media_type=fmt.media_type, headers=headers)
    assert result.entry is not None
    stored = await services.variants.stored(result.entry.blob_sha256, result.entry.size_bytes, fmt)
    return await audio_response(services.blobs, stored, extra_headers=headers, offload=offload)
