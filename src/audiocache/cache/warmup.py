"""Warm-up: synthesize and pin a list of phrases ahead of the calls that need them.

The input is one phrase a line, or a JSON object a line (``{"text", "voice", "language",
"config"}``); blank lines and ``#`` comments are skipped. Running it again is the resume:
phrases already cached are hits, so only what is left is synthesized.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from audiocache.cache.service import CacheService
from audiocache.cache.tuning import validate_tuning
from audiocache.errors import AudioCacheError, InvalidSettings
from audiocache.models import Agent


@dataclass(frozen=True)
class Phrase:
    line: int
    text: str
    voice: str | None = None
    language: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class WarmReport:
    synthesized: int = 0
    already_cached: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)


def parse_phrases(lines: Iterable[str]) -> tuple[list[Phrase], list[tuple[int, str]]]:
    """Phrases, and (line number, reason) for every line that cannot be one."""
    phrases: list[Phrase] = []
    problems: list[tuple[int, str]] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("{"):
            phrases.append(Phrase(number, line))
            continue
        try:
            data = json.loads(line)
            text = data["text"]
            if not isinstance(text, str):
                raise TypeError("text must be a string")
            config = validate_tuning(data.get("config"))
            phrases.append(Phrase(number, text, data.get("voice"), data.get("language"), config))
        except InvalidSettings as exc:
            problems.append((number, exc.message))
        except (ValueError, KeyError, TypeError) as exc:
            problems.append((number, f"not a phrase: {exc}"))
    return phrases, problems


async def warm_up(
    cache: CacheService,
    agent: Agent,
    phrases: list[Phrase],
    *,
    concurrency: int = 4,
    on_done: Callable[[Phrase, bool | None], None] | None = None,
) -> WarmReport:
    """Warm every phrase with at most ``concurrency`` syntheses at once.

    ``on_done(phrase, created)`` is called per phrase: True synthesized, False already
    cached, None failed."""
    report = WarmReport()
    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(phrase: Phrase) -> None:
        async with limit:
            try:
                _entry, created = await cache.warm(
                    agent,
                    phrase.text,
                    voice=phrase.voice,
                    language=phrase.language,
                    config=phrase.config,
                )
            except AudioCacheError as exc:
                report.failed.append((phrase.line, exc.message))
                result = None
            else:
                if created:
                    report.synthesized += 1
                else:
                    report.already_cached += 1
                result = created
        if on_done is not None:
            on_done(phrase, result)

    await asyncio.gather(*(one(p) for p in phrases))
    report.failed.sort()
    return report
