"""Start-up check: stored tunings that ``VoiceTuningConfig`` now rejects.

Configs stored before the model was strict (or written by hand into the database) are
never trusted: every read for synthesis repairs them (``tuning.repair_tuning``), and the
next write of the voice or entry (a voice PATCH, an entry's regenerate or ``PUT …/details``)
stores the repaired config. This check only *reports* them, once per start, so an operator
knows which voices and entries sound different from what was asked for.

Agents hold no tuning of their own (the contract's ``voiceSettings`` is only a ``voiceId``);
an agent is listed when its voice is a library voice with a rejected config.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import sqlalchemy as sa

from audiocache.cache.tuning import rejected_fields
from audiocache.storage.db import Database
from audiocache.storage.tables import agents, entries, voices

log = logging.getLogger("audiocache.tuning")
BATCH = 2000
SHOWN = 20  # ids listed in the log line; the counts are complete


@dataclass
class TuningAudit:
    voices: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    entries: list[int] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.voices or self.agents or self.entries)


def _rejected(raw: str | None) -> bool:
    try:
        config = json.loads(raw or "{}")
    except ValueError:
        return True
    return rejected_fields(config) != []


async def audit_stored_tuning(db: Database) -> TuningAudit:
    """Every stored config the model rejects, logged as one warning (nothing if none)."""
    audit = TuningAudit()
    async with db.read() as conn:
        rows = await conn.execute(sa.select(voices.c.id, voices.c.config_json))
        audit.voices = sorted(vid for vid, raw in rows if _rejected(raw))
        if audit.voices:
            # an agent names a voice of its own account; listed as account/agent id
            used = await conn.execute(
                sa.select(agents.c.account_id, agents.c.public_id)
                .join(voices, voices.c.id == agents.c.voice_id)
                .where(voices.c.account_id == agents.c.account_id)
                .where(agents.c.voice_id.in_(audit.voices))
            )
            audit.agents = sorted(f"{account}/{agent}" for account, agent in used)
    last = 0
    while True:
        # Batches by id, one short read each: a big table does not hold one long snapshot.
        # Most entries carry no tuning at all ('{}'); only the others are parsed.
        query = (
            sa.select(entries.c.id, entries.c.config_json)
            .where(entries.c.id > last, entries.c.config_json != "{}")
            .order_by(entries.c.id)
            .limit(BATCH)
        )
        async with db.read() as conn:
            batch = (await conn.execute(query)).all()
        if not batch:
            break
        audit.entries += [eid for eid, raw in batch if _rejected(raw)]
        last = batch[-1][0]
    if not audit.clean:
        log.warning(
            "stored tuning the model rejects (repaired when read, rewritten on the next write): "
            "%d voices %s, %d agents using them %s, %d entries %s",
            len(audit.voices),
            _ids(audit.voices),
            len(audit.agents),
            _ids(audit.agents),
            len(audit.entries),
            _ids(audit.entries),
        )
    return audit


def _ids(ids: list[str] | list[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:SHOWN])
    return f"[{shown}{', …' if len(ids) > SHOWN else ''}]"
