"""Screenshots of the web page's main views into docs/ui/*.png (Debian chromium, headless).

    .venv/bin/python bench/ui_screenshots.py [--out docs/ui]

Serves the app on a free loopback port with the fake engine and a throwaway data folder,
seeds one agent with a few phrases (one of them replaced, so it has a take history) and a
second, empty agent, signs in and photographs: the sign-in form, the cache table, the edit
dialog, an entry's history, the stats and policy panels, a filtered view, the export/import
controls after importing the first agent's archive into the second, the audit log and /docs.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import socket
import tempfile
import threading
import time
import wave
from pathlib import Path

import httpx
import uvicorn
from playwright.sync_api import sync_playwright

from audiocache.app import create_app
from audiocache.config import Settings
from audiocache.services import build_services
from audiocache.tts.fake import FakeEngine

# "*" too: the audit log is an admin key's view
GRANTS = {"audio_cache:read", "audio_cache:write", "agents:read", "agents:write", "*"}
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
    await setup.agents.create(
        "acme", agent_id="desk", name="Front desk", greeting="hi", language_code="en-US"
    )
    await setup.stop()
    return key


def take_wav(seconds: float = 1.5, rate: int = 16000) -> bytes:
    """A recorded take stand-in: a 330 Hz tone as 16-bit mono WAV."""
    frames = b"".join(
        int(6000 * math.sin(2 * math.pi * 330 * n / rate)).to_bytes(2, "little", signed=True)
        for n in range(int(seconds * rate))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()


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
    api = httpx.Client(base_url=url, headers={"X-API-KEY": key}, timeout=20)
    ids: dict[str, str] = {}
    for n, text in enumerate(PHRASES):
        for _ in range(n + 1):  # a few hits each, so the table and stats show numbers
            r = api.post("/v1/agents/bot/tts", json={"text": text})
            ids[text] = r.headers["x-audio-cache-entry-id"]
    replaced = f"/v1/agents/bot/audio-cache/{ids['Goodbye']}"
    wav = {"Content-Type": "audio/wav", "X-Filename": "goodbye-take.wav"}
    api.patch(f"{replaced}/file", content=take_wav(), headers=wav).raise_for_status()
    api.post(f"{replaced}/regenerate").raise_for_status()  # a second earlier take
    api.put(f"/v1/agents/bot/audio-cache/{ids['Thanks for calling']}/pin").raise_for_status()
    archive = Path(tempfile.mkdtemp()) / "bot.audiocache.tar"
    archive.write_bytes(api.get("/v1/agents/bot/audio-cache/export").content)
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
        page.get_by_role("button", name="History “Goodbye”").click()
        page.locator("#takes li").first.wait_for()
        page.get_by_role("region", name="History of “Goodbye”").screenshot(path=out / "history.png")
        page.get_by_role("region", name="Stats").screenshot(path=out / "stats.png")
        page.locator("#policy-panel").screenshot(path=out / "policy.png")
        page.goto(f"{url}/ui/?agent=bot&sort=voice%3Aasc&q=the")  # a view is a URL
        page.locator("#rows tr").first.wait_for()
        page.screenshot(path=out / "filtered.png")
        page.goto(f"{url}/ui/?agent=desk")  # the archive of bot, imported through the page
        page.locator("#total").filter(has_text="0 entries").wait_for()
        page.get_by_label("Import archive").set_input_files(archive)
        page.get_by_role("button", name="Import", exact=True).click()
        page.locator("#transfer-summary").filter(has_text="Imported").wait_for()
        page.locator("#transfer").screenshot(path=out / "transfer.png")
        page.goto(f"{url}/ui/?view=audit")
        page.locator("#audit-rows tr").first.wait_for()
        page.screenshot(path=out / "audit.png")
        page.goto(f"{url}/docs")  # the OpenAPI, from the package's own files
        page.locator(".opblock").first.wait_for()
        page.screenshot(path=out / "api-docs.png")
        browser.close()
    api.close()
    server.should_exit = True
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
