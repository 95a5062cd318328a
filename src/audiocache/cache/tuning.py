"""``VoiceTuningConfig``: the one model of voice tuning, checked at every door.

Every config that reaches an engine or a cache key passes through here: request bodies
(``/tts``, ``…/synthesize``, ``…/warm``, ``PUT …/details``), the voice library (register,
patch), and the CLI's warm-up lines. Numbers are finite and bounded, strings are bounded,
types are strict (``"fast"`` is not a number, ``true`` is not 1), so no engine ever sees a
value it could overflow on.

The bounds are the union of what the engines accept: each engine still refuses (400) or
clamps a value outside its own narrower range, but nothing inside these bounds can crash one.

Stored configs written before these rules (or by hand) are *repaired when read*: the fields
the model rejects are dropped, the rest is used, and a warning names them once per process
(``repair_tuning``). The next write of that voice or entry stores the repaired config.
``audit_stored_tuning`` (run at start-up) lists what is stored that the model rejects.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from audiocache.errors import InvalidSettings

log = logging.getLogger("audiocache.tuning")

MIN_SPEED, MAX_SPEED = 0.25, 4.0  # espeak-ng, Piper and OpenAI accept 0.25-4x; others less
MAX_VOLUME = 10.0  # 1.0 = normal; Google goes to +16 dB (6.3x), the rest clamp at 2
MAX_MODEL_ID = 200  # the entries' model column is 200 characters
MAX_NAME = 64  # engine, emotion, version: short identifiers
MAX_DESCRIPTION = 4096  # OpenAI's instructions limit
MAX_EXTRA_FIELDS = 32
MAX_EXTRA_NAME = 64
MAX_EXTRA_TEXT = 1000
MAX_EXTRA_NUMBER = 1e9


# strict: an int is a number, a bool or a numeric string is not; finite only (JSON's 1e999
# parses as inf), and bounded so that no engine multiplies a value into an overflow.
Unit = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1.0)]
Speed = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=MIN_SPEED, le=MAX_SPEED)]
Volume = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=MAX_VOLUME)]
ModelId = Annotated[StrictStr, Field(max_length=MAX_MODEL_ID)]
Name = Annotated[StrictStr, Field(max_length=MAX_NAME)]
Description = Annotated[StrictStr, Field(max_length=MAX_DESCRIPTION)]


def _extra_value(value: Any) -> Any:
    """A provider-specific field the contract does not name: kept, but only as a scalar."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > MAX_EXTRA_TEXT:
            raise ValueError(f"must be at most {MAX_EXTRA_TEXT} characters")
        return value
    if isinstance(value, int | float):
        if abs(value) > MAX_EXTRA_NUMBER or not math.isfinite(value):
            raise ValueError(f"must be a finite number within ±{MAX_EXTRA_NUMBER:g}")
        return value
    raise ValueError("must be a string, a number, a boolean or null")


_ExtraValue = Annotated[
    Any,
    AfterValidator(_extra_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": MAX_EXTRA_TEXT},
                {"type": "number", "minimum": -MAX_EXTRA_NUMBER, "maximum": MAX_EXTRA_NUMBER},
                {"type": "boolean"},
                {"type": "null"},
            ]
        }
    ),
]


class VoiceTuningConfig(BaseModel):
    """Provider-specific voice tuning settings. All fields are optional - each TTS provider
    uses a different subset. Other fields are kept as given (the contract allows them), as
    long as they are scalars."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, _ExtraValue] = Field(init=False)

    stability: Unit | None = Field(
        None, description="Voice consistency between regenerations (ElevenLabs), 0-1"
    )
    similarityBoost: Unit | None = Field(
        None, description="How closely the output matches the original voice (ElevenLabs), 0-1"
    )
    speed: Speed | None = Field(
        None, description=f"Speed multiplier, 1.0 is normal ({MIN_SPEED}-{MAX_SPEED})"
    )
    modelId: ModelId | None = Field(None, description="TTS model id of the provider")
    engine: Name | None = Field(None, description="TTS engine identifier")
    emotion: Name | None = Field(None, description="Emotion preset (Cartesia)")
    volume: Volume | None = Field(
        None, description=f"Output volume, 1.0 is normal (0-{MAX_VOLUME:g})"
    )
    version: Name | None = Field(None, description="Model version")
    voiceDescription: Description | None = Field(
        None, description="Natural language voice description (Hume, OpenAI, Google)"
    )
    instantMode: StrictBool | None = Field(None, description="Lower latency mode (Hume)")

    @model_validator(mode="after")
    def _bounded_extras(self) -> VoiceTuningConfig:
        extra = self.__pydantic_extra__ or {}
        if len(extra) > MAX_EXTRA_FIELDS:
            raise ValueError(f"at most {MAX_EXTRA_FIELDS} fields beyond the contract's")
        for name in extra:
            if not name or len(name) > MAX_EXTRA_NAME:
                raise ValueError(f"field names must be 1-{MAX_EXTRA_NAME} characters")
        return self

    def as_config(self) -> dict[str, Any]:
        """The config as engines and cache keys take it: unset fields left out."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


def validate_tuning(config: object, *, where: str = "config") -> dict[str, Any]:
    """``config`` checked against the model: the clean dict, or ``InvalidSettings`` whose
    message names the offending field (``config.volume: ...``)."""
    if config is None:
        return {}
    try:
        return VoiceTuningConfig.model_validate(config).as_config()
    except ValidationError as exc:
        raise InvalidSettings(describe(exc, where)) from exc


def describe(exc: ValidationError, where: str = "config") -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join([where, *(str(p) for p in error.get("loc", ()))])
        message = "must be a JSON object" if error["type"] == "model_type" else error["msg"]
        message = message.removeprefix("Value error, ")
        parts.append(f"{location}: {message}")
    return "Invalid tuning - " + "; ".join(parts)


def rejected_fields(config: object) -> list[str] | None:
    """The fields of a stored config the model rejects ([] if none); None if the config
    as a whole is unusable (not an object, too many fields)."""
    if not isinstance(config, Mapping):
        return None
    try:
        VoiceTuningConfig.model_validate(config)
    except ValidationError as exc:
        fields = sorted({str(e["loc"][0]) for e in exc.errors() if e.get("loc")})
        return fields if fields else None
    return []


_warned: set[str] = set()


def repair_tuning(config: object, *, owner: str = "") -> dict[str, Any]:
    """A stored config made usable: the fields the model rejects are dropped (the engine's
    default applies instead), the rest kept. Logged once per owner and process; the next
    write of the owner stores the repaired config."""
    bad = rejected_fields(config)
    if bad == []:
        return VoiceTuningConfig.model_validate(config).as_config()
    kept: dict[str, Any] = {}
    if isinstance(config, Mapping):
        kept = {str(k): v for k, v in config.items() if k not in (bad or ())}
        if rejected_fields(kept) != []:  # e.g. too many extras: keep the contract's fields
            kept = {k: v for k, v in kept.items() if k in VoiceTuningConfig.model_fields}
        if rejected_fields(kept) != []:
            kept = {}
    if owner and owner not in _warned and len(_warned) < 10_000:
        _warned.add(owner)
        log.warning(
            "stored tuning of %s is invalid (%s); using it without those fields",
            owner,
            ", ".join(bad) if bad else "not a usable object",
        )
    return VoiceTuningConfig.model_validate(kept).as_config()
