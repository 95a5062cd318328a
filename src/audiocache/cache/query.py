"""Parse the list endpoint's ``sort`` and ``filter`` expressions (pure, no I/O).

sort:   ``field:asc|desc`` joined by commas, e.g. ``hit_count:desc,id:asc`` or ``voice:asc``.
filter: ``field:op:value`` clauses joined by `` and `` or repeated parameters, e.g.
        ``transcript:contains:thank you``, ``provider:eq:espeak``, ``imported:eq:true``.
Anything unparseable raises; nothing falls back to a silent default.
"""

from __future__ import annotations

from collections.abc import Iterable

from audiocache.errors import InvalidFilter, InvalidId, InvalidInput, InvalidSort
from audiocache.models import EntryQuery, FilterClause, SortKey

MAX_LIMIT = 200

# Accepted names (snake and camel case) → canonical field.
SORT_FIELDS = {
    "id": "id",
    "hit_count": "hit_count",
    "hitcount": "hit_count",
    "cached_at": "cached_at",
    "cachedat": "cached_at",
    "duration": "duration",
    "transcript": "transcript",
    "provider": "provider",
    "language_code": "language_code",
    "languagecode": "language_code",
    "last_hit_at": "last_hit_at",
    "lasthitat": "last_hit_at",
    "size": "size_bytes",
    "voice": "provider_voice_id",
}

TEXT_FILTERS = {
    "transcript": ("contains", "eq"),
    "provider": ("eq",),
    "voice": ("eq",),
    "provider_voice_id": ("eq",),
    "providervoiceid": ("eq",),
    "language": ("eq",),
    "language_code": ("eq",),
    "languagecode": ("eq",),
}
BOOL_FILTERS = ("imported", "regenerated", "pinned")
_FILTER_ALIASES = {
    "voice": "provider_voice_id",
    "providervoiceid": "provider_voice_id",
    "language": "language_code",
    "languagecode": "language_code",
}
MAX_FILTER_CLAUSES = 10


def parse_sort(expression: str | None) -> tuple[SortKey, ...]:
    if expression is None:
        return EntryQuery().sort
    keys: list[SortKey] = []
    for part in expression.split(","):
        name, sep, direction = part.strip().partition(":")
        canonical = SORT_FIELDS.get(name.strip().lower())
        if canonical is None:
            raise InvalidSort(
                f"Cannot sort by {name.strip()!r}; use one of: {', '.join(_sort_field_names())}"
            )
        direction = direction.strip().lower() if sep else "asc"
        if direction not in ("asc", "desc"):
            raise InvalidSort(f"Sort direction must be 'asc' or 'desc', not {direction!r}")
        keys.append(SortKey(canonical, direction == "desc"))
    return tuple(keys)


def parse_filters(expressions: Iterable[str]) -> tuple[FilterClause, ...]:
    clauses: list[FilterClause] = []
    for expression in expressions:
        for raw in expression.split(" and "):
            if raw.strip():
                clauses.append(_parse_clause(raw.strip()))
    if len(clauses) > MAX_FILTER_CLAUSES:
        raise InvalidFilter(f"At most {MAX_FILTER_CLAUSES} filter clauses are allowed")
    return tuple(clauses)


def _parse_clause(raw: str) -> FilterClause:
    parts = raw.split(":", 2)
    if len(parts) != 3:
        raise InvalidFilter(f"Filter {raw!r} must have the form field:op:value")
    name, op, value = parts[0].strip().lower(), parts[1].strip().lower(), parts[2]
    if name in BOOL_FILTERS:
        if op != "eq" or value.strip().lower() not in ("true", "false"):
            raise InvalidFilter(f"Filter on {name!r} must be {name}:eq:true or {name}:eq:false")
        return FilterClause(name, "eq", value.strip().lower() == "true")
    ops = TEXT_FILTERS.get(name)
    if ops is None:
        fields = sorted({*TEXT_FILTERS, *BOOL_FILTERS})
        raise InvalidFilter(f"Cannot filter by {name!r}; use one of: {', '.join(fields)}")
    if op not in ops:
        raise InvalidFilter(f"Filter on {name!r} supports {', '.join(ops)}, not {op!r}")
    if not value:
        raise InvalidFilter(f"Filter {raw!r} has an empty value")
    if "\x00" in value:  # SQLite's LIKE stops at NUL (so it matched everything); PG refuses it
        raise InvalidFilter(f"Filter {raw!r} contains a NUL character")
    return FilterClause(_FILTER_ALIASES.get(name, name), op, value)


def parse_page(limit: str | int | None, offset: str | int | None) -> tuple[int, int]:
    parsed_limit = _parse_int("limit", limit, default=50)
    parsed_offset = _parse_int("offset", offset, default=0)
    if not 1 <= parsed_limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    if parsed_offset < 0:
        raise InvalidInput("offset must be 0 or more")
    return parsed_limit, parsed_offset


def _parse_int(name: str, value: str | int | None, *, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, int):
        return value
    text = value.strip()
    if not text or not text.lstrip("-").isdigit() or len(text) > 12:
        raise InvalidInput(f"{name} must be an integer")
    return int(text)


def _sort_field_names() -> list[str]:
    return sorted({v for v in SORT_FIELDS.values()})


MAX_ENTRY_ID = 2**63 - 1


def parse_entry_id(value: str) -> int:
    """Entry ids are numeric strings; anything else is the contract's 400 "Invalid ID"."""
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > MAX_ENTRY_ID:
        raise InvalidId(f"Invalid ID: {value[:40]!r} is not a numeric entry ID")
    return int(text)
