"""The cache key: a canonical, versioned hash of everything that changes the sound.

Two requests share a key exactly when they would produce the same audio: same agent,
provider, provider voice, model, language, normalised text, sound-relevant tuning and
output format. Changing the model or the tuning is a new key, never stale audio.
``key_payload`` is the inspectable form; ``cache_key`` its sha256.
"""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
from collections.abc import Mapping
from typing import Any

KEY_VERSION = 1

# VoiceTuningConfig fields that change the audio produced. instantMode only trades latency.
SOUND_FIELDS = (
    "emotion",
    "engine",
    "modelId",
    "similarityBoost",
    "speed",
    "stability",
    "version",
    "voiceDescription",
    "volume",
)
_NUMERIC_FIELDS = {"similarityBoost", "speed", "stability", "volume"}


def normalise_text(text: str) -> str:
    """NFC and collapsed whitespace; nothing that could change pronunciation (case, punctuation)."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def sound_config(config: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SOUND_FIELDS:
        value = config.get(name)
        if value is None:
            continue
        if name in _NUMERIC_FIELDS:
            # Configs are validated (cache/tuning.py); a stored one from before that may hold
            # "fast" or NaN, which no engine uses either: leave it out rather than fail.
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if (isinstance(value, int) and abs(value) > 2**53) or not math.isfinite(value):
                continue
            out[name] = float(value)
        else:
            out[name] = str(value)
    return out


def key_payload(
    *,
    agent_id: str,
    provider: str,
    voice: str,
    model: str,
    language: str,
    text: str,
    config: Mapping[str, Any],
    output_format: str = "wav",
) -> dict[str, Any]:
    return {
        "v": KEY_VERSION,
        "agent": agent_id,
        "provider": provider,
        "voice": voice,
        "model": model,
        "language": language.strip().lower(),
        "text": normalise_text(text),
        "config": sound_config(config),
        "format": output_format,
    }


def cache_key(**parts: Any) -> str:
    payload = key_payload(**parts)
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
