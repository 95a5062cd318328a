"""The cloud engines against loopback fakes of each provider (fake_providers.py): request
shapes, audio, auth, retries with Retry-After and backoff, deadlines, malformed answers."""

from __future__ import annotations

import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from fake_providers import API_KEY, FakeProvider, Reply, serve_all

from audiocache.audio.wav import parse_wav
from audiocache.errors import (
    InvalidInput,
    InvalidVoice,
    ProviderAuthFailed,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
)
from audiocache.tts.base import Engine, SynthesisRequest
from audiocache.tts.cloud import (
    CartesiaEngine,
    ElevenLabsEngine,
    GoogleEngine,
    MicrosoftEngine,
    OpenAIEngine,
    RetryPolicy,
)
from audiocache.tts.cloud._http import parse_retry_after

PROVIDERS = ["eleven_labs", "openai", "google", "microsoft", "cartesia"]
VOICES = {
    "eleven_labs": "JBFqnCBsd6RMkjVDRZzb",
    "openai": "alloy",
    "google": "en-GB-Neural2-A",
    "microsoft": "en-US-JennyNeural",
    "cartesia": "a0e99841-438c-4a64-b679-ae501e7d6091",
}
FAST = RetryPolicy(
    max_attempts=3,
    deadline_seconds=5.0,
    attempt_timeout_seconds=3.0,
    backoff_seconds=0.05,
    max_backoff_seconds=0.2,
)


def make_engine(provider: str, url: str, *, key: str = API_KEY, policy: RetryPolicy = FAST) -> Any:
    if provider == "eleven_labs":
        return ElevenLabsEngine(key, base_url=url, policy=policy)
    if provider == "openai":
        return OpenAIEngine(key, base_url=f"{url}/v1", policy=policy)
    if provider == "google":
        return GoogleEngine(key, base_url=url, policy=policy)
    if provider == "microsoft":
        return MicrosoftEngine(key, base_url=url, policy=policy)
    return CartesiaEngine(key, base_url=url, policy=policy)


def speak(provider: str, text: str = "Hello there", **config: Any) -> SynthesisRequest:
    return SynthesisRequest(text=text, voice=VOICES[provider], language="", config=config)


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    yield from serve_all()


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fake(fakes: dict[str, FakeProvider], provider: str) -> FakeProvider:
    fakes[provider].reset()
    return fakes[provider]


@pytest.fixture
async def engines(fake: FakeProvider) -> AsyncIterator[list[Any]]:
    made: list[Any] = []
    yield made
    for engine in made:
        await engine.close()


@pytest.fixture
def build(fake: FakeProvider, provider: str, engines: list[Any]) -> Any:
    def _build(**kwargs: Any) -> Any:
        engine = make_engine(provider, kwargs.pop("url", fake.url), **kwargs)
        engines.append(engine)
        return engine

    return _build


# -- success path --------------------------------------------------------------------------
async def test_engine_protocol_and_valid_wav(provider: str, fake: FakeProvider, build: Any):
    engine = build()
    assert isinstance(engine, Engine) and engine.provider == provider
    info = parse_wav(await engine.synthesize(speak(provider)))
    assert (info.encoding, info.channels, info.bits_per_sample) == ("pcm", 1, 16)
    assert info.sample_rate == 24000 and info.frames > 0
    assert len(fake.requests) == 1 and fake.requests[0].method == "POST"


async def test_eleven_labs_request(fakes: dict[str, FakeProvider]):
    fake = fakes["eleven_labs"]
    fake.reset()
    engine = ElevenLabsEngine(API_KEY, base_url=fake.url, policy=FAST)
    config = {
        "stability": 0.3,
        "similarityBoost": 0.8,
        "speed": 1.1,
        "modelId": "eleven_flash_v2_5",
    }
    request = SynthesisRequest("Hi", VOICES["eleven_labs"], "en-GB", config)
    await engine.synthesize(request)
    await engine.synthesize(speak("eleven_labs", stability=0.5))
    await engine.close()
    first, second = fake.requests
    assert first.path == "/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb"
    assert first.query == {"output_format": "pcm_24000"}
    assert first.headers["xi-api-key"] == API_KEY
    assert first.json() == {
        "text": "Hi",
        "model_id": "eleven_flash_v2_5",
        "language_code": "en",
        "voice_settings": {"stability": 0.3, "similarity_boost": 0.8, "speed": 1.1},
    }
    assert second.json() == {
        "text": "Hello there",
        "model_id": "eleven_multilingual_v2",
        "voice_settings": {"stability": 0.5},
    }
    assert engine.model_for(config) == "eleven_flash_v2_5"
    assert engine.model_for({}) == "eleven_multilingual_v2"


async def test_openai_request(fakes: dict[str, FakeProvider]):
    fake = fakes["openai"]
    fake.reset()
    engine = OpenAIEngine(API_KEY, base_url=f"{fake.url}/v1", policy=FAST)
    config = {"speed": 1.5, "voiceDescription": "A calm narrator.", "emotion": "cheerful"}
    await engine.synthesize(speak("openai", "Hi", **config))
    await engine.synthesize(speak("openai", "Hi", modelId="tts-1-hd", emotion="sad", volume=0.5))
    await engine.close()
    first, second = fake.requests
    assert first.path == "/v1/audio/speech"
    assert first.headers["authorization"] == f"Bearer {API_KEY}"
    assert first.json() == {
        "model": "gpt-4o-mini-tts",
        "input": "Hi",
        "voice": "alloy",
        "response_format": "pcm",
        "speed": 1.5,
        "instructions": "A calm narrator. Emotion: cheerful.",
    }
    # tts-1* take no instructions; volume has no OpenAI parameter
    assert second.json() == {
        "model": "tts-1-hd",
        "input": "Hi",
        "voice": "alloy",
        "response_format": "pcm",
    }
    assert engine.model_for({"modelId": "tts-1"}) == "tts-1"


async def test_google_request(fakes: dict[str, FakeProvider]):
    fake = fakes["google"]
    fake.reset()
    engine = GoogleEngine(API_KEY, base_url=fake.url, policy=FAST)
    await engine.synthesize(speak("google", "Hi", speed=1.25, volume=0.5))
    config = {"modelId": "gemini-2.5-flash-tts", "voiceDescription": "Warm", "emotion": "happy"}
    await engine.synthesize(SynthesisRequest("Hi", "Kore", "de-DE", config))
    await engine.close()
    first, second = fake.requests
    assert first.path == "/v1/text:synthesize"
    assert first.headers["x-goog-api-key"] == API_KEY
    assert first.json() == {
        "input": {"text": "Hi"},
        "voice": {"languageCode": "en-GB", "name": "en-GB-Neural2-A"},
        "audioConfig": {
            "audioEncoding": "LINEAR16",
            "sampleRateHertz": 24000,
            "speakingRate": 1.25,
            "volumeGainDb": -6.02,
        },
    }
    assert second.json()["voice"] == {
        "languageCode": "de-DE",
        "name": "Kore",
        "modelName": "gemini-2.5-flash-tts",
    }
    assert second.json()["input"] == {"text": "Hi", "prompt": "Warm Emotion: happy."}
    assert engine.model_for({}) == "google-cloud-tts-v1"
    assert engine.model_for(config) == "gemini-2.5-flash-tts"


async def test_microsoft_request_escapes_the_text(fakes: dict[str, FakeProvider]):
    fake = fakes["microsoft"]
    fake.reset()
    engine = MicrosoftEngine(API_KEY, base_url=fake.url, policy=FAST)
    text = 'Tom & Jerry <break time="9s"/> say "hi" \x01</voice>'
    await engine.synthesize(speak("microsoft", text, speed=1.2, volume=0.5, emotion="cheerful"))
    await engine.close()
    (rec,) = fake.requests
    assert rec.path == "/cognitiveservices/v1"
    assert rec.headers["ocp-apim-subscription-key"] == API_KEY
    assert rec.headers["content-type"] == "application/ssml+xml"
    assert rec.headers["x-microsoft-outputformat"] == "riff-24khz-16bit-mono-pcm"
    assert rec.headers["user-agent"]
    ns = {"s": "http://www.w3.org/2001/10/synthesis", "m": "https://www.w3.org/2001/mstts"}
    root = ET.fromstring(rec.body)
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "en-US"
    voice = root.find("s:voice", ns)
    assert voice is not None and voice.get("name") == "en-US-JennyNeural"
    prosody = root.find("s:voice/m:express-as[@style='cheerful']/s:prosody", ns)
    assert prosody is not None
    assert (prosody.get("rate"), prosody.get("volume")) == ("+20.00%", "-50.00%")
    assert list(prosody) == [] and prosody.text == text.replace("\x01", "")
    assert engine.model_for({"modelId": "anything"}) == "azure-neural-tts"


async def test_cartesia_request(fakes: dict[str, FakeProvider]):
    fake = fakes["cartesia"]
    fake.reset()
    engine = CartesiaEngine(API_KEY, base_url=fake.url, policy=FAST)
    config = {"speed": 1.2, "volume": 0.8, "emotion": "excited", "modelId": "sonic-2"}
    await engine.synthesize(SynthesisRequest("Salut", VOICES["cartesia"], "fr-FR", config))
    await engine.close()
    (rec,) = fake.requests
    assert rec.path == "/tts/bytes"
    assert rec.headers["authorization"] == f"Bearer {API_KEY}"
    assert rec.headers["cartesia-version"] == "2025-04-16"
    assert rec.json() == {
        "model_id": "sonic-2",
        "transcript": "Salut",
        "voice": {"mode": "id", "id": VOICES["cartesia"]},
        "output_format": {"container": "raw", "encoding": "pcm_s16le", "sample_rate": 24000},
        "language": "fr",
        "generation_config": {"speed": 1.2, "volume": 0.8, "emotion": "excited"},
    }
    assert engine.model_for({}) == "sonic-3"


# -- refusals ------------------------------------------------------------------------------
async def test_wrong_key_is_an_auth_error(provider: str, fake: FakeProvider, build: Any):
    with pytest.raises(ProviderAuthFailed) as caught:
        await build(key="wrong").synthesize(speak(provider))
    assert (caught.value.status, caught.value.error_code) == (502, "PROVIDER_AUTH_FAILED")
    assert "rejected the API key" in caught.value.message
    assert len(fake.requests) == 1  # never retried


async def test_403_is_an_auth_error(provider: str, fake: FakeProvider, build: Any):
    fake.script(Reply(403))
    with pytest.raises(ProviderAuthFailed):
        await build().synthesize(speak(provider))


async def test_unknown_voice_is_invalid_voice(provider: str, fake: FakeProvider, build: Any):
    request = SynthesisRequest("Hi", "missing", "en-US", {})
    with pytest.raises(InvalidVoice) as caught:
        await build().synthesize(request)
    assert (caught.value.status, caught.value.error_code) == (400, "INVALID_VOICE")
    assert len(fake.requests) == 1


async def test_other_4xx_is_a_provider_error(provider: str, fake: FakeProvider, build: Any):
    fake.script(Reply(402, b'{"error": "quota exceeded"}', content_type="application/json"))
    with pytest.raises(ProviderError) as caught:
        await build().synthesize(speak(provider))
    assert (caught.value.status, caught.value.error_code) == (502, "PROVIDER_ERROR")
    assert len(fake.requests) == 1


@pytest.mark.parametrize("voice", ["", "a/b", "x" * 300, "bad\nvoice", "../etc"])
async def test_validate_voice_is_local(provider: str, fake: FakeProvider, build: Any, voice: str):
    engine = build()
    await engine.validate_voice(VOICES[provider])
    with pytest.raises(InvalidVoice):
        await engine.validate_voice(voice)
    with pytest.raises(InvalidVoice):
        await engine.synthesize(SynthesisRequest("Hi", voice))
    assert fake.requests == []


async def test_out_of_range_tuning_is_refused_before_calling(
    provider: str, fake: FakeProvider, build: Any
):
    with pytest.raises(InvalidInput, match="speed"):
        await build().synthesize(speak(provider, speed=9.0))
    assert fake.requests == []


# -- retries -------------------------------------------------------------------------------
async def test_429_honours_retry_after(provider: str, fake: FakeProvider, build: Any):
    fake.script(Reply(429, headers={"Retry-After": "1"}))
    started = time.monotonic()
    parse_wav(await build().synthesize(speak(provider)))
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.6
    assert len(fake.requests) == 2


async def test_retry_after_as_http_date(fakes: dict[str, FakeProvider]):
    fake = fakes["openai"]
    fake.reset()
    fake.script(Reply(503, headers={"Retry-After": formatdate(time.time() + 2, usegmt=True)}))
    engine = make_engine("openai", fake.url)
    started = time.monotonic()
    await engine.synthesize(speak("openai"))
    await engine.close()
    assert 0.9 <= time.monotonic() - started < 2.6  # the date has one-second resolution
    assert len(fake.requests) == 2


def test_parse_retry_after():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = parse_retry_after(formatdate(time.time() + 30, usegmt=True))
    assert later is not None and 28 <= later <= 30
    assert parse_retry_after(formatdate(time.time() - 30, usegmt=True)) == 0.0


async def test_5xx_then_success_backs_off(provider: str, fake: FakeProvider, build: Any):
    fake.script(Reply(500), Reply(503))
    started = time.monotonic()
    parse_wav(await build().synthesize(speak(provider)))
    assert time.monotonic() - started >= 0.025 + 0.05  # two backoffs, at least half each
    assert len(fake.requests) == 3


async def test_always_5xx_gives_up_after_max_attempts(
    provider: str, fake: FakeProvider, build: Any
):
    fake.script(*[Reply(500)] * 5)
    with pytest.raises(ProviderError) as caught:
        await build().synthesize(speak(provider))
    assert type(caught.value) is ProviderError and caught.value.error_code == "PROVIDER_ERROR"
    assert "HTTP 500" in caught.value.message
    assert len(fake.requests) == FAST.max_attempts


async def test_always_429_is_rate_limited(provider: str, fake: FakeProvider, build: Any):
    fake.script(*[Reply(429, headers={"Retry-After": "0"})] * 5)
    with pytest.raises(ProviderRateLimited) as caught:
        await build().synthesize(speak(provider))
    assert (caught.value.status, caught.value.error_code) == (503, "PROVIDER_RATE_LIMITED")
    assert caught.value.retry_after == 0.0
    assert len(fake.requests) == FAST.max_attempts


async def test_retry_after_beyond_deadline_fails_fast(fakes: dict[str, FakeProvider]):
    fake = fakes["cartesia"]
    fake.reset()
    fake.script(Reply(429, headers={"Retry-After": "60"}))
    engine = make_engine("cartesia", fake.url)
    started = time.monotonic()
    with pytest.raises(ProviderRateLimited) as caught:
        await engine.synthesize(speak("cartesia"))
    await engine.close()
    assert time.monotonic() - started < 0.5 and caught.value.retry_after == pytest.approx(60)
    assert len(fake.requests) == 1


# -- deadlines -----------------------------------------------------------------------------
async def test_slow_provider_times_out_at_the_deadline(
    provider: str, fake: FakeProvider, build: Any
):
    policy = RetryPolicy(deadline_seconds=0.6, attempt_timeout_seconds=5, backoff_seconds=0.05)
    fake.script(Reply(delay=5))
    started = time.monotonic()
    with pytest.raises(ProviderTimeout) as caught:
        await build(policy=policy).synthesize(speak(provider))
    assert 0.6 <= time.monotonic() - started < 0.6 + 0.4
    assert (caught.value.status, caught.value.error_code) == (504, "PROVIDER_TIMEOUT")
    assert isinstance(caught.value.__cause__, TimeoutError | httpx.TimeoutException)


async def test_attempt_timeouts_are_retried(fakes: dict[str, FakeProvider]):
    fake = fakes["google"]
    fake.reset()
    fake.script(Reply(delay=3), Reply(delay=3))
    policy = RetryPolicy(max_attempts=3, attempt_timeout_seconds=0.3, backoff_seconds=0.05)
    engine = make_engine("google", fake.url, policy=policy)
    started = time.monotonic()
    parse_wav(await engine.synthesize(speak("google")))
    await engine.close()
    assert 0.6 <= time.monotonic() - started < 1.5
    assert len(fake.requests) == 3


async def test_a_trickling_body_is_bounded_by_the_deadline(fakes: dict[str, FakeProvider]):
    fake = fakes["eleven_labs"]
    fake.reset()
    fake.script(Reply(drip=0.05))  # each chunk is quick; the whole body takes minutes
    policy = RetryPolicy(max_attempts=1, deadline_seconds=0.7, attempt_timeout_seconds=5)
    engine = make_engine("eleven_labs", fake.url, policy=policy)
    started = time.monotonic()
    with pytest.raises(ProviderTimeout):
        await engine.synthesize(speak("eleven_labs"))
    await engine.close()
    assert 0.7 <= time.monotonic() - started < 1.1


async def test_unreachable_provider(provider: str, build: Any):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(ProviderError, match="could not reach") as caught:
        await build(url=url).synthesize(speak(provider))
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


# -- malformed answers ---------------------------------------------------------------------
async def test_malformed_success_is_a_provider_error(provider: str, fake: FakeProvider, build: Any):
    fake.script(fake.malformed())
    with pytest.raises(ProviderError) as caught:
        await build().synthesize(speak(provider))
    assert caught.value.error_code == "PROVIDER_ERROR"
    assert len(fake.requests) == 1


async def test_json_instead_of_audio_is_a_provider_error(
    provider: str, fake: FakeProvider, build: Any
):
    fake.script(Reply(200, b'{"ok": true}', content_type="application/json"))
    with pytest.raises(ProviderError):
        await build().synthesize(speak(provider))


@pytest.mark.parametrize("provider", ["eleven_labs", "openai", "cartesia"])
@pytest.mark.parametrize(
    ("content_type", "body"),
    [("audio/mpeg", b"ID3\x03\x00\x00\x00\x00"), ("application/octet-stream", b"OggS\x00\x02")],
)
async def test_compressed_audio_is_not_taken_for_pcm(
    provider: str, fake: FakeProvider, build: Any, content_type: str, body: bytes
):
    fake.script(Reply(200, body, content_type=content_type))
    with pytest.raises(ProviderError, match="not PCM"):
        await build().synthesize(speak(provider))


async def test_oversized_answer_is_refused(provider: str, fake: FakeProvider, build: Any):
    policy = RetryPolicy(max_response_bytes=1000)
    with pytest.raises(ProviderError, match="exceeds"):
        await build(policy=policy).synthesize(speak(provider))
