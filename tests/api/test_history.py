"""Take history routes: list an entry's earlier takes, download one, restore one (bytes
round trip), the errors in the envelope, and the bound."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from support import Api, assert_envelope, sine_wav

from audiocache.storage import gc
from audiocache.storage.blobs.base import sha256_hex

AGENT = "bot"
BASE = f"/v1/agents/{AGENT}/audio-cache"
TAKE_FIELDS = {
    "id",
    "createdAt",
    "reason",
    "transcript",
    "duration",
    "size",
    "sha256",
    "provider",
    "providerVoiceId",
    "languageCode",
    "regenerated",
    "imported",
    "audioFilename",
    "settings",
}


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    return settings.model_copy(update={"take_history_limit": 3})


async def _file(api: Api, entry: str) -> bytes:
    r = await api.client.get(f"{BASE}/{entry}/file", headers=api.headers)
    assert r.status_code == 200, r.text
    return r.content


async def _replace(api: Api, entry: str, wav: bytes, filename: str = "studio.wav") -> None:
    r = await api.client.patch(
        f"{BASE}/{entry}/file",
        content=wav,
        headers={**api.headers, "Content-Type": "audio/wav", "X-Filename": filename},
    )
    assert r.status_code == 204, r.text


async def _details(api: Api, entry: str, wav: bytes, text: str, config: dict) -> None:
    r = await api.client.put(
        f"{BASE}/{entry}/details",
        files={"file": ("take.wav", wav, "audio/wav")},
        data={"settings": json.dumps({"text": text, "config": config})},
        headers=api.headers,
    )
    assert r.status_code == 204, r.text


async def _history(api: Api, entry: str) -> dict:
    r = await api.client.get(f"{BASE}/{entry}/history", headers=api.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def _restore(api: Api, entry: str, take: str) -> dict:
    r = await api.client.post(f"{BASE}/{entry}/history/{take}/restore", headers=api.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_history_lists_replaced_takes_newest_first(api: Api) -> None:
    await api.create_agent(AGENT)
    entry = await api.seed_entry(AGENT, "Thanks for calling")
    assert await _history(api, entry) == {"takes": [], "historyLimit": 3}
    synthesized = await _file(api, entry)
    studio = sine_wav(freq=300.0)
    await _replace(api, entry, studio)
    await _details(api, entry, sine_wav(freq=500.0), "Thanks for phoning", {"speed": 1.25})
    r = await api.client.post(f"{BASE}/{entry}/regenerate", headers=api.headers)
    assert r.status_code == 200, r.text

    body = await _history(api, entry)
    takes = body["takes"]
    assert [t["reason"] for t in takes] == ["regenerate", "replace_with_settings", "replace"]
    for take in takes:
        assert set(take) == TAKE_FIELDS
        assert take["id"].isdigit()
        assert datetime.fromisoformat(take["createdAt"]).tzinfo is not None
    ids = [int(t["id"]) for t in takes]
    assert ids == sorted(ids, reverse=True)
    oldest, middle, newest = takes[2], takes[1], takes[0]
    # each take is the audio and details the entry had before that write
    assert oldest["sha256"] == sha256_hex(synthesized) and oldest["size"] == len(synthesized)
    assert oldest["imported"] is False and oldest["audioFilename"] is None
    assert oldest["settings"] == {"text": "Thanks for calling", "config": {}}
    assert middle["sha256"] == sha256_hex(studio) and middle["imported"] is True
    assert middle["audioFilename"] == "studio.wav"
    assert newest["transcript"] == "Thanks for phoning"
    assert newest["settings"] == {"text": "Thanks for phoning", "config": {"speed": 1.25}}
    assert newest["duration"] == pytest.approx(0.5)


async def test_a_take_downloads_as_it_was(api: Api) -> None:
    await api.create_agent(AGENT)
    entry = await api.seed_entry(AGENT, "Download me")
    original = await _file(api, entry)
    await _replace(api, entry, sine_wav(freq=310.0))
    take = (await _history(api, entry))["takes"][0]
    url = f"{BASE}/{entry}/history/{take['id']}/file"
    r = await api.client.get(url, headers=api.headers)
    assert r.status_code == 200 and r.content == original
    assert r.headers["content-type"] == "audio/wav"
    assert r.headers["etag"].strip('"') == sha256_hex(original)
    assert f"{entry}-take-{take['id']}.wav" in r.headers["content-disposition"]
    part = await api.client.get(url, headers={**api.headers, "Range": "bytes=0-11"})
    assert part.status_code == 206 and part.content == original[:12]
    ulaw = await api.client.get(url, params={"output_format": "ulaw_8000"}, headers=api.headers)
    assert ulaw.status_code == 200 and ulaw.headers["content-type"] == "audio/basic"


async def test_restore_round_trip_brings_the_bytes_back(api: Api) -> None:
    services = api.services
    await api.create_agent(AGENT)
    entry = await api.seed_entry(AGENT, "Round trip")
    original = await _file(api, entry)
    studio = sine_wav(freq=330.0)
    await _details(api, entry, studio, "Round trip, by hand", {"speed": 0.9})
    take = (await _history(api, entry))["takes"][0]

    restored = await _restore(api, entry, take["id"])
    assert restored["id"] == entry
    assert restored["transcript"] == "Round trip" and restored["imported"] is False
    assert await _file(api, entry) == original
    # the runtime path hits the restored take again (its cache key came back with it)
    hit = await api.speak(AGENT, "Round trip")
    assert hit.headers["x-audio-cache"] == "hit" and hit.content == original
    # the replaced audio is now the one take, and restoring it swaps back
    takes = (await _history(api, entry))["takes"]
    assert [(t["reason"], t["sha256"]) for t in takes] == [("restore", sha256_hex(studio))]
    assert takes[0]["settings"] == {"text": "Round trip, by hand", "config": {"speed": 0.9}}
    back = await _restore(api, entry, takes[0]["id"])
    assert back["transcript"] == "Round trip, by hand" and back["imported"] is True
    assert await _file(api, entry) == studio
    assert [t["sha256"] for t in (await _history(api, entry))["takes"]] == [sha256_hex(original)]
    # a restored take is gone from the history: restoring it again is an unknown take
    r = await api.client.post(f"{BASE}/{entry}/history/{take['id']}/restore", headers=api.headers)
    assert_envelope(r, 404, "TAKE_NOT_FOUND")
    report = await gc.check(services.db, services.blobs)
    assert report.healthy, report


async def test_history_is_bounded_by_the_setting(api: Api) -> None:
    await api.create_agent(AGENT)
    entry = await api.seed_entry(AGENT, "Bounded")
    for freq in (300.0, 350.0, 400.0, 450.0, 500.0):
        await _replace(api, entry, sine_wav(freq=freq))
    takes = (await _history(api, entry))["takes"]
    assert [t["sha256"] for t in takes] == [
        sha256_hex(sine_wav(freq=f)) for f in (450.0, 400.0, 350.0)
    ]
    # a restore keeps the bound too: the take it brings back leaves, the current one joins
    await _restore(api, entry, takes[2]["id"])
    after = (await _history(api, entry))["takes"]
    assert len(after) == 3 and after[0]["reason"] == "restore"
    assert after[0]["sha256"] == sha256_hex(sine_wav(freq=500.0))


async def test_restore_into_a_key_another_entry_caches_now_is_a_conflict(api: Api) -> None:
    await api.create_agent(AGENT)
    entry = await api.seed_entry(AGENT, "Same words")
    await _details(api, entry, sine_wav(freq=300.0), "Other words", {})
    other = await api.seed_entry(AGENT, "Same words")  # the old key is free: a new entry
    assert other != entry
    take = (await _history(api, entry))["takes"][0]
    r = await api.client.post(f"{BASE}/{entry}/history/{take['id']}/restore", headers=api.headers)
    assert_envelope(r, 409, "CONFLICT")
    assert (await _history(api, entry))["takes"][0]["id"] == take["id"]  # nothing changed


async def test_history_errors_are_in_the_envelope(api: Api) -> None:
    await api.create_agent(AGENT)
    entry = await api.seed_entry(AGENT, "Errors")
    other = await api.seed_entry(AGENT, "Another entry")
    await _replace(api, other, sine_wav(freq=300.0))
    others_take = (await _history(api, other))["takes"][0]["id"]
    h = api.headers
    for method, suffix in (("GET", "file"), ("POST", "restore")):
        for take in ("999999", others_take):  # unknown, or another entry's
            r = await api.client.request(
                method, f"{BASE}/{entry}/history/{take}/{suffix}", headers=h
            )
            assert_envelope(r, 404, "TAKE_NOT_FOUND")
        for bad in ("abc", "-1", "1.5"):
            r = await api.client.request(
                method, f"{BASE}/{entry}/history/{bad}/{suffix}", headers=h
            )
            assert_envelope(r, 400, "INVALID_ID")
        r = await api.client.request(method, f"{BASE}/424242/history/1/{suffix}", headers=h)
        assert_envelope(r, 404, "NOT_FOUND")
    assert_envelope(await api.client.get(f"{BASE}/abc/history", headers=h), 400, "INVALID_ID")
    assert_envelope(await api.client.get(f"{BASE}/424242/history", headers=h), 404, "NOT_FOUND")
    r = await api.client.get(f"/v1/agents/nobody/audio-cache/{entry}/history", headers=h)
    assert_envelope(r, 404, "NOT_FOUND")
    r = await api.client.get(
        f"{BASE}/{other}/history/{others_take}/file",
        params={"output_format": "mp9"},
        headers=h,
    )
    assert_envelope(r, 400, "INVALID_FORMAT")
