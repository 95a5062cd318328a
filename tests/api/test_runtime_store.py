"""Lookup and store: the cache in front of a runtime's own TTS (issue 11, point 2)."""

from __future__ import annotations

import io
import json
import wave
from typing import Any

import httpx
from support import Api, assert_envelope, sine_wav

AGENT = "bot"
CACHE = f"/v1/agents/{AGENT}/audio-cache"


async def lookup(api: Api, text: str, **extra: Any) -> httpx.Response:
    return await api.client.post(
        f"{CACHE}/lookup", json={"text": text, **extra}, headers=api.headers
    )


async def store(api: Api, text: str, wav: bytes, **extra: Any) -> httpx.Response:
    return await api.client.post(
        f"{CACHE}/store",
        files={"file": ("take.wav", wav, "audio/wav")},
        data={"settings": json.dumps({"text": text, **extra})},
        headers=api.headers,
    )


async def policy(api: Api, **body: Any) -> None:
    r = await api.client.put(f"/v1/agents/{AGENT}/cache-policy", json=body, headers=api.headers)
    assert r.status_code == 200, r.text


async def stored_entry(api: Api, entry_id: str) -> Any:
    await api.services.hits.flush()
    agent = await api.services.agents.owned("acme", AGENT)
    return await api.services.entries.get(agent.id, int(entry_id))


def rate_of(wav: bytes) -> int:
    with wave.open(io.BytesIO(wav)) as w:
        return w.getframerate()


async def test_lookup_is_not_cached_then_the_runtime_paths_audio(api: Api) -> None:
    await api.create_agent(AGENT)
    assert_envelope(await lookup(api, "Thanks for calling"), 404, "NOT_CACHED")
    entry_id = await api.seed_entry(AGENT, "Thanks for calling")
    r = await lookup(api, "Thanks for calling")
    assert r.status_code == 200, r.text
    assert r.headers["x-audio-cache-entry-id"] == entry_id
    download = await api.client.get(f"{CACHE}/{entry_id}/file", headers=api.headers)
    assert r.content == download.content and r.content[:4] == b"RIFF"
    # the same key parts as the runtime path: whitespace is normalised, the voice resolved
    assert (await lookup(api, "  Thanks   for calling ", voice="fake:alpha")).status_code == 200
    assert_envelope(await lookup(api, "Thanks for calling", voice="fake:beta"), 404, "NOT_CACHED")
    assert_envelope(await lookup(api, "Thanks for calling", language="fr-FR"), 404, "NOT_CACHED")


async def test_lookup_takes_an_output_format(api: Api) -> None:
    await api.create_agent(AGENT)
    await api.seed_entry(AGENT, "Thanks for calling")
    r = await lookup(api, "Thanks for calling", output_format="wav_8000")
    assert r.status_code == 200, r.text
    assert rate_of(r.content) == 8000


async def test_lookup_adds_no_hit_and_no_ttl_refresh(api: Api) -> None:
    await api.create_agent(AGENT)
    entry_id = await api.seed_entry(AGENT, "Thanks for calling")
    before = await stored_entry(api, entry_id)
    for _ in range(3):
        assert (await lookup(api, "Thanks for calling")).status_code == 200
    batch = {"phrases": [{"text": "Thanks for calling"}]}
    assert (
        await api.client.post(f"{CACHE}/lookup-batch", json=batch, headers=api.headers)
    ).status_code == 200
    await api.services.hits.flush()
    after = await stored_entry(api, entry_id)
    assert after.hit_count == before.hit_count
    assert after.last_hit_at == before.last_hit_at  # what a last_hit TTL counts from
    # whereas a runtime-path hit does move both (so the check above can fail)
    assert (await api.speak(AGENT, "Thanks for calling")).headers["x-audio-cache"] == "hit"
    await api.services.hits.flush()
    hit = await stored_entry(api, entry_id)
    assert hit.hit_count == before.hit_count + 1 and hit.last_hit_at != before.last_hit_at


async def test_lookup_adds_no_admission_count(api: Api) -> None:
    await api.create_agent(AGENT)
    await policy(api, admission="min_hits", minHits=2, windowSeconds=3600)
    for _ in range(3):
        assert_envelope(await lookup(api, "Please hold"), 404, "NOT_CACHED")
    # had the lookups counted, this first request would be the second and be stored
    first = await api.speak(AGENT, "Please hold")
    assert "x-audio-cache-entry-id" not in first.headers
    second = await api.speak(AGENT, "Please hold")
    assert second.headers.get("x-audio-cache-entry-id")


async def test_batch_lookup_says_which_phrases_are_cached(api: Api) -> None:
    await api.create_agent(AGENT)
    entry_id = await api.seed_entry(AGENT, "Thanks for calling")
    body = {"phrases": [{"text": "Thanks for calling"}, {"text": "Goodbye", "voice": "fake:beta"}]}
    r = await api.client.post(f"{CACHE}/lookup-batch", json=body, headers=api.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "results": [
            {"index": 0, "text": "Thanks for calling", "cached": True, "entryId": entry_id},
            {"index": 1, "text": "Goodbye", "cached": False, "entryId": None},
        ],
        "cached": 1,
        "missing": 1,
    }
    too_many = {"phrases": [{"text": "x"}] * 501}
    r = await api.client.post(f"{CACHE}/lookup-batch", json=too_many, headers=api.headers)
    assert_envelope(r, 400)


async def test_store_then_lookup_and_runtime_path_hit(api: Api, fake_engine: Any) -> None:
    await api.create_agent(AGENT)
    wav = sine_wav(0.3, rate=24000)
    r = await store(api, "Welcome back", wav)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stored"] and body["created"] and body["reason"] is None
    entry_id = body["entry"]["id"]
    found = await lookup(api, "Welcome back")
    assert found.status_code == 200 and found.content == wav
    calls = len(fake_engine.calls)
    spoken = await api.speak(AGENT, "Welcome back")
    assert spoken.headers["x-audio-cache"] == "hit" and spoken.content == wav
    assert len(fake_engine.calls) == calls  # the runtime path found the stored take
    # idempotent: the second store keeps the first take
    again = await store(api, "Welcome back", sine_wav(0.3, rate=24000, freq=880))
    assert again.status_code == 200, again.text
    assert again.json()["stored"] and not again.json()["created"]
    assert again.json()["entry"]["id"] == entry_id
    assert (await lookup(api, "Welcome back")).content == wav
    assert (await api.entries(AGENT))["totalCount"] == 1


async def test_store_for_a_provider_this_server_has_no_engine_for(api: Api) -> None:
    await api.create_agent(AGENT)
    wav = sine_wav(0.2)
    r = await store(api, "Hello there", wav, voice="cartesia:sonic-voice", config={"speed": 1.1})
    assert r.status_code == 200, r.text
    assert r.json()["entry"]["provider"] == "cartesia"
    assert (await lookup(api, "Hello there", voice="cartesia:sonic-voice")).status_code == 404
    hit = await lookup(api, "Hello there", voice="cartesia:sonic-voice", config={"speed": 1.1})
    assert hit.status_code == 200 and hit.content == wav


async def test_store_never_keeps_personal_data(api: Api) -> None:
    await api.create_agent(AGENT, personal_data="skip")  # the default of a new agent
    for text in ("Your balance is 42 pounds", "Your code is four two seven one"):
        r = await store(api, text, sine_wav(0.2))
        assert r.status_code == 200, r.text
        assert r.json() == {
            "stored": False,
            "created": False,
            "reason": "personal_data",
            "entry": None,
        }
        assert_envelope(await lookup(api, text), 404, "NOT_CACHED")
    assert (await api.entries(AGENT))["totalCount"] == 0
    r = await api.client.get(f"/v1/agents/{AGENT}/audio-cache/stats", headers=api.headers)
    assert r.json()["privacySkipped"] == 2
    # an agent that chose to cache such phrases gets them stored
    await policy(api, admission="always", personalData="cache")
    r = await store(api, "Your balance is 42 pounds", sine_wav(0.2))
    assert r.json()["stored"] is True


async def test_store_follows_admission(api: Api) -> None:
    await api.create_agent(AGENT)
    await policy(api, admission="never")
    r = await store(api, "One moment", sine_wav(0.2))
    assert r.json()["reason"] == "admission" and not r.json()["stored"]
    await policy(api, admission="min_hits", minHits=2, windowSeconds=3600)
    first = await store(api, "One moment", sine_wav(0.2))
    assert first.json()["reason"] == "admission"
    second = await store(api, "One moment", sine_wav(0.2))
    assert second.json()["stored"] and second.json()["created"]


async def test_store_refuses_what_is_not_a_bounded_wav(api: Api) -> None:
    await api.create_agent(AGENT)
    assert_envelope(await store(api, "Hi", b"not a wav at all"), 400)
    r = await api.client.post(
        f"{CACHE}/store",
        files={"file": ("take.wav", sine_wav(0.2), "audio/wav")},
        data={"settings": json.dumps({"voice": "fake:alpha"})},
        headers=api.headers,
    )
    assert_envelope(r, 400, "INVALID_SETTINGS")
    huge = b"\0" * (api.services.settings.max_upload_bytes + 1)
    assert_envelope(await store(api, "Hi", huge), 400, "PAYLOAD_TOO_LARGE")
    assert (await api.entries(AGENT))["totalCount"] == 0
