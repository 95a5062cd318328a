"""A live audiocache for the plugin tests: the app under uvicorn on a free loopback port
(``support.ThreadedServer``), one key and one agent that stores what it is given."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from live_cache import LiveCache
from support import ThreadedServer

from audiocache.app import create_app
from audiocache.config import Settings
from audiocache.services import build_services
from audiocache.tts.fake import FakeEngine

ACCOUNT, AGENT = "acme", "bot"


@pytest.fixture
async def live_cache(settings: Settings) -> AsyncIterator[LiveCache]:
    setup = build_services(settings, engines=[FakeEngine()])
    await setup.db.migrate()
    _record, key = await setup.keys.create(ACCOUNT, {"audio_cache:read", "audio_cache:write"})
    agent = await setup.agents.create(
        ACCOUNT, agent_id=AGENT, name="Bot", greeting="hi", language_code="en-US"
    )
    await setup.agents.agents.update(
        agent.id, voice_id="fake:alpha", admission="always", personal_data="cache"
    )
    await setup.stop()
    serving = build_services(settings, engines=[FakeEngine()])
    with ThreadedServer(create_app(settings, serving)) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            yield LiveCache(server.url, key, agent.id, http)


@pytest.fixture
def stalled_url() -> Iterator[str]:
    """A port that takes connections and never answers: a cache slower than any budget."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def closed_url() -> str:
    """A port nobody listens on: every request fails to connect."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
