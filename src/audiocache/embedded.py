"""The cache inside the caller's own process: a lookup without HTTP.

A voice stack written in Python on the same host as the data (the same SQLite file and
blob folder, or the same PostgreSQL and bucket as the servers) can ask for a cached phrase
directly::

    async with EmbeddedCache(Settings()) as cache:
        audio = await cache.lookup("acme", "front-desk", "Thanks for calling.")

``lookup`` answers what the runtime path would answer for a hit (the stored WAV bytes) and
counts it the same way (hit count, lookup stats); a phrase not cached is None (nothing is
synthesized: that stays the servers' job). It trusts its caller: there is no API key. Like
the hot path it keeps its answers in a memo (``cache/memo.py``) while the database's
generation is unchanged, so a delete or replace made by any server is seen at the next call.
"""

from __future__ import annotations

from types import TracebackType

from audiocache.cache.memo import HotMemo
from audiocache.config import Settings
from audiocache.models import Agent, Entry
from audiocache.services import Services, build_services


class EmbeddedCache:
    def __init__(self, settings: Settings, services: Services | None = None) -> None:
        self.services = services or build_services(settings)
        self._owns = services is None
        self.memo = HotMemo(
            self.services.db.generation, settings.hot_memo_entries, settings.hot_memo_bytes
        )

    async def __aenter__(self) -> EmbeddedCache:
        if self._owns:
            await self.services.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._owns:
            await self.services.stop()

    async def lookup(
        self,
        account_id: str,
        agent_id: str,
        text: str,
        *,
        voice: str | None = None,
        language: str | None = None,
    ) -> bytes | None:
        """The stored audio of this phrase (as the runtime path's hit sends it), or None."""
        services = self.services
        generation = await self.memo.begin()
        memo_key = (account_id, agent_id, text, voice, language)
        if generation is not None:
            known: tuple[Agent, Entry, bytes] | None = self.memo.get(memo_key)
            if known is not None:
                agent, entry, data = known
                if await services.blobs.stat(entry.blob_sha256) is not None:
                    self._count(agent, entry.provider, text, entry)
                    return data
                self.memo.drop(memo_key)
        agent = await services.agents.owned(account_id, agent_id)
        prepared = await services.cache.prepare(agent, text, voice=voice, language=language)
        found = await services.entries.find_by_key(agent.id, prepared.key)
        stored = await services.blobs.read(found.blob_sha256) if found is not None else None
        if found is None or stored is None:
            self._count(agent, prepared.engine.provider, text, None)
            return None
        self._count(agent, found.provider, text, found)
        if generation is not None and len(stored) <= self.memo.blobs.max_blob:
            self.memo.put(memo_key, (agent, found, stored), generation)
        return stored

    def _count(self, agent: Agent, provider: str, text: str, entry: Entry | None) -> None:
        if entry is not None:
            self.services.hits.add(entry.id)
        self.services.cache.accounting.lookup(agent, provider, len(text), entry is not None)
