"""The account voice library: register/list/get/patch/sample, signed sample links, and
library voices used by agents and the runtime path."""

from __future__ import annotations

import time

import pytest
from support import ALL_GRANTS, Api, assert_envelope

from audiocache.audio.wav import parse_wav
from audiocache.storage import gc

BASE = "/v1/accounts/acme/voice-library"
ALPHA = {
    "name": "Front desk",
    "provider": "fake",
    "providerVoiceId": "alpha",
    "config": {"speed": 1.1},
    "voiceMetadata": {"language": "en-US", "gender": "female"},
}


@pytest.fixture(autouse=True)
def fake_is_a_known_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    import audiocache.cache.voices as voices

    monkeypatch.setattr(voices, "KNOWN_PROVIDERS", voices.KNOWN_PROVIDERS | {"fake"})


async def register(api: Api, body: dict | None = None) -> dict:
    r = await api.client.post(BASE, json=body or ALPHA, headers=api.headers)
    assert r.status_code == 200, r.text
    return r.json()["voice"]


async def test_register_get_list_patch(api: Api) -> None:
    voice = await register(api)
    assert voice["id"].startswith("voice-") and voice["isPolyVoice"] is False
    assert (voice["name"], voice["provider"], voice["providerVoiceId"]) == (
        "Front desk",
        "fake",
        "alpha",
    )
    assert voice["config"] == {"speed": 1.1} and voice["metadata"]["gender"] == "female"
    got = await api.client.get(f"{BASE}/{voice['id']}", headers=api.headers)
    assert got.status_code == 200 and got.json() == {"voice": voice}
    espeak = await register(
        api, {"name": "Robot", "provider": "ESPEAK", "providerVoiceId": "en-gb", "config": {}}
    )
    listed = (await api.client.get(BASE, headers=api.headers)).json()["voices"]
    assert [v["id"] for v in listed] == [voice["id"], espeak["id"]]
    for params, expected in [
        ({"language": "en-us"}, [voice["id"]]),
        ({"gender": "female"}, [voice["id"]]),
        ({"provider": "espeak"}, [espeak["id"]]),
        ({"isPolyVoice": "true"}, []),
        ({"isPolyVoice": "false"}, [voice["id"], espeak["id"]]),
    ]:
        r = await api.client.get(BASE, params=params, headers=api.headers)
        assert [v["id"] for v in r.json()["voices"]] == expected, params
    patched = await api.client.patch(
        f"{BASE}/{voice['id']}", json={"name": "Reception", "config": {}}, headers=api.headers
    )
    assert patched.status_code == 200
    assert patched.json()["voice"]["name"] == "Reception"
    assert patched.json()["voice"]["config"] == {}
    assert patched.json()["voice"]["providerVoiceId"] == "alpha"


@pytest.mark.parametrize(
    "body",
    [
        {**ALPHA, "provider": "nobody"},
        {**ALPHA, "providerVoiceId": "nobody"},  # the fake engine has no such voice
        {**ALPHA, "name": ""},
        {k: v for k, v in ALPHA.items() if k != "config"},
        {**ALPHA, "config": "fast"},
    ],
)
async def test_register_rejects_bad_voices(api: Api, body: dict) -> None:
    assert_envelope(await api.client.post(BASE, json=body, headers=api.headers), 400)
    assert (await api.client.get(BASE, headers=api.headers)).json()["voices"] == []


async def test_bad_patches_and_filters(api: Api) -> None:
    voice = await register(api)
    for body in ({"providerVoiceId": "nobody"}, {"unknown": 1}, {"name": 3}):
        r = await api.client.patch(f"{BASE}/{voice['id']}", json=body, headers=api.headers)
        assert_envelope(r, 400)
    r = await api.client.get(BASE, params={"gender": "robot"}, headers=api.headers)
    assert_envelope(r, 400)
    assert (await register(api))["name"] == "Front desk"


async def test_missing_and_foreign_voices_are_404(api: Api) -> None:
    voice = await register(api)
    other = await api.new_key(ALL_GRANTS, account="globex")
    for path in (f"{BASE}/voice-nope", f"{BASE}/voice-nope/sample"):
        assert_envelope(await api.client.get(path, headers=api.headers), 404, "NOT_FOUND")
    foreign = {"X-API-KEY": other}
    assert_envelope(await api.client.get(f"{BASE}/{voice['id']}", headers=foreign), 404)
    r = await api.client.get(f"/v1/accounts/globex/voice-library/{voice['id']}", headers=foreign)
    assert_envelope(r, 404)
    assert (await api.client.get("/v1/accounts/globex/voice-library", headers=foreign)).json() == {
        "voices": []
    }


# Who may call which voice-library operation: tests/api/test_auth_matrix.py (one table).


async def test_sample_link_serves_audio_without_a_key(api: Api, fake_engine) -> None:
    voice = await register(api)
    r = await api.client.get(f"{BASE}/{voice['id']}/sample", headers=api.headers)
    assert r.status_code == 200
    sample = r.json()
    assert sample["voiceId"] == voice["id"] and sample["expiresInSeconds"] == 300
    assert "Front desk" in sample["text"]
    audio = await api.client.get(sample["sampleUrl"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert parse_wav(audio.content).duration > 0
    assert fake_engine.calls[-1].voice == "alpha" and fake_engine.calls[-1].config["speed"] == 1.1
    # A second sample of an unchanged voice reuses the audio.
    calls = len(fake_engine.calls)
    await api.client.get(f"{BASE}/{voice['id']}/sample", headers=api.headers)
    assert len(fake_engine.calls) == calls


async def test_tampered_expired_and_stale_links(api: Api) -> None:
    voice = await register(api)
    url = (await api.client.get(f"{BASE}/{voice['id']}/sample", headers=api.headers)).json()[
        "sampleUrl"
    ]
    token = url.rsplit("/", 1)[1]
    body, mac = token.split(".")
    tampered = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + mac
    for bad in (tampered, "garbage", token + "x", "a.b"):
        r = await api.client.get(f"/v1/voice-samples/{bad}")
        assert_envelope(r, 403, "INVALID_SIGNATURE")
    signer = api.services.voices.signer
    payload = signer.verify(token)
    expired = signer.sign({k: v for k, v in payload.items() if k != "exp"}, 10, time.time() - 60)
    assert_envelope(await api.client.get(f"/v1/voice-samples/{expired}"), 403, "URL_EXPIRED")
    # The voice changed since: the old link's audio is gone, not served as the new voice.
    await api.client.patch(
        f"{BASE}/{voice['id']}", json={"providerVoiceId": "beta"}, headers=api.headers
    )
    await api.client.get(f"{BASE}/{voice['id']}/sample", headers=api.headers)
    assert_envelope(await api.client.get(url), 404, "NOT_FOUND")


async def test_runtime_path_and_agents_use_library_voices(api: Api, fake_engine) -> None:
    voice = await register(api)
    await api.create_agent("bot", voice=voice["id"])
    r = await api.speak("bot", "Hello from the library")
    assert r.status_code == 200
    assert fake_engine.calls[-1].voice == "alpha"
    assert fake_engine.calls[-1].config["speed"] == 1.1  # the library voice's default tuning
    await api.speak("bot", "Hello again", voice=voice["id"], config={"speed": 0.9})
    assert fake_engine.calls[-1].config["speed"] == 0.9  # the request's tuning wins
    entry = (await api.entries("bot"))["entries"][0]
    assert entry["provider"] == "fake" and entry["providerVoiceId"] == "alpha"
    assert (await api.speak("bot", "Hello from the library")).headers["x-audio-cache"] == "hit"


async def test_gc_keeps_sample_audio(api: Api) -> None:
    voice = await register(api)
    await api.client.get(f"{BASE}/{voice['id']}/sample", headers=api.headers)
    report = await gc.collect(api.services.db, api.services.blobs, grace_seconds=0)
    assert report.blobs == 1 and report.blobs_without_row == [] and report.rows_without_blob == []
