"""The cache key: a canonical, versioned hash of everything that changes the sound.

Two requests share a key exactly when they would produce the same audio: same agent,
provider, provider voice, model, language, normalised text, sound-relevant tuning and
output format. Changing the model or the tuning is a new key, never stale audio.
``KeyParts`` holds what goes into a key; ``payload()`` is its inspectable form and ``key``
its sha256.
"""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from audiocache.models import Entry

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


@dataclass(frozen=True)
class KeyParts:
    """Everything that changes the sound of a phrase, the one way callers name a key."""

    agent_id: str
    provider: str
    voice: str  # the provider's voice id
    model: str
    language: str
    text: str
    config: Mapping[str, Any]
    output_format: str = "wav"

    @classmethod
    def of_entry(cls, entry: Entry, **changes: Any) -> KeyParts:
        """A stored entry's parts, with ``changes`` (e.g. a new model, text or config)."""
        parts = cls(
            agent_id=entry.agent_id,
            provider=entry.provider,
            voice=entry.provider_voice_id,
            model=entry.model,
            language=entry.language_code,
            text=entry.transcript,
            config=entry.config,
        )
        return replace(parts, **changes) if changes else parts

    def payload(self) -> dict[str, Any]:
        return {
            "v": KEY_VERSION,
            "agent": self.agent_id,
            "provider": self.provider,
            "voice": self.voice,
            "model": self.model,
            "language": self.language.strip().lower(),
            "text": normalise_text(self.text),
            "config": sound_config(self.config),
            "format": self.output_format,
        }

    @cached_property
    def key(self) -> str:
        canonical = json.dumps(
            self.payload(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def cache_key(**parts: Any) -> str:
    return KeyParts(**parts).key
