"""Sort, filter, page and id parsing: strict, never a silent default."""

from __future__ import annotations

import pytest

from audiocache.cache.query import parse_entry_id, parse_filters, parse_page, parse_sort
from audiocache.errors import InvalidFilter, InvalidId, InvalidInput, InvalidSort
from audiocache.models import FilterClause, SortKey


def test_sort() -> None:
    assert parse_sort("hit_count:desc") == (SortKey("hit_count", True),)
    assert parse_sort("hitCount:desc,id") == (SortKey("hit_count", True), SortKey("id", False))
    assert parse_sort(None)[0] == SortKey("cached_at", True)


@pytest.mark.parametrize("bad", ["", "nope", "id:sideways", "id:asc:extra", "hit_count:", ","])
def test_bad_sort(bad: str) -> None:
    with pytest.raises(InvalidSort):
        parse_sort(bad)


def test_filters() -> None:
    clauses = parse_filters(["transcript:contains:a:b and provider:eq:espeak", "imported:eq:TRUE"])
    assert clauses == (
        FilterClause("transcript", "contains", "a:b"),
        FilterClause("provider", "eq", "espeak"),
        FilterClause("imported", "eq", True),
    )
    assert parse_filters(["voice:eq:en-us"])[0].field == "provider_voice_id"


@pytest.mark.parametrize(
    "bad",
    ["x", "transcript:x", "nope:eq:1", "provider:contains:x", "imported:eq:maybe", "provider:eq:"],
)
def test_bad_filters(bad: str) -> None:
    with pytest.raises(InvalidFilter):
        parse_filters([bad])


def test_pages() -> None:
    assert parse_page(None, None) == (50, 0)
    assert parse_page("200", "7") == (200, 7)
    for limit, offset in [("0", "0"), ("201", "0"), ("1", "-1"), ("x", "0"), ("1" * 30, "0")]:
        with pytest.raises(InvalidInput):
            parse_page(limit, offset)


@pytest.mark.parametrize("bad", ["", "abc", "-1", "1.5", "١٢", "9" * 20, " ", "0x1"])
def test_entry_ids(bad: str) -> None:
    assert parse_entry_id("42") == 42
    with pytest.raises(InvalidId):
        parse_entry_id(bad)
