"""OpenAI's ``POST /v1/audio/speech`` in audiocache's terms (pure, apart from the agent lookup).

What the OpenAI request names, and what audiocache makes of it:

* ``model``: an agent id of the key's account. An OpenAI model name (``tts-1``,
  ``gpt-4o-mini-tts``, …) means the account's only agent; with several agents it is a 400
  that asks for the agent id as ``model`` (an agent called ``tts-1`` wins over the name).
* ``voice``: a voice of the account's library, ``provider:voice`` or a voice of the default
  provider; OpenAI's own names (``alloy``, ``nova``, …) mean the agent's default voice, so a
  client written for OpenAI speaks with the agent's voice unchanged.
* ``speed``: tuning ``speed``, so part of the cache key (it changes the audio); ``1.0`` is
  left out, so it shares the key of a request that names no speed.
* ``instructions``: tuning ``voiceDescription`` for the engines that take a prompt (OpenAI,
  Google's Gemini voices), so part of their key; the others would sound the same with or
  without it, so it is dropped there (key unchanged) and the response says so.
* ``response_format``: see ``RESPONSE_FORMATS``; ``wav`` is the stored WAV as is.
"""

from __future__ import annotations

from typing import Any

from audiocache.errors import InvalidInput, NotFound
from audiocache.models import Agent

# OpenAI's model names, current and past, that a stock client sends.
OPENAI_MODELS = frozenset(
    {"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-03-20", "gpt-4o-tts"}
)
# OpenAI's built-in voices: each means "the agent's default voice".
OPENAI_VOICES = frozenset(
    {
        "alloy", "ash", "ballad", "cedar", "coral", "echo", "fable", "marin", "nova", "onyx",
        "sage", "shimmer", "verse",
    }
)  # fmt: skip
# OpenAI's response_format -> audiocache output format (``audio/formats.py``). OpenAI sends
# pcm as 24 kHz 16-bit mono little-endian; its compressed formats are 24 kHz too.
RESPONSE_FORMATS = {
    "wav": "wav",
    "pcm": "pcm_24000",
    "mp3": "mp3_24000",
    "opus": "opus_24000",
    "flac": "flac_24000",
}
DEFAULT_RESPONSE_FORMAT = "mp3"  # OpenAI's default, when the request names none
# Engines whose audio depends on a natural-language prompt (tts/cloud/openai.py, google.py).
PROMPTED_PROVIDERS = frozenset({"openai", "google"})


class ModelNotFound(NotFound):
    error_code = "MODEL_NOT_FOUND"
    param = "model"


class AmbiguousModel(InvalidInput):
    error_code = "AMBIGUOUS_MODEL"
    param = "model"


class UnsupportedFormat(InvalidInput):
    error_code = "UNSUPPORTED_RESPONSE_FORMAT"
    param = "response_format"


def output_format_name(response_format: str | None) -> str:
    """The audiocache format for an OpenAI ``response_format``."""
    name = (response_format or DEFAULT_RESPONSE_FORMAT).strip().lower()
    found = RESPONSE_FORMATS.get(name)
    if found is None:
        raise UnsupportedFormat(
            f"response_format {name!r} is not supported; use one of {', '.join(RESPONSE_FORMATS)}"
        )
    return found


def choose_agent(model: str, owned: Agent | None, account_agents: list[Agent]) -> Agent:
    """The agent a request's ``model`` means: ``owned`` is the account's agent of that id."""
    if owned is not None:
        return owned
    if model.strip().lower() not in OPENAI_MODELS:
        raise ModelNotFound(
            f"The model {model!r} is neither an agent of this account nor an OpenAI TTS model"
        )
    if len(account_agents) == 1:
        return account_agents[0]
    if not account_agents:
        raise ModelNotFound("This account has no agent; create one first")
    raise AmbiguousModel(
        f"This account has {len(account_agents)} agents; pass the agent id as `model` "
        f"instead of {model!r}"
    )


def voice_name(voice: str | None) -> str | None:
    """The audiocache voice for an OpenAI ``voice``: None (the agent's) for OpenAI's names."""
    if voice is None or voice.strip().lower() in OPENAI_VOICES:
        return None
    return voice.strip()


def tuning(
    speed: float | None, instructions: str | None, provider: str
) -> tuple[dict[str, Any], bool]:
    """The tuning config for ``speed`` and ``instructions`` on ``provider``'s engine, and
    whether the instructions were used (False when given but the engine ignores prompts)."""
    config: dict[str, Any] = {}
    if speed is not None and speed != 1.0:
        config["speed"] = float(speed)
    prompt = (instructions or "").strip()
    if not prompt:
        return config, True
    if provider in PROMPTED_PROVIDERS:
        config["voiceDescription"] = prompt
        return config, True
    return config, False


class InvalidParameter(InvalidInput):
    """A request field OpenAI's SDK would name in ``error.param``."""

    def __init__(self, message: str, param: str | None) -> None:
        self.param = param
        super().__init__(message)
