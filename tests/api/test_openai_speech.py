"""``POST /v1/audio/speech`` in process, over every backend: what it stores and serves."""

from __future__ import annotations

import httpx
import numpy as np
from support import Api

from audiocache.services import Services
from audiocache.tts.fake import FakeEngine


async def _speech(api: Api, **body: object) -> httpx.Response:
    return await api.client.post(
        "/v1/audio/speech",
        json={"model": "bot", "voice": "alloy", **body},
        headers={"Authorization": f"Bearer {api.key}"},
    )


async def test_pcm_miss_is_stored_once_and_served_from_storage(
    api: Api, services: Services, fake_engine: FakeEngine
) -> None:
    await api.create_agent("bot", voice="fake:alpha")
    text = "Thank you for calling, how can I help?"
    miss = await _speech(api, input=text, response_format="pcm")
    assert miss.status_code == 200, miss.text
    assert miss.headers["x-audio-cache"] == "miss"
    hit = await _speech(api, input=text, response_format="pcm")
    again = await _speech(api, input=text, response_format="pcm")
    assert (hit.headers["x-audio-cache"], again.headers["x-audio-cache"]) == ("hit", "hit")
    assert len(fake_engine.calls) == 1
    (entry,) = (await api.entries("bot"))["entries"]
    pcm = np.frombuffer(again.content, dtype="<i2")
    assert abs(len(pcm) / 24000 - entry["duration"]) < 0.01
    assert again.content == hit.content == miss.content
    # The 24 kHz copy is a stored variant, converted once however often it is asked for.
    assert services.variants.conversions == 1


async def test_wav_hit_is_the_stored_blob(api: Api, fake_engine: FakeEngine) -> None:
    await api.create_agent("bot", voice="fake:alpha")
    first = await _speech(api, input="One moment please.", response_format="wav")
    second = await _speech(api, input="One moment please.", response_format="wav")
    assert second.headers["x-audio-cache"] == "hit"
    assert second.headers["content-type"] == "audio/wav"
    stored = await api.client.get(
        f"/v1/agents/bot/audio-cache/{second.headers['x-audio-cache-entry-id']}/file",
        headers=api.headers,
    )
    assert second.content == stored.content
    assert first.status_code == 200 and len(fake_engine.calls) == 1


async def test_the_x_api_key_header_is_not_enough(api: Api) -> None:
    await api.create_agent("bot", voice="fake:alpha")
    r = await api.client.post(
        "/v1/audio/speech",
        json={"model": "bot", "voice": "alloy", "input": "Hi", "response_format": "wav"},
        headers=api.headers,
    )
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"


async def test_an_mp3_variant_is_encoded_once(
    api: Api, services: Services, fake_engine: FakeEngine
) -> None:
    await api.create_agent("bot", voice="fake:alpha")
    text = "Is there anything else I can do for you?"
    bodies = [(await _speech(api, input=text, response_format="mp3")) for _ in range(3)]
    assert [b.headers["x-audio-cache"] for b in bodies] == ["miss", "hit", "hit"]
    assert bodies[0].content == bodies[1].content == bodies[2].content
    assert bodies[2].headers["content-type"] == "audio/mpeg"
    assert services.variants.conversions == 1 and len(fake_engine.calls) == 1


async def test_who_may_speak(api: Api) -> None:
    """The auth matrix of test_auth_matrix.py, for a Bearer key and OpenAI's error body."""
    await api.create_agent("bot", voice="fake:alpha")
    record, revoked = await api.services.keys.create("acme", {"audio_cache:read"})
    assert await api.services.keys.revoke(record.key_id)
    callers = {
        None: (401, "invalid_api_key"),
        "ack_000000000000_thisKeyWasNeverIssued": (401, "invalid_api_key"),
        revoked: (401, "invalid_api_key"),
        await api.new_key({"audio_cache:write", "agents:write"}): (403, "insufficient_permissions"),
        await api.new_key({"*"}, account="globex"): (404, "model_not_found"),
        await api.new_key({"audio_cache:read"}): (200, None),
    }
    body = {"model": "bot", "voice": "alloy", "input": "Hello", "response_format": "wav"}
    for key, (status, code) in callers.items():
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        r = await api.client.post("/v1/audio/speech", json=body, headers=headers)
        assert r.status_code == status, (key, r.text)
        if code is not None:
            assert r.json()["error"]["code"] == code


async def test_sse_stream_format_is_answered_as_audio(api: Api) -> None:
    """As OpenAI-compatible servers do: LiveKit's OpenAI plugin asks for ``sse`` for every
    model but tts-1 and reads the Content-Type of what came."""
    await api.create_agent("bot", voice="fake:alpha")
    text = "Thanks for holding the line."
    plain = await _speech(api, input=text, response_format="pcm")
    sse = await _speech(api, input=text, response_format="pcm", stream_format="sse")
    assert sse.status_code == 200, sse.text
    assert sse.headers["content-type"].startswith("audio/pcm")
    assert sse.headers["x-audio-stream-format"] == "audio"
    assert "x-audio-stream-format" not in plain.headers
    assert sse.content == plain.content
    bad = await _speech(api, input=text, stream_format="json")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "stream_format"
