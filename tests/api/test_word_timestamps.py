"""Word timestamps kept with a stored take (runtime store) and replayed by the lookup."""

from __future__ import annotations

import json
from typing import Any

import httpx
from audio_cache_helpers import replace_file
from support import Api, assert_envelope, sine_wav

AGENT = "bot"
CACHE = f"/v1/agents/{AGENT}/audio-cache"
WORDS = [
    {"text": "Welcome", "start": 0.0, "end": 0.41},
    {"text": "to", "start": 0.45, "end": 0.52},
    {"text": "the", "start": 0.55},
    {"text": "bänk.", "start": 0.6, "end": 0.98},
]


async def store(api: Api, text: str, wav: bytes, **extra: Any) -> httpx.Response:
    return await api.client.post(
        f"{CACHE}/store",
        files={"file": ("take.wav", wav, "audio/wav")},
        data={"settings": json.dumps({"text": text, **extra})},
        headers=api.headers,
    )


async def lookup(api: Api, text: str, **extra: Any) -> httpx.Response:
    return await api.client.post(
        f"{CACHE}/lookup", json={"text": text, **extra}, headers=api.headers
    )


def words_of(r: httpx.Response) -> list[list[Any]] | None:
    assert r.status_code == 200, r.text
    header = r.headers.get("x-audio-word-timestamps")
    return None if header is None else json.loads(header)


async def test_words_are_kept_with_the_take_and_replayed_on_request(api: Api) -> None:
    await api.create_agent(AGENT)
    r = await store(api, "Welcome to the bänk.", sine_wav(1.0), words=WORDS)
    assert r.status_code == 200 and r.json()["created"], r.text
    expected = [
        ["Welcome", 0.0, 0.41],
        ["to", 0.45, 0.52],
        ["the", 0.55, None],
        ["bänk.", 0.6, 0.98],
    ]
    assert words_of(await lookup(api, "Welcome to the bänk.", word_timestamps=True)) == expected
    hit = await lookup(api, "Welcome to the bänk.", word_timestamps=True)
    assert hit.headers["x-audio-word-timestamps"].isascii()
    # Only when asked for (the hot path pays no extra read otherwise), and at any format.
    assert words_of(await lookup(api, "Welcome to the bänk.")) is None
    resampled = await lookup(
        api, "Welcome to the bänk.", word_timestamps=True, output_format="wav_8000"
    )
    assert words_of(resampled) == expected
    # Storing the phrase again changes nothing: the first take and its words stay.
    again = await store(api, "Welcome to the bänk.", sine_wav(1.0), words=WORDS[:1])
    assert again.json()["created"] is False
    assert words_of(await lookup(api, "Welcome to the bänk.", word_timestamps=True)) == expected


async def test_a_take_without_words_has_none_and_a_replaced_take_loses_them(api: Api) -> None:
    await api.create_agent(AGENT)
    r = await store(api, "Plain take", sine_wav(0.5))
    assert r.json()["created"]
    assert words_of(await lookup(api, "Plain take", word_timestamps=True)) is None
    r = await store(api, "Timed take", sine_wav(1.0), words=WORDS)
    entry_id = r.json()["entry"]["id"]
    assert words_of(await lookup(api, "Timed take", word_timestamps=True)) is not None
    # Other audio, other timing: the words belong to the take they were stored with.
    assert (await replace_file(api, str(entry_id), sine_wav(2.0, freq=220))).status_code == 204
    assert words_of(await lookup(api, "Timed take", word_timestamps=True)) is None


async def test_two_phrases_with_the_same_audio_keep_their_own_words(api: Api) -> None:
    await api.create_agent(AGENT)
    wav = sine_wav(1.0)
    assert (await store(api, "Welcome to the bänk.", wav, words=WORDS)).json()["created"]
    other = [{"text": "Goodbye", "start": 0.1}]
    assert (await store(api, "Goodbye", wav, words=other)).json()["created"]
    assert words_of(await lookup(api, "Goodbye", word_timestamps=True)) == [["Goodbye", 0.1, None]]
    assert len(words_of(await lookup(api, "Welcome to the bänk.", word_timestamps=True))) == 4


async def test_bad_words_are_400_invalid_settings_and_store_nothing(api: Api) -> None:
    await api.create_agent(AGENT)
    wav = sine_wav(1.0)
    bad = [
        [{"text": "late", "start": 3.0}],  # after the audio's end
        [{"text": "b", "start": 0.5}, {"text": "a", "start": 0.2}],  # out of order
        [{"text": "w", "start": 0.2, "end": 0.1}],  # ends before it starts
        [{"text": "", "start": 0.0}],
        [{"text": "w", "start": -1}],
        [{"text": "w", "start": "soon"}],
        [{"text": "w"}],
        [{"text": "w", "start": 0, "extra": 1}],
        [{"text": "w", "start": 0.0}] * 301,  # over max_word_timestamps (300)
        [{"text": "\u00e9" * 100, "start": 0.0}] * 20,  # 12 kB as the lookup's header
        "not a list",
    ]
    for words in bad:
        r = await store(api, "Never stored", wav, words=words)
        assert_envelope(r, 400, "INVALID_SETTINGS")
    assert_envelope(await lookup(api, "Never stored"), 404, "NOT_CACHED")


async def test_words_are_collected_with_their_blob(api: Api) -> None:
    from audiocache.storage.gc import sweep_pending

    await api.create_agent(AGENT)
    r = await store(api, "Short lived", sine_wav(1.0), words=WORDS)
    entry_id = r.json()["entry"]["id"]
    agent = await api.services.agents.owned("acme", AGENT)
    entry = await api.services.entries.get(agent.id, int(entry_id))
    sha, key = entry.blob_sha256, entry.cache_key
    assert await api.services.word_timings.repo.get(sha, key) is not None
    deleted = await api.client.delete(f"{CACHE}/{entry_id}", headers=api.headers)
    assert deleted.status_code == 200, deleted.text
    await sweep_pending(api.services.db, api.services.blobs)
    assert await api.services.word_timings.repo.get(sha, key) is None
