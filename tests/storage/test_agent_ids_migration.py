"""Migration 0004 (per-account agent ids) keeps existing agents, entries and cache keys."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from audiocache.cache.keys import cache_key
from audiocache.config import Settings
from audiocache.services import build_services
from audiocache.storage.db import MIGRATIONS_DIR, utcnow
from audiocache.tts.base import SynthesisRequest
from audiocache.tts.fake import FakeEngine


def _upgrade(connection: sa.Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def test_existing_agents_keep_their_id_entries_and_cache_keys(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", key_cache_seconds=0)
    engine = FakeEngine()
    old = build_services(settings, engines=[engine])
    async with old.db.write_engine.begin() as conn:
        await conn.run_sync(_upgrade, "0003")
    audio = await engine.synthesize(SynthesisRequest("Welcome back", "alpha", "en-US", {}))
    blob = await old.blobs.put(audio)
    key = cache_key(
        agent_id="front",
        provider="fake",
        voice="alpha",
        model=engine.model_for({}, "alpha"),
        language="en-US",
        text="Welcome back",
        config={},
    )
    now = utcnow()
    async with old.db.write_engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO agents (id, account_id, name, greeting, language_code, voice_id,"
                " admission, created_at, updated_at) VALUES ('front', 'acme', 'Front', 'hi',"
                " 'en-US', 'fake:alpha', 'always', :now, :now)"
            ),
            {"now": now},
        )
        await conn.execute(
            sa.text(
                "INSERT INTO audio_cache_entries (agent_id, cache_key, transcript, provider,"
                " provider_voice_id, language_code, model, blob_sha256, size_bytes, duration,"
                " cached_at) VALUES ('front', :key, 'Welcome back', 'fake', 'alpha', 'en-US',"
                " :model, :sha, :size, 0.5, :now)"
            ),
            {
                "key": key,
                "model": engine.model_for({}, "alpha"),
                "sha": blob.sha256,
                "size": blob.size,
                "now": now,
            },
        )
    await old.stop()

    services = build_services(settings, engines=[engine])
    await services.start()  # migrates to head
    try:
        agent = await services.agents.owned("acme", "front")
        assert (agent.id, agent.public_id) == ("front", "front")
        calls = len(engine.calls)
        result = await services.cache.speak(agent, "Welcome back")
        assert result.hit and result.entry is not None and result.entry.cache_key == key
        assert len(engine.calls) == calls  # served from the old entry, not synthesized
        # A new account may now take "front" too; the old agent is untouched.
        other = await services.agents.create(
            "globex", agent_id="front", name="F", greeting="hi", language_code="en-US"
        )
        assert other.public_id == "front" and other.id != "front"
        assert (await services.agents.owned("acme", "front")).id == "front"
    finally:
        await services.stop()
