"""Screenshots of the web page's main views into docs/ui/*.png (Debian chromium, headless).

    .venv/bin/python bench/ui_screenshots.py [--out docs/ui]

Serves the app on a free loopback port with the fake engine and a throwaway data folder,
seeds one agent with a few phrases, signs in and photographs: the sign-in form, the cache
table, the edit dialog, the stats and policy panels, a filtered view and /docs.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from playwright.sync_api import sync_playwright

from audiocache.app import create_app
from audiocache.config import Settings
from audiocache.services import build_services
from audiocache.tts.fake import FakeEngine

GRANTS = {"audio_cache:read", "audio_cache:write", "agents:read", "agents:write"}
PHRASES = ["Thanks for calling", "Please hold the line", "Your order has shipped", "Goodbye"]
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


async def seed(settings: Settings) -> str:
    setup = build_services(settings, engines=[FakeEngine()])
    await setup.db.migrate()
    _record, key = await setup.keys.create("acme", GRANTS)
    agent = await setup.agents.create(
        "acme", agent_id="bot", name="Bot", greeting="hi", language_code="en-US"
    )
    await setup.agents.agents.update(agent.id, voice_id="fake:alpha", admission="always")
    await setup.stop()
    return key


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("docs/ui"))
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=Path(tempfile.mkdtemp()) / "data")
    key = asyncio.run(seed(settings))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(settings, build_services(settings, engines=[FakeEngine()]))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    for n, text in enumerate(PHRASES):
        for _ in range(n + 1):  # a few hits each, so the table and stats show numbers
            httpx.post(
                f"{url}/v1/agents/bot/tts",
                json={"text": text},
                headers={"X-API-KEY": key},
                timeout=20,
            )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/ui/")
        page.screenshot(path=out / "sign-in.png")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        page.locator("#rows tr").first.wait_for()
        page.screenshot(path=out / "cache-table.png", full_page=True)
        page.get_by_role("button", name="Edit “Goodbye”").click()
        page.screenshot(path=out / "edit.png")
        page.get_by_role("button", name="Cancel").click()
        page.get_by_role("region", name="Stats").screenshot(path=out / "stats.png")
        page.locator("#policy-panel").screenshot(path=out / "policy.png")
        page.goto(f"{url}/ui/?agent=bot&sort=voice%3Aasc&q=the")  # a view is a URL
        page.locator("#rows tr").first.wait_for()
        page.screenshot(path=out / "filtered.png")
        page.goto(f"{url}/docs")  # the OpenAPI, from the package's own files
        page.locator(".opblock").first.wait_for()
        page.screenshot(path=out / "api-docs.png")
        browser.close()
    server.should_exit = True
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
