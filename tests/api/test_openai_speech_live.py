"""``POST /v1/audio/speech`` through the official ``openai`` SDK against a real server.

One ``audiocache serve`` process on a loopback port (espeak-ng, SQLite + folder), shared by
the module: the SDK's ``speech.create`` and ``with_streaming_response``, each format decoded
back, miss then hit, and the errors the SDK turns into its own exception classes.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import soundfile as sf
from support import LiveServer, require_tool

pytestmark = pytest.mark.slow


@pytest.fixture
def backend() -> str:
    return "sqlite+fs"


class Live:
    def __init__(self, server: LiveServer, key: str, reader: str, writer_only: str) -> None:
        self.server, self.key, self.reader, self.writer_only = server, key, reader, writer_only

    def sdk(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(
            api_key=key or self.reader, base_url=f"{self.server.url}/v1", max_retries=0
        )

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-API-KEY": self.key}
        return httpx.request(method, f"{self.server.url}{path}", headers=headers, **kwargs)

    def entries(self, agent: str) -> list[dict[str, Any]]:
        r = self.admin("GET", f"/v1/agents/{agent}/audio-cache")
        assert r.status_code == 200, r.text
        return r.json()["entries"]  # type: ignore[no-any-return]

    def agent(self, agent_id: str, account: str = "acme", voice: str = "espeak:en-us") -> str:
        body = {
            "name": agent_id,
            "agentId": agent_id,
            "responseSettings": {"greeting": "hi"},
            "voiceSettings": {"voiceId": voice},
        }
        r = self.admin("POST", f"/v1/accounts/{account}/agents", json=body)
        assert r.status_code == 200, r.text
        r = self.admin("PUT", f"/v1/agents/{agent_id}/cache-policy", json={"admission": "always"})
        assert r.status_code == 200, r.text
        return agent_id


def _key(server: LiveServer, account: str, *grants: str) -> str:
    args = [a for g in grants for a in ("--grant", g)]
    done = server.cli("keys", "create", "--account", account, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    require_tool("espeak-ng")
    server = LiveServer(Path(tmp_path_factory.mktemp("speech")) / "srv")
    key = _key(server, "acme", "*")
    reader = _key(server, "acme", "audio_cache:read")
    writer_only = _key(server, "acme", "agents:read")
    single = _key(server, "solo", "*")
    server.start()
    try:
        state = Live(server, key, reader, writer_only)
        state.agent("bot")
        state.agent("other")
        # An account with one agent: OpenAI model names mean that agent.
        r = httpx.post(
            f"{server.url}/v1/accounts/solo/agents",
            json={"name": "Solo", "agentId": "solo-bot", "responseSettings": {"greeting": "hi"}},
            headers={"X-API-KEY": single},
        )
        assert r.status_code == 200, r.text
        state.solo = single  # type: ignore[attr-defined]
        yield state
    finally:
        server.stop()


def _phrase(prefix: str) -> str:
    # Words only: the personal-data rules keep digits and codes out of the cache.
    words = ["apple", "river", "garden", "window", "yellow", "morning", "silver", "forest"]
    pick = [words[b % len(words)] for b in uuid.uuid4().bytes[:4]]
    return f"{prefix} {' '.join(pick)}, thank you for waiting."


def test_wav_miss_then_hit_and_decodes(live: Live) -> None:
    client = live.sdk()
    text = _phrase("Hello")
    first = client.audio.speech.with_raw_response.create(
        model="bot", voice="alloy", input=text, response_format="wav"
    )
    assert first.headers["x-audio-cache"] == "miss"
    second = client.audio.speech.with_raw_response.create(
        model="bot", voice="alloy", input=text, response_format="wav"
    )
    assert second.headers["x-audio-cache"] == "hit"
    audio, rate = sf.read(io.BytesIO(second.content), dtype="int16")
    (entry,) = [e for e in live.entries("bot") if e["transcript"] == text]
    assert rate == 22050  # espeak-ng's rate: wav is the stored file as is
    assert abs(len(audio) / rate - entry["duration"]) < 0.01
    streamed, _rate = sf.read(io.BytesIO(first.content), dtype="int16")
    assert np.array_equal(streamed, audio)


def test_pcm_is_24k_mono_and_the_hit_is_the_stored_variant(live: Live) -> None:
    client = live.sdk()
    text = _phrase("Good afternoon")
    miss = client.audio.speech.with_raw_response.create(
        model="bot", voice="nova", input=text, response_format="pcm"
    )
    hit = client.audio.speech.with_raw_response.create(
        model="bot", voice="nova", input=text, response_format="pcm"
    )
    assert (miss.headers["x-audio-cache"], hit.headers["x-audio-cache"]) == ("miss", "hit")
    assert hit.headers["content-type"].startswith("audio/pcm")
    pcm = np.frombuffer(hit.content, dtype="<i2")
    (entry,) = [e for e in live.entries("bot") if e["transcript"] == text]
    assert abs(len(pcm) / 24000 - entry["duration"]) < 0.02
    assert np.abs(pcm).max() > 1000  # speech, not silence
    # The streamed miss was resampled on the way: the same length as the stored variant.
    assert abs(len(miss.content) - len(hit.content)) <= 2 * 64


def test_streaming_miss_is_chunked_and_the_hit_has_a_length(live: Live) -> None:
    client = live.sdk()
    text = _phrase("Please hold the line while we look for a free agent")
    with client.audio.speech.with_streaming_response.create(
        model="bot", voice="alloy", input=text, response_format="pcm"
    ) as response:
        assert response.headers["x-audio-cache"] == "miss"
        assert response.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in response.headers
        chunks = list(response.iter_bytes())
    streamed = b"".join(chunks)
    with client.audio.speech.with_streaming_response.create(
        model="bot", voice="alloy", input=text, response_format="pcm"
    ) as response:
        assert response.headers["x-audio-cache"] == "hit"
        assert int(response.headers["content-length"]) == len(cached := response.read())
    assert abs(len(streamed) - len(cached)) <= 2 * 64


def test_streamed_wav_miss_decodes(live: Live) -> None:
    client = live.sdk()
    text = _phrase("Welcome back")
    with client.audio.speech.with_streaming_response.create(
        model="bot", voice="alloy", input=text, response_format="wav"
    ) as response:
        assert response.headers["x-audio-cache"] == "miss"
        body = response.read()
    audio, rate = sf.read(io.BytesIO(body), dtype="int16")
    (entry,) = [e for e in live.entries("bot") if e["transcript"] == text]
    assert rate == 22050 and abs(len(audio) / rate - entry["duration"]) < 0.01


def test_speed_is_part_of_the_key_and_instructions_are_ignored_by_espeak(live: Live) -> None:
    client = live.sdk()
    text = _phrase("Your call matters to us")

    def say(**extra: Any) -> Any:
        return client.audio.speech.with_raw_response.create(
            model="bot", voice="alloy", input=text, response_format="wav", **extra
        )

    assert say().headers["x-audio-cache"] == "miss"
    normal = say()
    assert say(speed=2.0).headers["x-audio-cache"] == "miss"
    fast = say(speed=2.0)
    assert (normal.headers["x-audio-cache"], fast.headers["x-audio-cache"]) == ("hit", "hit")
    assert fast.headers["x-audio-cache-entry-id"] != normal.headers["x-audio-cache-entry-id"]
    assert len(fast.content) < 0.8 * len(normal.content)
    same = say(speed=1.0, instructions="Speak cheerfully.")
    assert same.headers["x-audio-cache"] == "hit"
    assert same.headers["x-audio-instructions"] == "ignored"
    assert same.headers["x-audio-cache-entry-id"] == normal.headers["x-audio-cache-entry-id"]


def test_an_openai_model_name_means_the_only_agent(live: Live) -> None:
    client = live.sdk(live.solo)  # type: ignore[attr-defined]
    response = client.audio.speech.with_raw_response.create(
        model="tts-1", voice="alloy", input=_phrase("Hi"), response_format="wav"
    )
    assert response.headers["x-audio-cache"] == "miss"
    sf.read(io.BytesIO(response.content))


def _error(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


def test_errors_come_in_openais_shape(live: Live) -> None:
    with pytest.raises(openai.AuthenticationError) as bad_key:
        live.sdk("not-a-key").audio.speech.create(
            model="bot", voice="alloy", input="Hi", response_format="wav"
        )
    assert _error(bad_key.value)["code"] == "invalid_api_key"

    with pytest.raises(openai.PermissionDeniedError) as no_grant:
        live.sdk(live.writer_only).audio.speech.create(
            model="bot", voice="alloy", input="Hi", response_format="wav"
        )
    assert _error(no_grant.value)["type"] == "invalid_request_error"

    client = live.sdk()
    with pytest.raises(openai.NotFoundError) as unknown:
        client.audio.speech.create(model="nobody", voice="alloy", input="Hi", response_format="wav")
    assert _error(unknown.value) | {"message": ""} == {
        "message": "",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }

    with pytest.raises(openai.BadRequestError) as ambiguous:  # acme has two agents
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hi", response_format="wav")
    error = _error(ambiguous.value)
    assert error["param"] == "model" and "agent id" in error["message"]

    with pytest.raises(openai.BadRequestError) as bad_format:
        client.audio.speech.create(
            model="bot",
            voice="alloy",
            input="Hi",
            response_format="aiff",  # type: ignore[arg-type]
        )
    assert _error(bad_format.value)["param"] == "response_format"

    with pytest.raises(openai.BadRequestError) as bad_speed:
        client.audio.speech.create(
            model="bot", voice="alloy", input="Hi", speed=9.0, response_format="wav"
        )
    assert _error(bad_speed.value)["param"] == "speed"

    with pytest.raises(openai.BadRequestError) as bad_voice:
        client.audio.speech.create(
            model="bot", voice="espeak:no-such-voice", input="Hi", response_format="wav"
        )
    assert _error(bad_voice.value)["param"] == "voice"


@pytest.mark.parametrize(
    ("response_format", "content_type"),
    [("mp3", "audio/mpeg"), ("opus", "audio/ogg;codecs=opus"), ("flac", "audio/flac")],
)
def test_compressed_formats_decode_and_the_hit_is_not_encoded_again(
    live: Live, response_format: str, content_type: str
) -> None:
    client = live.sdk()
    text = _phrase("Thanks for your patience")
    miss = client.audio.speech.with_raw_response.create(
        model="bot",
        voice="alloy",
        input=text,
        response_format=response_format,  # type: ignore[arg-type]
    )
    hit = client.audio.speech.with_raw_response.create(
        model="bot",
        voice="alloy",
        input=text,
        response_format=response_format,  # type: ignore[arg-type]
    )
    assert (miss.headers["x-audio-cache"], hit.headers["x-audio-cache"]) == ("miss", "hit")
    assert hit.headers["content-type"] == content_type
    # The same bytes and ETag: the hit is the stored variant, not a second encoding.
    assert hit.content == miss.content
    assert hit.headers["etag"]
    audio, rate = sf.read(io.BytesIO(hit.content), dtype="float32")
    (entry,) = [e for e in live.entries("bot") if e["transcript"] == text]
    assert rate == 24000 and audio.ndim == 1
    assert abs(len(audio) / rate - entry["duration"]) < 0.08
    assert np.abs(audio).max() > 0.05


def test_mp3_is_the_default_format(live: Live) -> None:
    audio = live.sdk().audio.speech.create(model="bot", voice="alloy", input=_phrase("Hello"))
    data = audio.read()
    assert sf.info(io.BytesIO(data)).format == "MP3"
