"""Streamed misses: audio leaves as the engine makes it; only a complete clip is stored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from support import Api, ThreadedServer

from audiocache.app import create_app
from audiocache.audio.wav import build_wav, parse_wav, streaming_header
from audiocache.services import build_services
from audiocache.tts.base import SynthesisRequest
from audiocache.tts.fake import StreamingFakeEngine, tone_for

HEADER = len(streaming_header(16000))


@pytest.fixture
def fake_engine() -> StreamingFakeEngine:
    return StreamingFakeEngine(chunks=5, chunk_delay=0.05)


def expected_pcm(text: str, engine: StreamingFakeEngine) -> bytes:
    return tone_for(SynthesisRequest(text, "alpha", "en-US", {}), engine.sample_rate)


async def stream_body(api: Api, text: str) -> tuple[httpx.Response, bytes]:
    async with api.client.stream(
        "POST", "/v1/agents/bot/tts", json={"text": text, "stream": True}, headers=api.headers
    ) as r:
        return r, b"".join([c async for c in r.aiter_bytes()])


async def test_complete_clip_is_stored_and_served_as_a_hit(api: Api, fake_engine) -> None:
    await api.create_agent("bot")
    _r, body = await stream_body(api, "Stored once complete")
    listed = await api.entries("bot")
    assert listed["totalCount"] == 1  # visible as soon as the stream ended
    hit = await api.speak("bot", "Stored once complete", stream=True)
    assert hit.headers["x-audio-cache"] == "hit"
    assert hit.content == build_wav(body[HEADER:], sample_rate=16000)
    assert parse_wav(hit.content).duration == pytest.approx(listed["entries"][0]["duration"])
    assert fake_engine.streams == 1


async def test_fifty_concurrent_streams_share_one_synthesis(api: Api, fake_engine) -> None:
    await api.create_agent("bot")
    results = await asyncio.gather(*(stream_body(api, "Shared stream") for _ in range(50)))
    assert fake_engine.streams == 1 and len(fake_engine.calls) == 1
    pcm = expected_pcm("Shared stream", fake_engine)
    for r, body in results:
        if r.headers["x-audio-cache"] == "miss":  # joined the stream
            assert body == streaming_header(16000) + pcm
        else:  # arrived once it was stored: a hit on the same audio
            assert body == build_wav(pcm, sample_rate=16000)
    # A buffered request arriving mid-stream joins it too.
    assert (await api.entries("bot"))["totalCount"] == 1


async def test_buffered_request_joins_a_stream_under_way(api: Api, fake_engine) -> None:
    await api.create_agent("bot")
    streamed = asyncio.create_task(stream_body(api, "Join me"))
    await asyncio.sleep(0.07)
    buffered = await api.speak("bot", "Join me")
    _r, body = await streamed
    assert fake_engine.streams == 1 and len(fake_engine.calls) == 1
    assert buffered.content == build_wav(body[HEADER:], sample_rate=16000)


async def test_espeak_streams_what_it_stores(api: Api) -> None:
    await api.create_agent("bot", voice="en-us")
    r = await api.speak("bot", "Streaming from espeak", stream=True)
    assert r.headers["x-audio-cache"] == "miss"
    info_header = r.content[:HEADER]
    assert info_header == streaming_header(22050)
    hit = await api.speak("bot", "Streaming from espeak")
    assert hit.headers["x-audio-cache"] == "hit"
    stored = parse_wav(hit.content)
    assert hit.content[stored.data_offset :] == r.content[HEADER:]


@pytest.fixture
async def live(settings, fake_engine) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """The app on a real socket, with a key and an agent (admission 'always')."""
    setup = build_services(settings, engines=[fake_engine])
    await setup.db.migrate()
    _record, key = await setup.keys.create("acme", {"audio_cache:read", "audio_cache:write"})
    agent = await setup.agents.create("acme", name="Bot", greeting="hi", language_code="en-US")
    await setup.agents.agents.update(agent.id, voice_id="fake:alpha", admission="always")
    await setup.stop()
    serving = build_services(settings, engines=[fake_engine])
    with ThreadedServer(create_app(settings, serving)) as server:
        yield f"{server.url}/v1/agents/{agent.id}", {"X-API-KEY": key}


async def test_first_bytes_arrive_before_synthesis_ends(live, fake_engine) -> None:
    base, headers = live
    async with httpx.AsyncClient(timeout=10) as client:
        body = {"text": "Streaming now", "stream": True}
        async with client.stream("POST", f"{base}/tts", json=body, headers=headers) as r:
            assert r.status_code == 200 and r.headers["x-audio-cache"] == "miss"
            received = b""
            first_audio_at = None
            async for chunk in r.aiter_raw():
                received += chunk
                if first_audio_at is None and len(received) > HEADER:
                    first_audio_at = time.monotonic()
    assert fake_engine.finished_at is not None and first_audio_at is not None
    # Audio reached the caller while the engine was still producing the rest.
    assert first_audio_at < fake_engine.finished_at
    assert received[:HEADER] == streaming_header(16000)
    assert received[HEADER:] == expected_pcm("Streaming now", fake_engine)


async def test_the_only_caller_hanging_up_stores_nothing(live, fake_engine) -> None:
    base, headers = live
    fake_engine.chunks, fake_engine.chunk_delay = 10, 0.1
    async with httpx.AsyncClient(timeout=10) as client:
        body = {"text": "Bye now", "stream": True}
        async with client.stream("POST", f"{base}/tts", json=body, headers=headers) as r:
            await anext(r.aiter_raw())
        await asyncio.sleep(1.5)  # longer than the whole synthesis would have taken
        listed = (await client.get(f"{base}/audio-cache", headers=headers)).json()
    assert listed["totalCount"] == 0  # nothing partial, and nothing at all: nobody wanted it


async def test_one_of_two_callers_hanging_up_still_gets_the_clip_stored(live, fake_engine) -> None:
    base, headers = live
    body = {"text": "Two callers", "stream": True}
    async with httpx.AsyncClient(timeout=10) as client:
        staying = asyncio.create_task(client.post(f"{base}/tts", json=body, headers=headers))
        await asyncio.sleep(0.02)
        async with client.stream("POST", f"{base}/tts", json=body, headers=headers) as r:
            await anext(r.aiter_raw())
        full = await staying
        listed = (await client.get(f"{base}/audio-cache", headers=headers)).json()
        assert listed["totalCount"] == 1
        entry_id = listed["entries"][0]["id"]
        audio = await client.get(f"{base}/audio-cache/{entry_id}/file", headers=headers)
    assert full.content[HEADER:] == expected_pcm("Two callers", fake_engine)
    assert parse_wav(audio.content).data_size == len(expected_pcm("Two callers", fake_engine))
    assert fake_engine.streams == 1


async def test_an_engine_failing_mid_stream_cuts_the_stream_and_stores_nothing(
    live, fake_engine
) -> None:
    base, headers = live
    fake_engine.fail_after_chunks = 2
    async with httpx.AsyncClient(timeout=10) as client:
        body = {"text": "Broken", "stream": True}
        with pytest.raises(httpx.RemoteProtocolError):
            async with client.stream("POST", f"{base}/tts", json=body, headers=headers) as r:
                async for _chunk in r.aiter_raw():
                    pass
        assert (await client.get(f"{base}/audio-cache", headers=headers)).json()["totalCount"] == 0
        fake_engine.fail_after_chunks = None
        r = await client.post(f"{base}/tts", json=body, headers=headers)
        assert r.content[HEADER:] == expected_pcm("Broken", fake_engine)


async def test_hanging_up_stops_the_espeak_process(services) -> None:
    import psutil

    await services.start()
    try:
        agent = await services.agents.create("acme", name="a", greeting="g", language_code="en")
        shared = await services.cache.speak_streaming(
            agent, "A long announcement. " * 200, voice="en-us"
        )
        chunks = shared.listen()
        await anext(chunks)

        def espeaks() -> list[psutil.Process]:
            return [p for p in psutil.Process().children() if "espeak" in p.name()]

        assert espeaks()
        await chunks.aclose()  # the only listener goes
        for _ in range(50):
            if not espeaks():
                break
            await asyncio.sleep(0.02)
        assert not espeaks()
        assert shared.done and shared.result is None
    finally:
        await services.stop()
