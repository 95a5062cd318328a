"""Google Cloud Text-to-Speech v1: ``POST {base}/v1/text:synthesize``, ``X-Goog-Api-Key``.

Asks for ``LINEAR16`` at 24 kHz; the answer is JSON whose ``audioContent`` is base64 of a
complete WAV file (Google includes the header for LINEAR16). Mapping:

    request.voice     → voice.name (e.g. ``en-US-Neural2-F``, ``Kore``)
    request.language  → voice.languageCode (required by Google; else taken from the voice name,
                        "en-US-Neural2-F" → "en-US", else "en-US")
    modelId           → voice.modelName (Gemini-TTS models, e.g. ``gemini-2.5-flash-tts``);
                        unset: the voice's own model, reported as ``google-cloud-tts-v1``
    voiceDescription  → input.prompt, with emotion appended; only with a modelName (Gemini)
    emotion
    speed             → audioConfig.speakingRate (0.25..2.0)
    volume            → audioConfig.volumeGainDb = 20·log10(volume) (1.0 = 0 dB; 0 → -96 dB;
                        at most ~6.3 = +16 dB, Google's ceiling)
    stability, similarityBoost, engine, instantMode → not sent (no such parameter)

A wrong key is answered ``400 INVALID_ARGUMENT`` with reason ``API_KEY_INVALID`` (a missing or
restricted one 401/403): all → ProviderAuthFailed. A 4xx about the voice → InvalidVoice.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from typing import Any

import httpx

from audiocache.errors import ProviderError
from audiocache.tts.base import SynthesisRequest
from audiocache.tts.cloud._http import (
    ProviderClient,
    ProviderReply,
    RetryPolicy,
    check_voice,
    tuning,
    wav_from_file,
)

DEFAULT_BASE_URL = "https://texttospeech.googleapis.com"
DEFAULT_MODEL = "google-cloud-tts-v1"
SAMPLE_RATE = 24000
_LANGUAGE_PREFIX = re.compile(r"([a-z]{2,3}-[A-Z]{2})-")


def _is_auth_error(reply: ProviderReply) -> bool:
    try:
        details = reply.json()["error"]["details"]
        return any(d.get("reason") == "API_KEY_INVALID" for d in details)
    except (KeyError, TypeError, AttributeError):
        return False


class GoogleEngine:
    provider = "google"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        model: str | None = None,
        policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model = model
        self.http = ProviderClient(
            self.provider,
            base_url=base_url or DEFAULT_BASE_URL,
            headers={"X-Goog-Api-Key": api_key},
            policy=policy,
            transport=transport,
            is_auth_error=_is_auth_error,
        )

    def model_for(self, config: Mapping[str, Any], voice: str = "") -> str:
        return str(config.get("modelId") or self.model or DEFAULT_MODEL)

    async def validate_voice(self, voice: str) -> None:
        check_voice("Google", voice, r"[A-Za-z0-9_.-]{1,100}", "en-US-Neural2-F")

    def payload(self, request: SynthesisRequest) -> dict[str, Any]:
        config = request.config
        prefix = _LANGUAGE_PREFIX.match(request.voice)
        language = request.language or (prefix.group(1) if prefix else "en-US")
        voice: dict[str, Any] = {"languageCode": language, "name": request.voice}
        text: dict[str, Any] = {"text": request.text}
        model = config.get("modelId") or self.model
        if model:
            voice["modelName"] = str(model)
            parts = [str(config.get("voiceDescription") or "").strip()]
            if config.get("emotion"):
                parts.append(f"Emotion: {config['emotion']}.")
            if prompt := " ".join(part for part in parts if part):
                text["prompt"] = prompt
        audio: dict[str, Any] = {"audioEncoding": "LINEAR16", "sampleRateHertz": SAMPLE_RATE}
        speed = tuning(config, "speed", 0.25, 2.0, "Google")
        if speed is not None:
            audio["speakingRate"] = speed
        volume = tuning(config, "volume", 0, 10 ** (16 / 20), "Google")
        if volume is not None:
            audio["volumeGainDb"] = round(max(-96.0, 20 * math.log10(volume or 1e-9)), 2)
        return {"input": text, "voice": voice, "audioConfig": audio}

    async def synthesize(self, request: SynthesisRequest) -> bytes:
        await self.validate_voice(request.voice)
        reply = await self.http.post("/v1/text:synthesize", json=self.payload(request))
        body = reply.json()
        content = body.get("audioContent") if isinstance(body, dict) else None
        if not isinstance(content, str) or not content:
            raise ProviderError("google answered without audioContent")
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProviderError("google audioContent is not valid base64") from exc
        return wav_from_file(self.provider, data)

    async def close(self) -> None:
        await self.http.aclose()
