"""``transcript contains`` through SQLite's FTS5 trigram index returns exactly what the LIKE
scan returns — case, %, _, backslashes, quotes, non-ASCII letters whose case SQLite's
lower() does not fold (but FTS5 does), texts shorter than a trigram — and both match the
semantics the list always had: ASCII case folded, everything else taken literally."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiocache.storage.db import Database, utcnow
from audiocache.storage.entries_repo import contains_sql
from audiocache.storage.tables import agents, entries

# Letters that fold differently (Kelvin sign, dotted I, long s, sharp s), LIKE's own
# wildcards and escape, FTS5's quote, spaces, an emoji.
ALPHABET = "aAbBkK%_\\\" 'éÉßİ\u212a\u017f🙂"
texts = st.text(alphabet=ALPHABET, max_size=14) | st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=10,
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    path = Path(tmp_path_factory.mktemp("search")) / "search.db"

    async def migrate() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await db.migrate()
        finally:
            await db.close()

    asyncio.run(migrate())
    engine = sa.create_engine(f"sqlite:///{path}")
    now = utcnow()
    with engine.begin() as conn:
        for agent in ("a", "other"):
            conn.execute(
                agents.insert().values(
                    id=agent,
                    account_id="acct",
                    public_id=agent,
                    name=agent,
                    created_at=now,
                    updated_at=now,
                )
            )
    yield engine
    engine.dispose()


def _ascii_lower(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def _ids(conn: sa.Connection, condition: sa.ColumnElement[bool]) -> set[int]:
    query = sa.select(entries.c.id).where(entries.c.agent_id == "a", condition)
    return set(conn.execute(query).scalars())


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), transcripts=st.lists(texts, min_size=1, max_size=8))
def test_trigram_search_equals_the_like_scan(
    engine: sa.Engine, data: st.DataObject, transcripts: list[str]
) -> None:
    source = data.draw(st.sampled_from(transcripts))
    start = data.draw(st.integers(0, len(source)))
    needle = data.draw(
        st.just(source[start : start + data.draw(st.integers(1, 6))]).filter(bool)
        | st.text(alphabet=ALPHABET, min_size=1, max_size=5)
    )
    with engine.begin() as conn:
        conn.execute(entries.delete())
        rows = [
            {
                "agent_id": agent,
                "cache_key": f"{agent}{n}",
                "transcript": text,
                "provider": "fake",
                "provider_voice_id": "v",
                "blob_sha256": "0" * 64,
                "size_bytes": 1,
                "duration": 0.1,
                "cached_at": utcnow(),
            }
            for agent in ("a", "other")
            for n, text in enumerate(transcripts)
        ]
        conn.execute(entries.insert(), rows)
        # an edited transcript (the update trigger) must be searched by its new text
        conn.execute(
            entries.update()
            .where(entries.c.cache_key == "a0")
            .values(transcript=transcripts[0][::-1])
        )
        stored = dict(
            conn.execute(
                sa.select(entries.c.id, entries.c.transcript).where(entries.c.agent_id == "a")
            ).all()
        )
        searched = _ids(conn, contains_sql(needle, "sqlite"))
        scanned = _ids(conn, contains_sql(needle, "postgresql"))  # the plain LIKE
    expected = {i for i, t in stored.items() if _ascii_lower(needle) in _ascii_lower(t)}
    assert searched == scanned == expected, (needle, stored)
