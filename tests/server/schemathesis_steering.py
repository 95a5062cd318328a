"""Steering schemathesis' generation towards the live world's real data.

The reference's path parameters are free strings, and random strings only ever reach the 404
branch: so a good share of the generated requests name the real ids of ``Live.world``, and
operations whose generated bodies almost never mean anything get meaningful ones as well.
(The steering turns some negative-mode bodies into valid ones, which is why the
``negative_data_rejection`` check is not used: it would read those as accepted bad input.)

Importing this module registers generators for the ``audio/wav`` and ``application/x-tar``
media types with schemathesis.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import TestPhase
from schemathesis_world import (
    ACCOUNT,
    AGENT,
    IN_CI,
    OTHER_ACCOUNT,
    OTHER_AGENT,
    PENDING_KEY,
    VOICE,
    Live,
)
from support import sine_wav, tar_of

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "60" if IN_CI else "8"))
WAV = sine_wav(seconds=0.2)


# What a case's path parameters become: left as generated; acme's real agent and entry (200s,
# real bodies to validate); another account's agent and entry (must be 404); or acme's agent
# with an entry id that is gone or belongs to the other account (404 too).
PATH_TARGETS = ("generated", "generated", "real", "real", "real", "real", "foreign", "stale")


def steer_path(params: dict[str, Any], target: str, index: int) -> dict[str, Any]:
    world = Live.world
    if world is None or target == "generated":
        return params
    if target == "foreign":
        agent, entries, account = OTHER_AGENT, world.other_entry_ids, OTHER_ACCOUNT
    elif target == "stale":
        agent, entries, account = AGENT, world.gone_entry_ids + world.other_entry_ids, ACCOUNT
    else:  # mostly bot, which has entries; now and then an agent a generated request created
        agent = AGENT if index % 3 else world.agents[index % len(world.agents)]
        entries, account = world.entry_ids, ACCOUNT
    out = dict(params)
    if "accountId" in out:
        out["accountId"] = account
    if "agentId" in out:
        out["agentId"] = agent
    if "entryId" in out and entries:
        out["entryId"] = entries[index % len(entries)]
    if "voiceId" in out and world.voice_ids and target == "real":
        out["voiceId"] = world.voice_ids[index % len(world.voice_ids)]
    if "token" in out and world.sample_tokens and target == "real":
        out["token"] = world.sample_tokens[index % len(world.sample_tokens)]
    return out


def _patched(data: bytes, at: int, patch: bytes) -> bytes:
    return data[:at] + patch + data[at + len(patch) :]


# `audio/wav` bodies (PATCH …/file, the `file` part of PUT …/details): schemathesis has no
# generator for that media type. Valid WAVs of several shapes, and the ways uploads go wrong:
# random bytes, a cut-off file, a header with garbage in its fields, data after the header.
WAV_BODIES = st.one_of(
    st.just(WAV),
    st.builds(
        sine_wav,
        seconds=st.floats(min_value=0.0, max_value=0.3),
        rate=st.sampled_from([8000, 16000, 22050, 44100]),
    ),
    st.binary(max_size=128),
    st.builds(lambda cut: WAV[:cut], st.integers(0, 80)),
    st.builds(_patched, st.just(WAV), st.integers(0, 43), st.binary(min_size=1, max_size=4)),
    st.builds(lambda junk: WAV[:44] + junk, st.binary(max_size=64)),
)
schemathesis.openapi.media_type("audio/wav", WAV_BODIES)


# Text that passes validation (no control characters, not blank), short so espeak is quick.
SPEAKABLE = st.text(st.characters(categories=["L", "N", "P", "Zs"]), max_size=50).map(
    lambda text: f"Say {text}"
)


def _export_of(transcript: str) -> bytes:
    sha = hashlib.sha256(WAV).hexdigest()
    entry = {"transcript": transcript, "provider": "espeak", "voice": "en-us", "language": "en"}
    entry |= {"file": f"audio/{sha}.wav", "sha256": sha, "sizeBytes": len(WAV)}
    manifest = {"format": "audiocache-export", "version": 1, "agent": {"agentId": "a"}}
    manifest["entries"] = [entry]
    return tar_of({f"audio/{sha}.wav": WAV, "manifest.json": json.dumps(manifest).encode()})


# `application/x-tar` bodies (import, bulk takes): archives that import, takes with their
# mapping, and the ways an archive goes wrong: random bytes, cut off, tampered.
TAR_BODIES = st.one_of(
    st.builds(_export_of, SPEAKABLE),
    st.builds(
        lambda text: tar_of({"a.wav": WAV, "m.csv": f"file,transcript\na.wav,{text}\n".encode()}),
        SPEAKABLE.filter(lambda t: "," not in t and '"' not in t),
    ),
    st.binary(max_size=256),
    st.builds(lambda cut: _export_of("Cut")[:cut], st.integers(0, 4000)),
    st.builds(
        _patched,
        st.builds(_export_of, st.just("Hi")),
        st.integers(0, 3000),
        st.binary(min_size=1, max_size=4),
    ),
)
schemathesis.openapi.media_type("application/x-tar", TAR_BODIES)


# Short texts keep espeak quick; voices and languages it has, and ones it lacks.
TUNING = st.fixed_dictionaries(
    {}, optional={"speed": st.floats(0.5, 2.0), "volume": st.floats(0.0, 2.0)}
)
LANGUAGES = st.sampled_from(["en-US", "en-GB", "de-DE", "xx"])
SPEAK_BODIES = st.fixed_dictionaries(
    {"text": SPEAKABLE},
    optional={
        "voice": st.sampled_from([VOICE, "en-gb", "de", "no-such-voice"]),
        "language": LANGUAGES,
        "config": TUNING,
    },
)
SYNTHESIZE_BODIES = st.fixed_dictionaries(
    {"text": SPEAKABLE, "config": TUNING}, optional={"language": LANGUAGES}
)


def steer_body(method: str, path: str, body: Any) -> st.SearchStrategy[Any]:
    """Also meaningful bodies, for operations whose generated bodies almost never are."""
    generated = st.just(body)
    world = Live.world
    if world is None:
        return generated
    if path.endswith("/bulk-delete"):
        some_ids = st.lists(
            st.one_of(
                st.sampled_from(world.entry_ids),
                st.sampled_from(world.other_entry_ids),
                st.text(max_size=12),
            ),
            min_size=1,
            max_size=20,
        )
        return st.one_of(generated, st.builds(lambda ids: {"ids": ids}, some_ids))
    if path.endswith("/details"):
        settings = st.builds(
            lambda text, speed: json.dumps({"text": text, "config": {"speed": speed}}),
            SPEAKABLE,
            st.floats(min_value=0.5, max_value=2.0),
        )
        valid = st.builds(lambda f, s: {"file": f, "settings": s}, WAV_BODIES, settings)
        return st.one_of(generated, valid)
    if path.endswith("/synthesize"):
        return st.one_of(generated, SYNTHESIZE_BODIES)
    if path.endswith("/tts"):
        return st.one_of(generated, SPEAK_BODIES)
    if path.endswith("/warm"):
        phrases = st.lists(SPEAK_BODIES, min_size=1, max_size=3)
        warm = st.fixed_dictionaries({"phrases": phrases}, optional={"pin": st.booleans()})
        return st.one_of(generated, warm)
    if method == "POST" and path.endswith("/voice-library"):
        voice = st.fixed_dictionaries(
            {
                "name": SPEAKABLE,
                "provider": st.just("espeak"),
                "providerVoiceId": st.sampled_from([VOICE, "en-gb", "de", "no-such-voice"]),
                "config": st.just({}),
            },
            optional={"voiceMetadata": st.just({"language": "en-US", "gender": "female"})},
        )
        return st.one_of(generated, voice)
    if method == "PUT" and path.endswith("/cache-policy"):
        policies = [
            {"admission": "always"},
            {"admission": "never"},
            {"admission": "default"},
            {"admission": "min_hits", "minHits": 2, "windowSeconds": 60},
        ]
        return st.one_of(generated, st.sampled_from(policies))
    return generated


SORTS = ("hit_count:desc", "cached_at:asc", "duration:desc", "transcript:asc", "id:desc,size:asc")
FILTERS = ("transcript:contains:hello", "provider:eq:espeak", "voice:eq:en-us", "imported:eq:false")


def steer_query(path: str, query: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The entry list with a valid page, sort and filter, as well as whatever was generated."""
    generated = st.just(query)
    if not path.endswith("/audio-cache"):
        return generated
    valid = st.fixed_dictionaries(
        {},
        optional={
            "limit": st.integers(1, 200),
            "offset": st.integers(0, 10),
            "sort": st.sampled_from(SORTS),
            "filter": st.lists(st.sampled_from(FILTERS), min_size=1, max_size=2),
        },
    )
    return st.one_of(generated, valid)


class ApiKey:
    """The acme key, as explicit auth (so ``ignored_auth`` probes without it and with a bad one)."""

    def get(self, case: Any, context: Any) -> str:
        return Live.world.key if Live.world is not None else PENDING_KEY

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "X-API-KEY": data}


def prepare(schema: Any) -> Any:
    schema.config.generation.update(max_examples=MAX_EXAMPLES, database="none")
    schema.auth()(ApiKey)

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        if not path_parameters:
            return st.just(path_parameters)
        picks = st.tuples(st.sampled_from(PATH_TARGETS), st.integers(0, 10_000))
        return picks.map(lambda pick: steer_path(path_parameters, *pick))

    @schema.hook
    def flatmap_query(context: Any, query: dict[str, Any]) -> Any:
        return steer_query(context.operation.path, query)

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> Any:
        operation = context.operation
        return steer_body(operation.method.upper(), operation.path, body)

    return schema


_explicit_picks = itertools.count()


def steer_explicit_case(case: Any) -> None:
    """Coverage and example cases are built at collection, before any data exists: steer here.

    Round-robin over the same targets as the fuzzed cases; a path made invalid on purpose
    (negative coverage) is left alone.
    """
    meta = case.meta
    if not case.path_parameters or meta is None or meta.phase.name == TestPhase.FUZZING:
        return
    if meta.is_negative_at(ParameterLocation.PATH):
        return
    index = next(_explicit_picks)
    target = PATH_TARGETS[index % len(PATH_TARGETS)]
    case.path_parameters = steer_path(case.path_parameters, target, index // len(PATH_TARGETS))
