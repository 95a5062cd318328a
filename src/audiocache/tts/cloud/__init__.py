"""Cloud TTS engines, one module per provider, named as the contract names providers.

Each takes its API key and base URL as constructor arguments, asks for 16-bit PCM (a WAV file
or raw samples wrapped here) and returns a complete WAV or raises; the shared HTTP client,
retry policy and error mapping live in ``_http``.
"""

from __future__ import annotations

from audiocache.tts.cloud._http import RetryPolicy
from audiocache.tts.cloud.cartesia import CartesiaEngine
from audiocache.tts.cloud.eleven_labs import ElevenLabsEngine
from audiocache.tts.cloud.google import GoogleEngine
from audiocache.tts.cloud.microsoft import MicrosoftEngine
from audiocache.tts.cloud.openai import OpenAIEngine

__all__ = [
    "CartesiaEngine",
    "ElevenLabsEngine",
    "GoogleEngine",
    "MicrosoftEngine",
    "OpenAIEngine",
    "RetryPolicy",
]
