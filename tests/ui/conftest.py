"""The UI suite: one chromium per session, one live server per module (sqlite+fs)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support import ALL_GRANTS, ThreadedServer, require_tool

from audiocache.app import create_app
from audiocache.config import Settings
from audiocache.services import build_services
from audiocache.tts.fake import FakeEngine

ACCOUNT, AGENT = "acme", "bot"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def backend() -> str:
    return "sqlite+fs"  # the page is not about storage


@dataclass
class Site:
    url: str
    key: str
    api: httpx.Client  # the public API with the key, to check what the page did

    def entries(self, **params: object) -> list[dict]:
        r = self.api.get(f"/v1/agents/{AGENT}/audio-cache", params=params)
        assert r.status_code == 200, r.text
        return r.json()["entries"]

    def seed(self, text: str) -> str:
        r = self.api.post(f"/v1/agents/{AGENT}/tts", json={"text": text})
        assert r.status_code == 200, r.text
        return r.headers["x-audio-cache-entry-id"]


async def _setup(settings: Settings) -> str:
    setup = build_services(settings, engines=[FakeEngine()])
    await setup.db.migrate()
    # every permission, and the admin grant the audit-log view needs
    _record, key = await setup.keys.create(ACCOUNT, {*ALL_GRANTS, "*"})
    agent = await setup.agents.create(
        ACCOUNT, agent_id=AGENT, name="Bot", greeting="hi", language_code="en-US"
    )
    await setup.agents.agents.update(agent.id, voice_id="fake:alpha", admission="always")
    await setup.stop()
    return key


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data: Path = tmp_path_factory.mktemp("ui") / "data"
    settings = Settings(data_dir=data, hit_flush_seconds=0.1, key_cache_seconds=0)
    # Seeded in a thread of its own: Playwright's sync API keeps an event loop running here.
    with ThreadPoolExecutor(1) as pool:
        key = pool.submit(asyncio.run, _setup(settings)).result()
    app = create_app(settings, build_services(settings, engines=[FakeEngine()]))
    with (
        ThreadedServer(app) as server,
        httpx.Client(base_url=server.url, headers={"X-API-KEY": key}, timeout=20) as client,
    ):
        yield Site(server.url, key, client)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    chromium = require_tool("/usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, site: Site):  # type: ignore[no-untyped-def]
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def sign_in(page, site: Site) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{site.url}/ui/")
    page.get_by_label("API key").fill(site.key)  # the key alone: the page asks /v1/whoami
    page.get_by_role("button", name="Sign in").click()
