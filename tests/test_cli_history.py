"""``audiocache cache history`` and ``audiocache cache restore`` on a real data folder."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from support import sine_wav

from audiocache.config import Settings
from audiocache.services import build_services
from audiocache.storage.blobs.base import sha256_hex
from audiocache.tts.fake import FakeEngine


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audiocache", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _seed(data: Path) -> tuple[int, bytes, bytes]:
    """An entry of agent 'desk' whose synthesized take was replaced by a studio one."""
    services = build_services(Settings(data_dir=data), engines=[FakeEngine()])
    await services.db.migrate()
    try:
        agent = await services.agents.create(
            "acme", agent_id="desk", name="Desk", greeting="hi", language_code="en-US"
        )
        await services.agents.agents.update(agent.id, voice_id="fake:alpha", admission="always")
        agent = await services.agents.owned("acme", "desk")
        spoken = await services.cache.speak(agent, "Welcome back")
        assert spoken.entry is not None and spoken.audio is not None
        studio = sine_wav(freq=300.0)
        await services.curation.replace_audio(spoken.entry, studio, "studio.wav")
        return spoken.entry.id, spoken.audio, studio
    finally:
        await services.stop()


async def _current_sha(data: Path, entry_id: int) -> str:
    services = build_services(Settings(data_dir=data), engines=[])
    try:
        agent = await services.agents.owned("acme", "desk")
        return (await services.curation.get_entry(agent.id, entry_id)).blob_sha256
    finally:
        await services.stop()


def test_history_and_restore_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    entry, synthesized, studio = asyncio.run(_seed(data))
    listed = run(data, "cache", "history", "desk", str(entry), "--json")
    assert listed.returncode == 0, listed.stderr
    takes = json.loads(listed.stdout)
    assert [(t["reason"], t["sha256"], t["transcript"]) for t in takes] == [
        ("replace", sha256_hex(synthesized), "Welcome back")
    ]
    restored = run(data, "cache", "restore", "desk", str(entry), takes[0]["id"])
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["sha256"] == sha256_hex(synthesized)
    assert asyncio.run(_current_sha(data, entry)) == sha256_hex(synthesized)
    after = json.loads(run(data, "cache", "history", "desk", str(entry), "--json").stdout)
    assert [(t["reason"], t["sha256"]) for t in after] == [("restore", sha256_hex(studio))]
    # the restored take left the history: restoring it again fails, saying why
    again = run(data, "cache", "restore", "desk", str(entry), takes[0]["id"])
    assert again.returncode == 1 and "TAKE_NOT_FOUND" in again.stderr
    missing = run(data, "cache", "history", "desk", "9999")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
