"""The live server of the schemathesis runs and its real data, kept in shape between requests.

The server holds account ``acme`` with agent ``bot`` (admission ``always``) and a few cached
entries, and an agent with entries in another account. What a generated request deletes or
changes (the agent, its entries, its policy) is repaired before the next one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from schemathesis_documents import reference_run_excludes
from support import ALL_GRANTS, LiveServer

IN_CI = os.environ.get("CI") == "true"
ACCOUNT, AGENT = "acme", "bot"
OTHER_ACCOUNT, OTHER_AGENT = "globex", "rival"
VOICE = "en-us"
SEED_TEXTS = ("Hello there", "Thanks for calling", "Please hold", "Goodbye")
# Auth is resolved when schemathesis builds its cases, partly at collection, before the server
# and its key exist: cases carry this placeholder, swapped for the real key when sent.
PENDING_KEY = "pending-key-set-when-the-server-runs"


@dataclass
class World:
    """The server's real data, kept in shape while generated requests delete and change it."""

    url: str
    key: str
    other_key: str
    client: httpx.Client
    entry_ids: list[str] = field(default_factory=list)
    gone_entry_ids: list[str] = field(default_factory=list)
    other_entry_ids: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=lambda: [AGENT])  # acme's, seen alive
    voice_ids: list[str] = field(default_factory=list)  # acme's voice library
    sample_tokens: list[str] = field(default_factory=list)  # from sample links handed out
    dirty: bool = True
    repairs: int = 0

    def call(self, method: str, path: str, *, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"X-API-KEY": key or self.key}
        return self.client.request(method, f"{self.url}{path}", headers=headers, **kw)

    def ensure(self) -> None:
        """Agent ``bot`` exists, with admission ``always``, and holds every seed phrase."""
        if not self.dirty:
            return
        self.repairs += 1
        if self.call("GET", f"/v1/agents/{AGENT}/cache-policy").status_code == 404:
            body = {
                "name": "Bot",
                "agentId": AGENT,
                "responseSettings": {"greeting": "Hello", "languageCode": "en-US"},
                "voiceSettings": {"voiceId": VOICE},
            }
            created = self.call("POST", f"/v1/accounts/{ACCOUNT}/agents", json=body)
            assert created.status_code == 200, created.text
        policy = {"admission": "always"}
        updated = self.call("PUT", f"/v1/agents/{AGENT}/cache-policy", json=policy)
        assert updated.status_code == 200, updated.text
        ids = []
        for text in SEED_TEXTS:
            body = {"text": text, "voice": VOICE}
            spoken = self.call("POST", f"/v1/agents/{AGENT}/tts", json=body)
            assert spoken.status_code == 200, spoken.text
            ids.append(spoken.headers["x-audio-cache-entry-id"])
        self.gone_entry_ids = sorted(set(self.gone_entry_ids + self.entry_ids) - set(ids))[-20:]
        self.entry_ids = ids
        self.dirty = False

    def observe(self, method: str, path: str, params: dict[str, Any], response: Any) -> None:
        """Note what a generated request changed: repair before the next one if it broke data."""
        if not 200 <= response.status_code < 300:
            return
        if params.get("agentId") == AGENT and (
            (method == "DELETE" and path.endswith(("/{agentId}", "/{entryId}")))
            or path.endswith("/bulk-delete")
            or (method == "PUT" and path.endswith("/cache-policy"))
        ):
            self.dirty = True
        if method == "POST" and path.endswith(("/agents", "/duplicate")):
            agent_id = response.json().get("agentId")
            if agent_id and agent_id not in self.agents:
                self.agents = [*self.agents[-19:], agent_id]
        if method == "GET" and path.endswith("/sample"):
            token = response.json()["sampleUrl"].rstrip("/").rsplit("/", 1)[-1]
            self.sample_tokens = [*self.sample_tokens[-9:], token]


class Live:
    """The running world, for hooks that schemathesis calls outside any fixture."""

    world: World | None = None


@contextmanager
def live_world(data_dir: Path) -> Iterator[World]:
    """A server on ``data_dir`` with its data seeded, published as ``Live.world`` meanwhile."""
    if shutil.which("espeak-ng") is None:
        message = "espeak-ng is not installed (make test installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    server = LiveServer(data_dir)
    # Defaults, not whatever the caller's shell exports.
    server.env = {k: v for k, v in server.env.items() if not k.startswith("AUDIOCACHE_")}
    server.start()
    try:
        keys = {}
        for account in (ACCOUNT, OTHER_ACCOUNT):
            grants = [arg for grant in ALL_GRANTS for arg in ("--grant", grant)]
            made = server.cli("keys", "create", "--account", account, *grants)
            assert made.returncode == 0, made.stderr
            keys[account] = made.stdout.strip().splitlines()[-1]
        with httpx.Client(timeout=30) as client:
            world = World(server.url, keys[ACCOUNT], keys[OTHER_ACCOUNT], client)
            world.ensure()
            _seed_other_account(world)
            _seed_voice_library(world)
            Live.world = world
            yield world
    finally:
        Live.world = None
        server.stop()


def _seed_other_account(world: World) -> None:
    """An agent with entries in another account: acme's key must get 404 for them, never data."""
    key = world.other_key
    body = {
        "name": "Rival",
        "agentId": OTHER_AGENT,
        "responseSettings": {"greeting": "Hi"},
        "voiceSettings": {"voiceId": VOICE},
    }
    created = world.call("POST", f"/v1/accounts/{OTHER_ACCOUNT}/agents", key=key, json=body)
    assert created.status_code == 200, created.text
    policy = {"admission": "always"}
    updated = world.call("PUT", f"/v1/agents/{OTHER_AGENT}/cache-policy", key=key, json=policy)
    assert updated.status_code == 200, updated.text
    for text in SEED_TEXTS[:2]:
        spoken = world.call("POST", f"/v1/agents/{OTHER_AGENT}/tts", key=key, json={"text": text})
        assert spoken.status_code == 200, spoken.text
        world.other_entry_ids.append(spoken.headers["x-audio-cache-entry-id"])


def _seed_voice_library(world: World) -> None:
    """A voice in acme's library, once the server serves one (the reference run includes it)."""
    if reference_run_excludes() is not None:
        return
    body = {"name": "Bot voice", "provider": "espeak", "providerVoiceId": VOICE, "config": {}}
    created = world.call("POST", f"/v1/accounts/{ACCOUNT}/voice-library", json=body)
    assert created.status_code == 200, created.text
    world.voice_ids.append(created.json()["voice"]["id"])
