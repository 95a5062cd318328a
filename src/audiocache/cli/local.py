"""``Local``: a command's work on the data folder, through the services as the routes use
them, answered with the client's models (built from the API's own wire shapes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from audiocache.api.schemas import AgentResponse, AudioCacheEntry, VoiceTuningConfig
from audiocache.api.schemas import CachePolicy as WirePolicy
from audiocache.api.stats import AudioCacheStats
from audiocache.api.voice_schemas import VoiceResponse
from audiocache.audio.formats import parse_output_format
from audiocache.cache.query import parse_filters, parse_sort
from audiocache.cache.stats import agent_stats
from audiocache.cache.warmup import Phrase as WarmPhrase
from audiocache.cache.warmup import WarmReport, warm_up
from audiocache.cli.targets import OnChunk, take_row
from audiocache.client import (
    Agent,
    BulkDeleteResult,
    CachePolicy,
    Entry,
    EntryPage,
    Stats,
    Take,
    Voice,
)
from audiocache.models import Agent as DomainAgent
from audiocache.models import EntryQuery
from audiocache.services import Services


def _entry(entry: Any) -> Entry:
    return Entry.from_wire(AudioCacheEntry.of(entry).model_dump(mode="json"))


def _voice(voice: Any) -> Voice:
    return Voice.from_wire(VoiceResponse.of(voice).model_dump(mode="json"))


def _config(config: dict[str, Any] | None) -> dict[str, Any]:
    return VoiceTuningConfig.model_validate(config or {}).as_config()


class Local:
    """The data folder, through the services, as the routes use them. ``account`` picks
    the agent when several accounts use its id (else the id must be unique)."""

    def __init__(self, services: Services, account: str | None) -> None:
        self.services = services
        self.agent_account = account

    async def account(self, given: str | None) -> str:
        if not given:
            from audiocache.cli.common import CommandError

            raise CommandError("name the account (--account) when working on the data folder")
        return given

    async def _agent(self, agent_id: str) -> DomainAgent:
        return await self.services.agents.named(agent_id, self.agent_account)

    async def _domain_entry(self, agent_id: str, entry_id: str) -> Any:
        from audiocache.cache.query import parse_entry_id

        agent = await self._agent(agent_id)
        return await self.services.curation.get_entry(agent.id, parse_entry_id(entry_id))

    async def list_entries(
        self, agent: str, limit: int, offset: int, sort: str | None, filters: list[str]
    ) -> EntryPage:
        from audiocache.api.schemas import ListAudioCacheResponse

        query = EntryQuery(limit, offset, parse_sort(sort), parse_filters(filters))
        found, total = await self.services.curation.list_entries(
            (await self._agent(agent)).id, query
        )
        wire = ListAudioCacheResponse(
            entries=[AudioCacheEntry.of(e) for e in found], totalCount=total
        )
        return EntryPage.from_wire(wire.model_dump(mode="json"))

    async def download_to(
        self, agent: str, entry_id: str, path: Path, fmt: str | None, on_chunk: OnChunk
    ) -> int:
        entry = await self._domain_entry(agent, entry_id)
        audio = await self.services.variants.stored(
            entry.blob_sha256, entry.size_bytes, parse_output_format(fmt, None)
        )
        if audio.data is not None:
            return await _write_all(_one(audio.data), path, on_chunk)
        chunks = self.services.blobs.open_range(audio.sha256, 0, audio.size)
        return await _write_all(chunks, path, on_chunk)

    async def delete(self, agent: str, ids: list[str]) -> BulkDeleteResult:
        from audiocache.cache.query import parse_entry_id
        from audiocache.errors import InvalidId

        found = await self._agent(agent)
        numeric: dict[str, int] = {}
        for raw in ids:
            try:
                numeric[raw] = parse_entry_id(raw)
            except InvalidId:
                continue
        gone = set(await self.services.curation.delete_entries(found.id, sorted(numeric.values())))
        deleted = [raw for raw in dict.fromkeys(ids) if numeric.get(raw) in gone]
        return BulkDeleteResult(deleted, [raw for raw in dict.fromkeys(ids) if raw not in deleted])

    async def replace(
        self,
        agent: str,
        entry_id: str,
        wav: bytes,
        filename: str,
        text: str | None,
        config: dict[str, Any] | None,
    ) -> None:
        from audiocache.audio.wav import parse_wav

        parse_wav(wav)
        entry = await self._domain_entry(agent, entry_id)
        if text is None:
            await self.services.curation.replace_audio(entry, wav, filename)
        else:
            await self.services.curation.replace_details(
                entry, wav, filename, text, _config(config)
            )

    async def preview(
        self, agent: str, entry_id: str, text: str, config: dict[str, Any], language: str | None
    ) -> bytes:
        entry = await self._domain_entry(agent, entry_id)
        return await self.services.curation.preview(entry, text, _config(config), language)

    async def regenerate(self, agent: str, entry_id: str) -> Entry:
        entry = await self._domain_entry(agent, entry_id)
        return _entry(await self.services.curation.regenerate(entry))

    async def pin(self, agent: str, entry_id: str, pinned: bool) -> Entry:
        entry = await self._domain_entry(agent, entry_id)
        return _entry(await self.services.curation.set_pinned(entry, pinned))

    async def stats(self, agent: str, top: int) -> Stats:
        s = self.services
        stats = await agent_stats(
            s.stats,
            s.hits,
            await self._agent(agent),
            top=top,
            prices=s.settings.prices_usd_per_million_characters,
        )
        return Stats.from_wire(AudioCacheStats.of(stats).model_dump(mode="json"))

    async def _policy(self, agent: DomainAgent) -> CachePolicy:
        wire = WirePolicy.of(agent, await self.services.agents.usage(agent))
        return CachePolicy.from_wire(wire.model_dump(mode="json"))

    async def list_agents(self, account: str) -> list[tuple[Agent, CachePolicy]]:
        found = await self.services.agents.list_for_account(account)
        return [(_agent_of(a), await self._policy(a)) for a in found]

    async def create_agent(
        self, account: str, name: str, agent_id: str | None, voice: str | None, language: str
    ) -> Agent:
        made = await self.services.agents.create(
            account,
            agent_id=agent_id,
            name=name,
            greeting=name,
            language_code=language,
            voice_id=voice,
        )
        return _agent_of(made)

    async def delete_agent(self, agent: str) -> None:
        await self.services.agents.delete(await self._agent(agent))

    async def duplicate_agent(self, agent: str, name: str, new_id: str | None) -> Agent:
        copy = await self.services.agents.duplicate(
            await self._agent(agent), name=name, new_id=new_id
        )
        return _agent_of(copy)

    async def get_policy(self, agent: str) -> CachePolicy:
        return await self._policy(await self._agent(agent))

    async def set_policy(self, agent: str, policy: CachePolicy) -> CachePolicy:
        from audiocache.cache.agents import EvictionPolicy

        limits = EvictionPolicy(
            policy.max_entries,
            policy.max_bytes,
            policy.eviction,
            policy.ttl_seconds,
            policy.ttl_from,
        )
        updated = await self.services.agents.set_policy(
            await self._agent(agent),
            policy.admission,
            policy.min_hits,
            policy.window_seconds,
            limits,
            personal_data=policy.personal_data,
        )
        return await self._policy(updated)

    async def list_voices(self, account: str, provider: str | None) -> list[Voice]:
        return [_voice(v) for v in await self.services.voices.search(account, provider=provider)]

    async def create_voice(
        self, account: str, name: str, provider: str, provider_voice_id: str
    ) -> Voice:
        voice = await self.services.voices.register(
            account,
            name=name,
            provider=provider,
            provider_voice_id=provider_voice_id,
            config={},
            metadata=None,
        )
        return _voice(voice)

    async def get_voice(self, account: str, voice_id: str) -> Voice:
        return _voice(await self.services.voices.get(account, voice_id))

    async def warm(
        self,
        agent: str,
        phrases: list[WarmPhrase],
        concurrency: int,
        on_done: Callable[[WarmPhrase, bool | None], None],
    ) -> WarmReport:
        found = await self._agent(agent)
        return await warm_up(
            self.services.cache, found, phrases, concurrency=concurrency, on_done=on_done
        )

    async def history(self, agent: str, entry_id: str) -> list[dict[str, Any]]:
        from audiocache.api.history import TakeOut

        entry = await self._domain_entry(agent, entry_id)
        wire = [
            TakeOut.of(t).model_dump(mode="json")
            for t in await self.services.history.of_entry(entry)
        ]
        return [take_row(Take.from_wire(t)) for t in wire]

    async def restore(self, agent: str, entry_id: str, take_id: str) -> dict[str, Any]:
        from audiocache.api.history import parse_take_id

        entry = await self._domain_entry(agent, entry_id)
        restored = await self.services.history.restore(entry, parse_take_id(take_id))
        return {
            "id": str(restored.id),
            "transcript": restored.transcript,
            "sha256": restored.blob_sha256,
            "size": restored.size_bytes,
            "restoredTake": str(take_id),
        }


def _agent_of(agent: DomainAgent) -> Agent:
    return Agent.from_wire(AgentResponse.of(agent).model_dump(mode="json"))


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _write_all(chunks: AsyncIterator[bytes], path: Path, on_chunk: OnChunk) -> int:
    """``chunks`` into ``path`` through a ``.part`` file renamed at the end."""
    part = path.with_name(path.name + ".part")
    written = 0
    try:
        with part.open("wb") as out:
            async for chunk in chunks:
                out.write(chunk)
                written += len(chunk)
                if on_chunk is not None:
                    on_chunk(len(chunk))
        part.replace(path)
    finally:
        part.unlink(missing_ok=True)
    return written
