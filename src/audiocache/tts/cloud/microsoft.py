"""Azure AI Speech REST: ``POST https://{region}.tts.speech.microsoft.com/cognitiveservices/v1``.

Headers ``Ocp-Apim-Subscription-Key``, ``Content-Type: application/ssml+xml``,
``X-Microsoft-OutputFormat: riff-24khz-16bit-mono-pcm`` (a complete WAV file), ``User-Agent``.
The body is SSML; the text and every attribute are XML-escaped, and characters XML 1.0
forbids are dropped. Mapping:

    request.voice     → <voice name="…"> (e.g. ``en-US-JennyNeural``)
    request.language  → <speak xml:lang="…"> (else from the voice name, else en-US)
    speed             → <prosody rate="+20.00%"> (0.5..2.0, relative to the voice's default)
    volume            → <prosody volume="-50.00%"> (0..2, 1.0 = default; Azure's default is
                        already its loudest, so above 1.0 may not get louder)
    emotion           → <mstts:express-as style="…"> (e.g. cheerful; voices without styles
                        ignore it)
    modelId, stability, similarityBoost, voiceDescription, engine, instantMode → not sent:
    this endpoint has no model parameter, so ``model_for`` always reports ``azure-neural-tts``
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import httpx

from audiocache.errors import InvalidInput
from audiocache.tts.base import SynthesisRequest
from audiocache.tts.cloud._http import (
    ProviderClient,
    RetryPolicy,
    check_voice,
    tuning,
    wav_from_file,
)

MODEL = "azure-neural-tts"
OUTPUT_FORMAT = "riff-24khz-16bit-mono-pcm"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_LANGUAGE_PREFIX = re.compile(r"([a-z]{2,3}-[A-Z]{2})-")


def _percent(value: float) -> str:
    return f"{(value - 1) * 100:+.2f}%"


class MicrosoftEngine:
    provider = "microsoft"

    def __init__(
        self,
        api_key: str,
        *,
        region: str | None = None,
        base_url: str | None = None,
        policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not base_url:
            if not region or not re.fullmatch(r"[a-z0-9]{2,40}", region):
                raise ValueError("microsoft engine needs a region (e.g. 'westeurope') or base_url")
            base_url = f"https://{region}.tts.speech.microsoft.com"
        self.http = ProviderClient(
            self.provider,
            base_url=base_url,
            headers={"Ocp-Apim-Subscription-Key": api_key},
            policy=policy,
            transport=transport,
        )

    def model_for(self, config: Mapping[str, Any], voice: str = "") -> str:
        return MODEL

    async def validate_voice(self, voice: str) -> None:
        check_voice("Microsoft", voice, r"[A-Za-z0-9 _.:,()-]{1,128}", "en-US-JennyNeural")

    def ssml(self, request: SynthesisRequest) -> str:
        config = request.config
        prefix = _LANGUAGE_PREFIX.match(request.voice)
        language = request.language or (prefix.group(1) if prefix else "en-US")
        body = escape(_NOT_XML.sub("", request.text))
        prosody = {}
        speed = tuning(config, "speed", 0.5, 2.0, "Microsoft")
        if speed is not None:
            prosody["rate"] = _percent(speed)
        volume = tuning(config, "volume", 0, 2, "Microsoft")
        if volume is not None:
            prosody["volume"] = _percent(volume)
        if prosody:
            attributes = "".join(f" {k}={quoteattr(v)}" for k, v in prosody.items())
            body = f"<prosody{attributes}>{body}</prosody>"
        emotion = config.get("emotion")
        if emotion:
            if not re.fullmatch(r"[A-Za-z-]{1,40}", str(emotion)):
                raise InvalidInput("config.emotion must be an Azure style name, e.g. 'cheerful'")
            body = f"<mstts:express-as style={quoteattr(str(emotion))}>{body}</mstts:express-as>"
        return (
            '<speak version="1.0" xmlns="http://www.w3.org/2001/10/synthesis" '
            f'xmlns:mstts="https://www.w3.org/2001/mstts" xml:lang={quoteattr(language)}>'
            f"<voice name={quoteattr(request.voice)}>{body}</voice></speak>"
        )

    async def synthesize(self, request: SynthesisRequest) -> bytes:
        await self.validate_voice(request.voice)
        reply = await self.http.post(
            "/cognitiveservices/v1",
            content=self.ssml(request).encode("utf-8"),
            headers={
                "Content-Type": "application/ssml+xml",
                "X-Microsoft-OutputFormat": OUTPUT_FORMAT,
            },
        )
        return wav_from_file(self.provider, reply.content)

    async def close(self) -> None:
        await self.http.aclose()
