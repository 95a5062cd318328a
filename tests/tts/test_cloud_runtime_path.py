"""A cloud provider behind the runtime path, wired from settings alone (fake ElevenLabs)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fake_providers import API_KEY, FakeElevenLabs, Reply, serve
from support import ALL_GRANTS, assert_envelope

from audiocache.app import create_app
from audiocache.audio.wav import parse_wav
from audiocache.config import Settings
from audiocache.services import build_services

VOICE = "eleven_labs:21m00Tcm4TlvDq8ikWAM"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeElevenLabs]:
    served = serve(FakeElevenLabs())
    try:
        yield served.fake  # type: ignore[misc]
    finally:
        served.server.should_exit = True
        served.thread.join(timeout=5)


@pytest.fixture
async def cloud(tmp_path, fake) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    fake.reset()
    settings = Settings(
        data_dir=tmp_path / "data",
        piper_enabled=False,
        eleven_labs_api_key=API_KEY,
        eleven_labs_base_url=fake.url,
        cloud_max_attempts=2,
        cloud_deadline_seconds=5,
    )
    services = build_services(settings)
    assert "eleven_labs" in services.engines.providers()
    app = create_app(settings, services)
    async with LifespanManager(app) as manager:
        _record, key = await services.keys.create("acme", set(ALL_GRANTS))
        headers = {"X-API-KEY": key}
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body = {
                "name": "Bot",
                "agentId": "bot",
                "responseSettings": {"greeting": "hi"},
                "voiceSettings": {"voiceId": VOICE},
            }
            assert (
                await client.post("/v1/accounts/acme/agents", json=body, headers=headers)
            ).status_code == 200
            await client.put(
                "/v1/agents/bot/cache-policy", json={"admission": "always"}, headers=headers
            )
            yield client, headers


async def test_miss_calls_the_provider_once_then_hits(cloud, fake) -> None:
    client, headers = cloud
    body = {
        "text": "Thanks for calling",
        "config": {"stability": 0.4, "modelId": "eleven_turbo_v2_5"},
    }
    miss = await client.post("/v1/agents/bot/tts", json=body, headers=headers)
    assert miss.status_code == 200 and miss.headers["x-audio-cache"] == "miss"
    assert parse_wav(miss.content).sample_rate == 24000
    [request] = fake.requests
    assert request.headers["xi-api-key"] == API_KEY
    assert request.json()["model_id"] == "eleven_turbo_v2_5"
    assert request.json()["voice_settings"]["stability"] == 0.4
    hit = await client.post("/v1/agents/bot/tts", json=body, headers=headers)
    assert hit.headers["x-audio-cache"] == "hit" and hit.content == miss.content
    assert len(fake.requests) == 1
    entry = (await client.get("/v1/agents/bot/audio-cache", headers=headers)).json()["entries"][0]
    assert (entry["provider"], entry["providerVoiceId"]) == ("eleven_labs", "21m00Tcm4TlvDq8ikWAM")
    # Another model is another key: a miss, never the old audio.
    body["config"]["modelId"] = "eleven_multilingual_v2"
    other = await client.post("/v1/agents/bot/tts", json=body, headers=headers)
    assert other.headers["x-audio-cache"] == "miss" and len(fake.requests) == 2


async def test_provider_failures_are_envelopes_and_store_nothing(cloud, fake) -> None:
    client, headers = cloud
    fake.script(Reply(429, headers={"Retry-After": "1"}), Reply(429, headers={"Retry-After": "1"}))
    r = await client.post("/v1/agents/bot/tts", json={"text": "Busy"}, headers=headers)
    assert_envelope(r, 503, "PROVIDER_RATE_LIMITED")
    assert r.headers["retry-after"] == "1"
    fake.script(Reply(500), Reply(503))
    r = await client.post("/v1/agents/bot/tts", json={"text": "Broken"}, headers=headers)
    assert_envelope(r, 502, "PROVIDER_ERROR")
    listed = (await client.get("/v1/agents/bot/audio-cache", headers=headers)).json()
    assert listed["totalCount"] == 0
    ok = await client.post("/v1/agents/bot/tts", json={"text": "Broken"}, headers=headers)
    assert ok.status_code == 200 and "x-audio-cache-entry-id" in ok.headers
