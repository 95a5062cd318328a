"""The list's transcript order: by the whole transcript, byte-wise, ties by id — read from
the index ``(agent_id, transcript_sort, id)`` of the transcripts' first 256 characters.

Byte order (PostgreSQL ``COLLATE "C"``, SQLite's BINARY: code point order for UTF-8) makes
the prefix safe to sort by: two transcripts whose prefixes differ compare as the prefixes
do. Only rows sharing a prefix (the same text, or long texts with the same first 256
characters) need the whole transcript, so the order is ``(transcript_sort, transcript,
id)`` and the database sorts only within each run of equal prefixes.

A deep page must still skip its offset in the index alone. The index is ordered by
``(transcript_sort, id)``, which groups rows by prefix exactly as the true order does (the
groups come in the same order; only inside a group may the rows differ in order). So:

1. the *anchor* is the row at the page's offset in index order (skipped index-only);
2. the true page starts in the anchor's group: the rows of that group before the anchor in
   index order, ``before``, are exactly the rows of that group before the page in the true
   order too (both orders put the same number of rows of earlier groups first);
3. the page is the rows from the anchor's prefix on, in the true order, skipping ``before``
   (a handful: those of one group), and the first ``limit`` of them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from audiocache.storage.tables import entries, transcript_sort_key


def whole_transcript(dialect: str) -> sa.ColumnElement[Any]:
    """The transcript compared byte-wise, whatever the database's default collation."""
    if dialect == "postgresql":
        return sa.collate(entries.c.transcript, "C")
    return entries.c.transcript  # SQLite's default collation is BINARY


def transcript_order(descending: bool, dialect: str) -> list[sa.ColumnElement[Any]]:
    """ORDER BY terms of ``sort=transcript`` (the id tiebreak is the caller's)."""
    keys = [transcript_sort_key, whole_transcript(dialect)]
    return [k.desc() if descending else k.asc() for k in keys]


def anchored_page_ids(
    condition: sa.ColumnElement[bool], descending: bool, dialect: str
) -> sa.Select[Any]:
    """The page's ids in the transcript order, the offset skipped in the index alone; for
    a query whose only sort key is the transcript and whose rows the agent's index finds
    (a search's matches are few and sorted whole instead)."""
    key, row_id = transcript_sort_key, entries.c.id

    def direction(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return column.desc() if descending else column.asc()

    anchor = (
        sa.select(key.label("sort_key"), row_id.label("id"))
        .where(condition)
        .order_by(direction(key), direction(row_id))
        .limit(1)
        .offset(sa.bindparam("offset", type_=sa.Integer))
        .cte("anchor")
        .prefix_with("MATERIALIZED")  # computed once, read three times
    )
    anchor_key = sa.select(anchor.c.sort_key).scalar_subquery()
    anchor_id = sa.select(anchor.c.id).scalar_subquery()
    earlier = row_id > anchor_id if descending else row_id < anchor_id
    before = (
        sa.select(sa.func.count())
        .select_from(entries)
        .where(condition, key == anchor_key, earlier)
        .scalar_subquery()
    )
    from_anchor = key <= anchor_key if descending else key >= anchor_key
    return (
        sa.select(row_id)
        .where(condition, from_anchor)
        .order_by(*transcript_order(descending, dialect), direction(row_id))
        .limit(sa.bindparam("limit", type_=sa.Integer))
        .offset(before)
    )
