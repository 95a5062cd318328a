"""ElevenLabs: ``POST {base}/v1/text-to-speech/{voice_id}?output_format=pcm_24000``.

Auth header ``xi-api-key``. The answer is raw 16-bit little-endian mono PCM at 24 kHz, which
is wrapped in a WAV header here. Mapping of ``VoiceTuningConfig``:

    modelId           → model_id (default ``eleven_multilingual_v2``)
    stability         → voice_settings.stability         (0..1)
    similarityBoost   → voice_settings.similarity_boost  (0..1)
    speed             → voice_settings.speed             (0.7..1.2, ElevenLabs' range)
    request.language  → language_code (ISO 639-1, "en-GB" → "en"), only for the models known
                        to enforce a language (``*_v2_5``, ``eleven_v3*``): the API answers an
                        error when the model does not support the code given
    volume, emotion, voiceDescription, engine, instantMode → not sent (no such parameter)

``voice_settings`` is sent only with the fields that are set, so the voice's own stored
settings apply to the rest. An unknown voice (HTTP 404, or ``voice_not_found``) → InvalidVoice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from audiocache.tts.base import SynthesisRequest
from audiocache.tts.cloud._http import (
    ProviderClient,
    ProviderReply,
    RetryPolicy,
    check_voice,
    mentions_voice,
    tuning,
    wav_from_pcm,
)

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
DEFAULT_MODEL = "eleven_multilingual_v2"
SAMPLE_RATE = 24000


def _is_voice_error(reply: ProviderReply) -> bool:
    # the voice id is in the path, so a 404 on this route means "no such voice"
    return reply.status == 404 or mentions_voice(reply)


def _takes_language(model: str) -> bool:
    return "v2_5" in model or model.startswith("eleven_v3")


class ElevenLabsEngine:
    provider = "eleven_labs"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        model: str = DEFAULT_MODEL,
        policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model = model
        self.http = ProviderClient(
            self.provider,
            base_url=base_url or DEFAULT_BASE_URL,
            headers={"xi-api-key": api_key},
            policy=policy,
            transport=transport,
            is_voice_error=_is_voice_error,
        )

    def model_for(self, config: Mapping[str, Any], voice: str = "") -> str:
        return str(config.get("modelId") or self.model)

    async def validate_voice(self, voice: str) -> None:
        check_voice("ElevenLabs", voice, r"[A-Za-z0-9_-]{1,64}", "JBFqnCBsd6RMkjVDRZzb")

    def payload(self, request: SynthesisRequest) -> dict[str, Any]:
        config, name = request.config, "ElevenLabs"
        settings = {
            "stability": tuning(config, "stability", 0, 1, name),
            "similarity_boost": tuning(config, "similarityBoost", 0, 1, name),
            "speed": tuning(config, "speed", 0.7, 1.2, name),
        }
        model = self.model_for(config)
        body: dict[str, Any] = {"text": request.text, "model_id": model}
        if request.language and _takes_language(model):
            body["language_code"] = request.language.split("-")[0].lower()
        voice_settings = {k: v for k, v in settings.items() if v is not None}
        if voice_settings:
            body["voice_settings"] = voice_settings
        return body

    async def synthesize(self, request: SynthesisRequest) -> bytes:
        await self.validate_voice(request.voice)
        reply = await self.http.post(
            f"/v1/text-to-speech/{quote(request.voice, safe='')}",
            params={"output_format": f"pcm_{SAMPLE_RATE}"},
            json=self.payload(request),
        )
        return wav_from_pcm(self.provider, reply, SAMPLE_RATE)

    async def close(self) -> None:
        await self.http.aclose()
