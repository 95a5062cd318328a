"""A live server for the client tests: the app under uvicorn on a free port (ThreadedServer),
on each backend pair, with espeak-ng and the fake engine, and keys for the error cases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from live_client import Live, prepare, served
from support import ThreadedServer, require_tool

from audiocache.client import Client
from audiocache.config import Settings


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    """The backend pair's settings, with one upload slot (the retry test fills it)."""
    return settings.model_copy(update={"max_concurrent_uploads": 1})


@pytest.fixture
async def live(live_settings: Settings) -> AsyncIterator[Live]:
    require_tool("espeak-ng")
    keys = await prepare(live_settings)
    app = served(live_settings)
    with ThreadedServer(app) as server:
        yield Live(server.url, *keys, settings=live_settings, app=app)


@pytest.fixture
def ac(live: Live) -> Iterator[Client]:
    with live.client() as c:
        yield c
