"""Telephony formats end to end: converted once per (blob, format), served like any blob."""

from __future__ import annotations

import pytest
from support import Api, assert_envelope, sine_wav

from audiocache.audio.formats import FORMATS
from audiocache.audio.wav import parse_wav
from audiocache.storage import gc


async def test_runtime_path_ulaw_twice_converts_once(api: Api) -> None:
    await api.create_agent("bot")
    variants = api.services.variants
    first = await api.speak("bot", "Press one for sales", output_format="ulaw_8000")
    assert first.status_code == 200 and first.headers["content-type"] == "audio/basic"
    assert (
        first.headers["x-audio-cache"] == "miss" and first.headers["x-audio-format"] == "ulaw_8000"
    )
    assert variants.conversions == 1
    second = await api.speak("bot", "Press one for sales", output_format="ulaw_8000")
    assert second.headers["x-audio-cache"] == "hit"
    assert second.content == first.content
    assert variants.conversions == 1  # served from the cached variant
    wav = await api.speak("bot", "Press one for sales")
    info = parse_wav(wav.content)
    assert len(second.content) == round(info.frames * 8000 / info.sample_rate)


async def test_accept_audio_basic_means_ulaw(api: Api) -> None:
    await api.create_agent("bot")
    entry_id = await api.seed_entry("bot", "Hello")
    r = await api.client.get(
        f"/v1/agents/bot/audio-cache/{entry_id}/file",
        headers={**api.headers, "Accept": "audio/basic"},
    )
    assert r.headers["content-type"] == "audio/basic"
    assert r.headers["content-disposition"].endswith(".ulaw")


@pytest.mark.parametrize("name", sorted(FORMATS))
async def test_every_format_downloads(api: Api, name: str) -> None:
    await api.create_agent("bot")
    entry_id = await api.seed_entry("bot", "Thank you")
    original = parse_wav(
        (
            await api.client.get(f"/v1/agents/bot/audio-cache/{entry_id}/file", headers=api.headers)
        ).content
    )
    r = await api.client.get(
        f"/v1/agents/bot/audio-cache/{entry_id}/file",
        params={"output_format": name},
        headers=api.headers,
    )
    fmt = FORMATS[name]
    assert r.status_code == 200 and r.headers["content-type"] == fmt.media_type
    rate = fmt.sample_rate or original.sample_rate
    frames = round(original.frames * rate / original.sample_rate)
    if fmt.container == "wav":
        info = parse_wav(r.content)
        assert (info.sample_rate, info.frames) == (rate, frames)
        assert info.encoding == (fmt.encoding if not fmt.passthrough else original.encoding)
    else:
        assert len(r.content) == frames * (2 if fmt.encoding == "pcm" else 1)
    ranged = await api.client.get(
        f"/v1/agents/bot/audio-cache/{entry_id}/file",
        params={"output_format": name},
        headers={**api.headers, "Range": "bytes=0-9"},
    )
    assert ranged.status_code == 206 and ranged.content == r.content[:10]
    assert ranged.headers["etag"] == r.headers["etag"]


async def test_unknown_format_is_400(api: Api) -> None:
    await api.create_agent("bot")
    entry_id = await api.seed_entry("bot", "Hello")
    r = await api.client.get(
        f"/v1/agents/bot/audio-cache/{entry_id}/file",
        params={"output_format": "mp3_44100"},
        headers=api.headers,
    )
    body = assert_envelope(r, 400, "INVALID_FORMAT")
    assert "ulaw_8000" in body["error_message"]
    assert_envelope(await api.speak("bot", "Hello", output_format="opus"), 400, "INVALID_FORMAT")


async def test_variants_follow_their_source(api: Api) -> None:
    await api.create_agent("bot")
    entry_id = await api.seed_entry("bot", "Goodbye")
    url = f"/v1/agents/bot/audio-cache/{entry_id}/file"
    before = await api.client.get(url, params={"output_format": "ulaw_8000"}, headers=api.headers)
    await api.client.patch(url, content=sine_wav(), headers=api.headers)
    after = await api.client.get(url, params={"output_format": "ulaw_8000"}, headers=api.headers)
    assert after.content != before.content  # a replaced entry never serves a stale copy
    assert api.services.variants.conversions == 2
    report = await gc.check(api.services.db, api.services.blobs)
    # the replaced take (kept in the entry's history) and its copy stay; nothing is orphaned
    assert report.blobs == 4 and report.blobs_without_row == []
    await api.client.delete(f"/v1/agents/bot/audio-cache/{entry_id}", headers=api.headers)
    report = await gc.check(api.services.db, api.services.blobs)
    assert (report.blobs, report.entries, report.pending) == (0, 0, 0)
