"""OpenAI: ``POST {base}/audio/speech`` (base ``https://api.openai.com/v1``), Bearer key.

``response_format: "pcm"`` answers raw 16-bit little-endian mono PCM at 24 kHz, which is
wrapped in a WAV header here (OpenAI's ``wav`` is streamed with placeholder sizes). Mapping:

    modelId           → model (default ``gpt-4o-mini-tts``)
    request.voice     → voice (``alloy``, ``coral``, … or a custom voice id)
    speed             → speed (0.25..4.0)
    voiceDescription  → instructions, with emotion appended ("Emotion: cheerful."); sent only
    emotion             to models that take instructions (not ``tts-1``/``tts-1-hd``)
    stability, similarityBoost, volume, engine, instantMode → not sent (no such parameter)

A 400 naming ``param: "voice"`` (or talking about the voice) → InvalidVoice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from audiocache.errors import InvalidInput
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

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini-tts"
SAMPLE_RATE = 24000
MAX_INSTRUCTIONS = 4096


def _is_voice_error(reply: ProviderReply) -> bool:
    try:
        param = reply.json()["error"]["param"]
    except (KeyError, TypeError, ValueError):
        param = None
    return param == "voice" or mentions_voice(reply)


class OpenAIEngine:
    provider = "openai"

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
            headers={"Authorization": f"Bearer {api_key}"},
            policy=policy,
            transport=transport,
            is_voice_error=_is_voice_error,
        )

    def model_for(self, config: Mapping[str, Any], voice: str = "") -> str:
        return str(config.get("modelId") or self.model)

    async def validate_voice(self, voice: str) -> None:
        check_voice("OpenAI", voice, r"[A-Za-z0-9_-]{1,64}", "alloy")

    def payload(self, request: SynthesisRequest) -> dict[str, Any]:
        config = request.config
        model = self.model_for(config)
        body: dict[str, Any] = {
            "model": model,
            "input": request.text,
            "voice": request.voice,
            "response_format": "pcm",
        }
        speed = tuning(config, "speed", 0.25, 4.0, "OpenAI")
        if speed is not None:
            body["speed"] = speed
        parts = [str(config.get("voiceDescription") or "").strip()]
        if config.get("emotion"):
            parts.append(f"Emotion: {config['emotion']}.")
        instructions = " ".join(part for part in parts if part)
        if instructions and not model.startswith("tts-1"):
            if len(instructions) > MAX_INSTRUCTIONS:
                raise InvalidInput(f"config.voiceDescription is over {MAX_INSTRUCTIONS} characters")
            body["instructions"] = instructions
        return body

    async def synthesize(self, request: SynthesisRequest) -> bytes:
        await self.validate_voice(request.voice)
        reply = await self.http.post("/audio/speech", json=self.payload(request))
        return wav_from_pcm(self.provider, reply, SAMPLE_RATE)

    async def close(self) -> None:
        await self.http.aclose()
