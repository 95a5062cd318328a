"""The mapping of a takes upload: which file is which transcript (pure).

CSV with a header row naming ``file`` and ``transcript`` (``filename`` and ``text`` are
taken too) and optionally ``voice`` and ``language``; or JSON, either an object
``{"hello.wav": "Hello there", …}`` or a list of objects with those keys.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from audiocache.errors import InvalidMapping

_FILE = ("file", "filename", "path")
_TEXT = ("transcript", "text")
MAPPING_SUFFIXES = (".csv", ".json")


@dataclass(frozen=True)
class TakeRow:
    line: int  # where it is in the mapping (CSV line, or JSON item from 1)
    file: str
    transcript: str
    voice: str | None = None
    language: str | None = None


def parse_mapping(name: str, raw: bytes) -> list[TakeRow]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidMapping(f"{name} is not UTF-8 text") from exc
    rows = _json(name, text) if name.lower().endswith(".json") else _csv(name, text)
    if not rows:
        raise InvalidMapping(f"{name} maps no file to a transcript")
    return rows


def _pick(item: dict[str, Any], keys: tuple[str, ...]) -> Any:
    lowered = {str(k).strip().lower(): v for k, v in item.items()}
    return next((lowered[k] for k in keys if lowered.get(k) not in (None, "")), None)


def _row(name: str, line: int, item: dict[str, Any]) -> TakeRow:
    file, transcript = _pick(item, _FILE), _pick(item, _TEXT)
    if not isinstance(file, str) or not isinstance(transcript, str):
        raise InvalidMapping(f"{name} line {line}: needs a file and a transcript (text)")
    voice, language = _pick(item, ("voice",)), _pick(item, ("language", "language_code"))
    for field_name, value in (("voice", voice), ("language", language)):
        if value is not None and not isinstance(value, str):
            raise InvalidMapping(f"{name} line {line}: {field_name} must be text")
    return TakeRow(line, file.strip(), transcript, voice, language)


def _csv(name: str, text: str) -> list[TakeRow]:
    try:
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip().lower() for h in reader.fieldnames or []]
        if not any(h in _FILE for h in header) or not any(h in _TEXT for h in header):
            raise InvalidMapping(
                f"{name}: the first line must name the columns, e.g. file,transcript"
            )
        return [_row(name, reader.line_num, dict(item)) for item in reader if any(item.values())]
    except csv.Error as exc:
        raise InvalidMapping(f"{name}: not valid CSV ({exc})") from exc


def _json(name: str, text: str) -> list[TakeRow]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidMapping(f"{name}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    if isinstance(data, dict):
        items: list[Any] = [{"file": k, "transcript": v} for k, v in data.items()]
    elif isinstance(data, list):
        items = data
    else:
        raise InvalidMapping(f"{name}: expected an object or a list of objects")
    rows = []
    for index, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise InvalidMapping(f"{name} item {index}: expected an object")
        rows.append(_row(name, index, item))
    return rows
