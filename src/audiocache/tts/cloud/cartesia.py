"""Cartesia: ``POST {base}/tts/bytes`` with ``Authorization: Bearer`` and ``Cartesia-Version``.

Cartesia's current docs authenticate with ``Authorization: Bearer <api key>`` (the older
``X-API-Key`` header is still accepted) and require a dated ``Cartesia-Version``. The output
asked for is ``{container: "raw", encoding: "pcm_s16le", sample_rate: 24000}``, wrapped in a
WAV header here. Mapping:

    modelId           → model_id (default ``sonic-3``)
    request.voice     → voice: {mode: "id", id}
    request.language  → language (ISO 639-1, "fr-FR" → "fr")
    speed             → generation_config.speed   (0.6..1.5)
    volume            → generation_config.volume  (0.5..2.0)
    emotion           → generation_config.emotion (e.g. "neutral", "excited")
    stability, similarityBoost, voiceDescription, engine, instantMode → not sent

``generation_config`` (sonic-3 and later) is sent only when one of its fields is set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from audiocache.errors import InvalidInput
from audiocache.tts.base import SynthesisRequest
from audiocache.tts.cloud._http import (
    ProviderClient,
    RetryPolicy,
    check_voice,
    tuning,
    wav_from_pcm,
)

DEFAULT_BASE_URL = "https://api.cartesia.ai"
DEFAULT_MODEL = "sonic-3"
DEFAULT_VERSION = "2025-04-16"
SAMPLE_RATE = 24000


class CartesiaEngine:
    provider = "cartesia"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        model: str = DEFAULT_MODEL,
        version: str = DEFAULT_VERSION,
        policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model = model
        self.http = ProviderClient(
            self.provider,
            base_url=base_url or DEFAULT_BASE_URL,
            headers={"Authorization": f"Bearer {api_key}", "Cartesia-Version": version},
            policy=policy,
            transport=transport,
        )

    def model_for(self, config: Mapping[str, Any], voice: str = "") -> str:
        return str(config.get("modelId") or self.model)

    async def validate_voice(self, voice: str) -> None:
        check_voice(
            "Cartesia", voice, r"[A-Za-z0-9_-]{1,64}", "a0e99841-438c-4a64-b679-ae501e7d6091"
        )

    def payload(self, request: SynthesisRequest) -> dict[str, Any]:
        config = request.config
        body: dict[str, Any] = {
            "model_id": self.model_for(config),
            "transcript": request.text,
            "voice": {"mode": "id", "id": request.voice},
            "output_format": {
                "container": "raw",
                "encoding": "pcm_s16le",
                "sample_rate": SAMPLE_RATE,
            },
        }
        if request.language:
            body["language"] = request.language.split("-")[0].lower()
        generation: dict[str, Any] = {
            "speed": tuning(config, "speed", 0.6, 1.5, "Cartesia"),
            "volume": tuning(config, "volume", 0.5, 2.0, "Cartesia"),
        }
        emotion = config.get("emotion")
        if emotion:
            if not re.fullmatch(r"[A-Za-z_:-]{1,40}", str(emotion)):
                raise InvalidInput("config.emotion must be a Cartesia emotion, e.g. 'excited'")
            generation["emotion"] = str(emotion)
        generation = {k: v for k, v in generation.items() if v is not None}
        if generation:
            body["generation_config"] = generation
        return body

    async def synthesize(self, request: SynthesisRequest) -> bytes:
        await self.validate_voice(request.voice)
        reply = await self.http.post("/tts/bytes", json=self.payload(request))
        return wav_from_pcm(self.provider, reply, SAMPLE_RATE)

    async def close(self) -> None:
        await self.http.aclose()
