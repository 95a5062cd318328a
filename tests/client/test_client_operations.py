"""Every client operation against a live server (uvicorn on a socket), on both backends."""

from __future__ import annotations

from pathlib import Path

from live_client import ACCOUNT, Live, new_agent
from support import sine_wav

from audiocache.client import CachePolicy, Client, Phrase


def test_audio_cache_operations(ac: Client, tmp_path: Path) -> None:
    agent = new_agent(ac)
    seeded = [ac.tts(agent, Phrase(f"Hello number {n}")) for n in range(5)]
    assert all(not s.hit and s.entry_id for s in seeded)
    again = ac.tts(agent, Phrase("Hello number 0"))
    assert again.hit and again.entry_id == seeded[0].entry_id
    assert again.audio[:4] == b"RIFF"

    page = ac.list_entries(agent, limit=2, offset=1, sort="transcript:asc")
    assert page.total_count == 5
    assert [e.transcript for e in page.entries] == ["Hello number 1", "Hello number 2"]
    only = ac.list_entries(agent, filters=["transcript:contains:number 3"])
    assert [e.transcript for e in only.entries] == ["Hello number 3"]
    walked = list(ac.iter_entries(agent, sort="transcript:asc", page_size=2))
    assert [e.transcript for e in walked] == [f"Hello number {n}" for n in range(5)]
    assert walked[0].hit_count == 1 and walked[0].provider == "fake"

    entry = seeded[1].entry_id
    assert entry is not None
    whole = ac.download(agent, entry)
    assert whole == seeded[1].audio
    assert b"".join(ac.iter_download(agent, entry, chunk_size=100)) == whole
    target = tmp_path / "out.wav"
    assert ac.download_to(agent, entry, target) == len(whole)
    assert target.read_bytes() == whole and not (tmp_path / "out.wav.part").exists()
    assert ac.download(agent, entry, output_format="pcm_8000")[:4] != b"RIFF"

    new_audio = sine_wav(0.3)
    (tmp_path / "take.wav").write_bytes(new_audio)
    ac.replace_file(agent, entry, tmp_path / "take.wav")
    assert ac.download(agent, entry) == new_audio
    replaced = next(e for e in ac.iter_entries(agent) if e.id == entry)
    assert replaced.audio_filename == "take.wav"

    other_audio = sine_wav(0.2, freq=300)
    ac.replace_details(agent, entry, other_audio, "Goodbye", {"speed": 1.1}, filename="bye.wav")
    details = next(e for e in ac.iter_entries(agent) if e.id == entry)
    assert details.transcript == "Goodbye" and ac.download(agent, entry) == other_audio

    preview = ac.preview(agent, entry, "A new line", {"speed": 1.2})
    assert preview[:4] == b"RIFF" and ac.download(agent, entry) == other_audio  # not stored

    regenerated = ac.regenerate(agent, entry)
    assert regenerated.regenerated and regenerated.transcript == "Goodbye"
    assert ac.pin(agent, entry).pinned
    assert not ac.unpin(agent, entry).pinned

    stats = ac.stats(agent, top=3)
    assert stats.entries == 5 and stats.pinned == 0 and len(stats.raw["topPhrases"]) == 3

    hit = ac.lookup(agent, Phrase("Hello number 2"))
    assert hit is not None and hit.hit and hit.entry_id == seeded[2].entry_id
    assert ac.lookup(agent, Phrase("Never said")) is None
    statuses = ac.lookup_batch(agent, [Phrase("Hello number 2"), Phrase("Never said")])
    assert [(s.cached, s.entry_id) for s in statuses] == [
        (True, seeded[2].entry_id),
        (False, None),
    ]
    stored = ac.store(agent, Phrase("Stored by the runtime"), sine_wav(0.1))
    assert stored.stored and stored.created and stored.entry is not None
    assert not ac.store(agent, Phrase("Stored by the runtime"), sine_wav(0.1)).created

    warmed = ac.warm(agent, [Phrase("Warm one"), Phrase("Hello number 4")])
    assert warmed.synthesized == 1 and all(e.pinned for e in warmed.entries)

    ac.delete_entry(agent, seeded[0].entry_id or "")
    result = ac.bulk_delete(agent, [seeded[3].entry_id or "", "999999", "nonsense"])
    assert result.deleted == [seeded[3].entry_id] and result.failed == ["999999", "nonsense"]
    assert ac.list_entries(agent).total_count == 5  # 5 + store + warm - 2
    assert ac.health() == {"status": "ok"}
    assert ac.ready()["database"] == "ok"


async def test_agents_and_voice_library_with_the_async_client(live: Live) -> None:
    async with live.aclient() as ac:
        made = await ac.create_agent("Front desk", agent_id="front", voice="fake:alpha")
        assert (made.account_id, made.agent_id, made.name) == (ACCOUNT, "front", "Front desk")
        copy = await ac.duplicate_agent("front", "Night desk", new_agent_id="night")
        assert copy.agent_id == "night"
        assert sorted(a.agent_id for a in await ac.list_agents()) == ["front", "night"]

        policy = await ac.get_cache_policy("front")
        assert policy.admission == "default" and policy.usage_entries == 0
        changed = await ac.set_cache_policy(
            "front", CachePolicy(admission="min_hits", min_hits=2, window_seconds=60, max_entries=9)
        )
        assert (changed.admission, changed.min_hits, changed.max_entries) == ("min_hits", 2, 9)
        assert (await ac.get_cache_policy("front")).max_entries == 9

        await ac.delete_agent("night")
        assert [a.agent_id for a in await ac.list_agents()] == ["front"]

        voice = await ac.create_voice("Robot", "espeak", "en-gb", config={}, metadata={"a": 1})
        assert voice.provider_voice_id == "en-gb" and voice.metadata == {"a": 1}
        assert [v.id for v in await ac.list_voices(provider="espeak")] == [voice.id]
        assert await ac.list_voices(provider="nobody") == []
        assert (await ac.get_voice(voice.id)).name == "Robot"
        assert (await ac.update_voice(voice.id, {"name": "Robot 2"})).name == "Robot 2"
        sample = await ac.voice_sample(voice.id)
        assert sample.voice_id == voice.id and sample.sample_url.startswith(live.url)

        await ac.set_cache_policy("front", CachePolicy(admission="always", personal_data="cache"))
        spoken = await ac.tts("front", Phrase("Async hello"))
        assert spoken.entry_id is not None
        entries = [e async for e in ac.iter_entries("front")]
        assert [e.transcript for e in entries] == ["Async hello"]
        chunks = [c async for c in ac.iter_download("front", spoken.entry_id, chunk_size=256)]
        assert b"".join(chunks) == spoken.audio and len(chunks) > 1
        assert (await ac.stats("front")).entries == 1
