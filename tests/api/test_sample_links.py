"""Signed sample links point at the public URL or a trusted host, never at a forged Host."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from support import Api, ThreadedServer, require_tool

from audiocache.app import create_app
from audiocache.audio.wav import parse_wav
from audiocache.config import Settings
from audiocache.services import build_services
from audiocache.tts.espeak import EspeakEngine


# Error rendering and link building do not touch storage: one backend is enough.
@pytest.fixture
def backend() -> str:
    return "sqlite+fs"


BASE = "/v1/accounts/acme/voice-library"
ROBOT = {"name": "Robot", "provider": "espeak", "providerVoiceId": "en-gb", "config": {}}
GRANTS = {"voice_library:read", "voice_library:write"}


async def sample_url(client: httpx.AsyncClient, key: str, host: str | None = None) -> str:
    r = await client.post(BASE, json=ROBOT, headers={"X-API-KEY": key})
    assert r.status_code == 200, r.text
    headers = {"X-API-KEY": key, **({"Host": host} if host else {})}
    r = await client.get(f"{BASE}/{r.json()['voice']['id']}/sample", headers=headers)
    assert r.status_code == 200, r.text
    url: str = r.json()["sampleUrl"]
    return url


def live_settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", key_cache_seconds=0, **extra)  # type: ignore[arg-type]


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """A real server on 127.0.0.1 with no public URL; yields its URL and a key."""
    require_tool("espeak-ng")
    settings = live_settings(tmp_path)
    setup = build_services(settings, engines=[EspeakEngine()])
    await setup.db.migrate()
    _record, key = await setup.keys.create("acme", GRANTS)
    await setup.stop()
    with ThreadedServer(create_app(settings, build_services(settings))) as server:
        yield server.url, key


async def test_forged_host_gets_the_servers_own_address(live: tuple[str, str]) -> None:
    url, key = live
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        link = await sample_url(client, key, host="evil.example")
        assert "evil.example" not in link
        assert link.startswith(f"{url}/v1/voice-samples/"), link
        audio = await client.get(link)
    assert audio.status_code == 200 and parse_wav(audio.content).duration > 0


async def test_trusted_host_is_kept_with_its_port(live: tuple[str, str]) -> None:
    url, key = live
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        link = await sample_url(client, key, host="localhost:4321")
    assert link.startswith("http://localhost:4321/v1/voice-samples/"), link


async def test_public_url_wins_over_any_host(api: Api) -> None:
    api.services.settings.public_url = "https://tts.example.com/"
    link = await sample_url(api.client, api.key, host="evil.example")
    assert link.startswith("https://tts.example.com/v1/voice-samples/"), link


async def test_configured_trusted_host_is_used(api: Api) -> None:
    api.services.settings.trusted_hosts = "cdn.example.com, localhost"
    link = await sample_url(api.client, api.key, host="CDN.example.com")
    assert link.lower().startswith("http://cdn.example.com/v1/voice-samples/"), link
    assert "evil.example" not in await sample_url(api.client, api.key, host="evil.example")


def test_bind_host_is_always_trusted() -> None:
    settings = Settings(host="10.1.2.3", trusted_hosts="")
    assert settings.trusted_host_names() == {"10.1.2.3"}
    assert {"localhost", "127.0.0.1", "::1"} <= Settings().trusted_host_names()
