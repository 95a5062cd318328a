"""The runtime path: lookup-or-synthesize, admission, single flight, hit counting."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa
from support import Api, assert_envelope

from audiocache.audio.wav import parse_wav
from audiocache.storage.db import utcnow
from audiocache.storage.tables import phrase_requests
from audiocache.tts.fake import FakeEngine


async def test_default_admission_stores_on_second_request(api: Api, fake_engine) -> None:
    await api.create_agent("bot", admission="default")
    first = await api.speak("bot", "Let me transfer you")
    second = await api.speak("bot", "Let me transfer you")
    third = await api.speak("bot", "Let me transfer you")
    assert [r.headers["x-audio-cache"] for r in (first, second, third)] == ["miss", "miss", "hit"]
    assert "x-audio-cache-entry-id" not in first.headers
    assert second.headers["x-audio-cache-entry-id"] == third.headers["x-audio-cache-entry-id"]
    assert first.content == second.content == third.content
    assert len(fake_engine.calls) == 2
    assert (await api.entries("bot"))["totalCount"] == 1


async def test_one_off_phrases_are_not_stored(api: Api) -> None:
    await api.create_agent("bot", admission="default")
    for n in range(5):
        r = await api.speak("bot", f"Your reference number is {n}")
        assert r.headers["x-audio-cache"] == "miss"
    assert (await api.entries("bot"))["totalCount"] == 0


async def test_window_expiry_resets_the_count(api: Api) -> None:
    await api.create_agent("bot", admission="default")
    await api.speak("bot", "Goodbye")
    async with api.services.db.write() as conn:  # pretend the first ask was 25 h ago
        await conn.execute(
            phrase_requests.update().values(window_started_at=utcnow() - timedelta(hours=25))
        )
    second = await api.speak("bot", "Goodbye")
    assert "x-audio-cache-entry-id" not in second.headers
    third = await api.speak("bot", "Goodbye")
    assert "x-audio-cache-entry-id" in third.headers


async def test_policy_always_never_and_min_hits(api: Api) -> None:
    await api.create_agent("always", admission="always")
    assert "x-audio-cache-entry-id" in (await api.speak("always", "Hi")).headers

    await api.create_agent("never", admission="never")
    for _ in range(3):
        r = await api.speak("never", "Hi")
        assert r.headers["x-audio-cache"] == "miss" and "x-audio-cache-entry-id" not in r.headers

    await api.create_agent("three", admission="default")
    r = await api.client.put(
        "/v1/agents/three/cache-policy",
        json={"admission": "min_hits", "minHits": 3, "windowSeconds": 60},
        headers=api.headers,
    )
    assert r.status_code == 200 and r.json()["minHits"] == 3
    ids = [(await api.speak("three", "Hi")).headers.get("x-audio-cache-entry-id") for _ in "abc"]
    assert ids[:2] == [None, None] and ids[2] is not None


async def test_admission_counter_is_cleared_once_stored(api: Api) -> None:
    await api.create_agent("bot", admission="default")
    await api.speak("bot", "Please hold")
    await api.speak("bot", "Please hold")
    async with api.services.db.read() as conn:
        left = (await conn.execute(sa.select(sa.func.count()).select_from(phrase_requests))).one()
    assert left[0] == 0


async def test_invalid_policy_is_400(api: Api) -> None:
    await api.create_agent("bot")
    for body in (
        {"admission": "sometimes"},
        {"admission": "min_hits"},
        {"admission": "min_hits", "minHits": 0, "windowSeconds": 10},
    ):
        r = await api.client.put("/v1/agents/bot/cache-policy", json=body, headers=api.headers)
        assert_envelope(r, 400)


async def test_fifty_concurrent_misses_share_one_synthesis(api: Api, fake_engine) -> None:
    await api.create_agent("bot", admission="default")
    fake_engine.delay_seconds = 0.2
    responses = await asyncio.gather(*(api.speak("bot", "Thanks for waiting") for _ in range(50)))
    assert len(fake_engine.calls) == 1
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    # 50 callers asked at once: far from a one-off, so the phrase is stored.
    listed = await api.entries("bot")
    assert listed["totalCount"] == 1
    hit = await api.speak("bot", "Thanks for waiting")
    assert hit.headers["x-audio-cache"] == "hit" and len(fake_engine.calls) == 1


async def test_a_failed_synthesis_is_shared_and_not_stored(api: Api, fake_engine) -> None:
    await api.create_agent("bot")
    fake_engine.delay_seconds = 0.05
    fake_engine.fail_next = 1
    responses = await asyncio.gather(*(api.speak("bot", "Boom") for _ in range(5)))
    for r in responses:
        assert_envelope(r, 502, "SYNTHESIS_FAILED")
    assert (await api.entries("bot"))["totalCount"] == 0
    ok = await api.speak("bot", "Boom")
    assert ok.status_code == 200 and "x-audio-cache-entry-id" in ok.headers


async def test_hits_are_counted_off_the_request_path(api: Api) -> None:
    await api.create_agent("bot")
    entry_id = await api.seed_entry("bot", "Welcome back")
    for _ in range(7):
        assert (await api.speak("bot", "Welcome back")).headers["x-audio-cache"] == "hit"
    # The list adds this process's unflushed counts; the database catches up within the interval.
    assert (await api.entries("bot"))["entries"][0]["hitCount"] == 7
    await asyncio.sleep(api.services.settings.hit_flush_seconds * 3)
    assert (await api.entries("bot"))["entries"][0]["hitCount"] == 7
    stored = await api.services.entries.get("bot", int(entry_id))
    assert stored is not None and stored.hit_count == 7 and stored.last_hit_at is not None


async def test_hit_counts_are_flushed_on_shutdown(services, fake_engine) -> None:
    services.settings.hit_flush_seconds = 3600
    services.hits.interval_seconds = 3600
    await services.start()
    agent = await services.agents.create("acme", name="a", greeting="g", language_code="en")
    await services.agents.set_policy(agent, "always", None, None)
    agent = await services.agents.owned("acme", agent.id)
    stored = await services.cache.speak(agent, "Hello", voice="fake:alpha")
    for _ in range(3):
        assert (await services.cache.speak(agent, "Hello", voice="fake:alpha")).hit
    await services.stop()
    services2 = type(services)(**{**services.__dict__})
    from audiocache.services import build_services

    fresh = build_services(services2.settings, engines=[FakeEngine()])
    await fresh.db.migrate()
    entry = await fresh.entries.get(agent.id, stored.entry.id)
    await fresh.stop()
    assert entry is not None and entry.hit_count == 3


async def test_key_covers_voice_model_language_and_tuning(api: Api, fake_engine) -> None:
    await api.create_agent("bot")
    base = {"voice": "fake:alpha", "language": "en-US", "config": {"speed": 1.0}}
    variants = [
        {**base, "voice": "fake:beta"},
        {**base, "language": "en-GB"},
        {**base, "config": {"speed": 1.2}},
        {**base, "config": {"speed": 1.0, "modelId": "fake-2"}},
        {**base, "config": {"speed": 1.0, "stability": 0.5}},
    ]
    first = await api.speak("bot", "Same words", **base)
    assert first.headers["x-audio-cache"] == "miss"
    for variant in variants:
        assert (await api.speak("bot", "Same words", **variant)).headers["x-audio-cache"] == "miss"
    # Irrelevant differences: whitespace, 1 vs 1.0, latency-only instantMode.
    same = {**base, "config": {"speed": 1, "instantMode": True}}
    r = await api.speak("bot", "  Same   words ", **same)
    assert r.headers["x-audio-cache"] == "hit"


async def test_voice_defaults_to_the_agents_voice(api: Api, fake_engine) -> None:
    await api.create_agent("bot", voice="fake:beta")
    await api.speak("bot", "Hello")
    assert fake_engine.calls[-1].voice == "beta"
    entry = (await api.entries("bot"))["entries"][0]
    assert entry["provider"] == "fake" and entry["providerVoiceId"] == "beta"
    assert entry["languageCode"] == "en-US"


@pytest.mark.parametrize(
    ("voice", "code"),
    [
        ("fake:nobody", "INVALID_VOICE"),
        ("cloudy:x", "PROVIDER_UNAVAILABLE"),
        (":", "INVALID_VOICE"),
    ],
)
async def test_bad_voices_are_400(api: Api, voice: str, code: str) -> None:
    await api.create_agent("bot")
    assert_envelope(await api.speak("bot", "Hello", voice=voice), 400, code)


async def test_espeak_makes_real_entries(api: Api) -> None:
    await api.create_agent("bot", voice="en-gb")
    r = await api.speak("bot", "Thank you for calling, how can I help you today?", language="en-GB")
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    info = parse_wav(r.content)
    assert info.sample_rate == 22050 and info.channels == 1 and info.bits_per_sample == 16
    assert 1.5 < info.duration < 6.0
    entry = (await api.entries("bot"))["entries"][0]
    assert entry["provider"] == "espeak" and entry["providerVoiceId"] == "en-gb"
    assert entry["languageCode"] == "en-GB"
    assert abs(entry["duration"] - info.duration) < 1e-3
    # Not silence: a real voice has energy.
    samples = memoryview(r.content)[info.data_offset :].cast("h")
    assert max(abs(s) for s in samples) > 3000


async def test_espeak_speed_changes_the_audio(api: Api) -> None:
    await api.create_agent("bot", voice="en-us")
    slow = await api.speak("bot", "One two three four five", config={"speed": 0.7})
    fast = await api.speak("bot", "One two three four five", config={"speed": 1.5})
    assert parse_wav(slow.content).duration > parse_wav(fast.content).duration * 1.5


async def test_lost_audio_is_a_503_on_download_and_healed_on_the_runtime_path(
    api: Api, fake_engine
) -> None:
    await api.create_agent("bot")
    entry_id = await api.seed_entry("bot", "Lost and found")
    entry = await api.services.entries.get("bot", int(entry_id))
    assert entry is not None
    await api.services.blobs.delete(entry.blob_sha256)  # lost outside audiocache
    r = await api.client.get(f"/v1/agents/bot/audio-cache/{entry_id}/file", headers=api.headers)
    assert_envelope(r, 503, "STORAGE_UNAVAILABLE")
    healed = await api.speak("bot", "Lost and found")
    assert healed.status_code == 200 and healed.headers["x-audio-cache-entry-id"] == entry_id
    assert len(fake_engine.calls) == 2
    r = await api.client.get(f"/v1/agents/bot/audio-cache/{entry_id}/file", headers=api.headers)
    assert r.status_code == 200 and r.content == healed.content
    assert (await api.speak("bot", "Lost and found")).headers["x-audio-cache"] == "hit"
