"""Helpers of the client tests: a live server's handle, its keys, an agent to work on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from support import ALL_GRANTS

from audiocache.app import create_app
from audiocache.client import AsyncClient, Client
from audiocache.config import Settings
from audiocache.services import build_services
from audiocache.tts.espeak import EspeakEngine
from audiocache.tts.fake import FakeEngine

ACCOUNT = "acme"


@dataclass
class Live:
    url: str
    key: str  # every grant on ACCOUNT
    read_key: str  # audio_cache:read only
    other_key: str  # every grant on another account
    admin_key: str  # "*" on ACCOUNT (the audit log wants it)
    settings: Settings
    app: Any

    def client(self, key: str | None = None, **options: Any) -> Client:
        return Client(self.url, key or self.key, **{"account": ACCOUNT, **options})

    def aclient(self, key: str | None = None, **options: Any) -> AsyncClient:
        return AsyncClient(self.url, key or self.key, **{"account": ACCOUNT, **options})


async def prepare(settings: Settings) -> tuple[str, str, str, str]:
    setup = build_services(settings, engines=[])
    await setup.db.migrate()
    try:
        _r, key = await setup.keys.create(ACCOUNT, set(ALL_GRANTS))
        _r, read_key = await setup.keys.create(ACCOUNT, {"audio_cache:read"})
        _r, other_key = await setup.keys.create("globex", set(ALL_GRANTS))
        _r, admin_key = await setup.keys.create(ACCOUNT, {"*"})
    finally:
        await setup.stop()
    return key, read_key, other_key, admin_key


def served(settings: Settings) -> Any:
    return create_app(settings, build_services(settings, engines=[EspeakEngine(), FakeEngine()]))


def new_agent(client: Client, agent_id: str = "desk") -> str:
    """An agent (fake engine) whose phrases are always stored."""
    from audiocache.client import CachePolicy

    client.create_agent("Desk", agent_id=agent_id, voice="fake:alpha", language="en-US")
    client.set_cache_policy(agent_id, CachePolicy(admission="always", personal_data="cache"))
    return agent_id
