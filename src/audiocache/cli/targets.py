"""Where a command's work happens: on the data folder (``Local``, the services in this
process) or on a running server (``Remote``, through ``audiocache.client``).

Both answer with the client's models, built from the same wire shapes the API uses, so a
command prints the same thing in either mode.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from audiocache.cache.warmup import Phrase as WarmPhrase
from audiocache.cache.warmup import WarmReport
from audiocache.client import (
    Agent,
    AsyncClient,
    BulkDeleteResult,
    CachePolicy,
    Entry,
    EntryPage,
    Stats,
    Take,
    Voice,
)

OnChunk = Callable[[int], None] | None


class Target(Protocol):
    async def account(self, given: str | None) -> str: ...
    async def list_entries(
        self, agent: str, limit: int, offset: int, sort: str | None, filters: list[str]
    ) -> EntryPage: ...
    async def download_to(
        self, agent: str, entry_id: str, path: Path, fmt: str | None, on_chunk: OnChunk
    ) -> int: ...
    async def delete(self, agent: str, ids: list[str]) -> BulkDeleteResult: ...
    async def replace(
        self,
        agent: str,
        entry_id: str,
        wav: bytes,
        filename: str,
        text: str | None,
        config: dict[str, Any] | None,
    ) -> None: ...
    async def preview(
        self, agent: str, entry_id: str, text: str, config: dict[str, Any], language: str | None
    ) -> bytes: ...
    async def regenerate(self, agent: str, entry_id: str) -> Entry: ...
    async def pin(self, agent: str, entry_id: str, pinned: bool) -> Entry: ...
    async def stats(self, agent: str, top: int) -> Stats: ...
    async def list_agents(self, account: str) -> list[tuple[Agent, CachePolicy]]: ...
    async def create_agent(
        self, account: str, name: str, agent_id: str | None, voice: str | None, language: str
    ) -> Agent: ...
    async def delete_agent(self, agent: str) -> None: ...
    async def duplicate_agent(self, agent: str, name: str, new_id: str | None) -> Agent: ...
    async def get_policy(self, agent: str) -> CachePolicy: ...
    async def set_policy(self, agent: str, policy: CachePolicy) -> CachePolicy: ...
    async def list_voices(self, account: str, provider: str | None) -> list[Voice]: ...
    async def create_voice(
        self, account: str, name: str, provider: str, provider_voice_id: str
    ) -> Voice: ...
    async def get_voice(self, account: str, voice_id: str) -> Voice: ...
    async def warm(
        self,
        agent: str,
        phrases: list[WarmPhrase],
        concurrency: int,
        on_done: Callable[[WarmPhrase, bool | None], None],
    ) -> WarmReport: ...
    async def history(self, agent: str, entry_id: str) -> list[dict[str, Any]]: ...
    async def restore(self, agent: str, entry_id: str, take_id: str) -> dict[str, Any]: ...


def take_row(take: Take) -> dict[str, Any]:
    return {
        "id": take.id,
        "createdAt": take.created_at.isoformat(),
        "reason": take.reason,
        "transcript": take.transcript,
        "duration": round(take.duration, 3),
        "size": take.size,
        "sha256": take.sha256,
    }


class Remote:
    """A running server, through the async client (retries included)."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def account(self, given: str | None) -> str:
        """The account named, else the key's own (a server knows it)."""
        return given or (await self.client.whoami()).account_id

    async def list_entries(
        self, agent: str, limit: int, offset: int, sort: str | None, filters: list[str]
    ) -> EntryPage:
        return await self.client.list_entries(
            agent, limit=limit, offset=offset, sort=sort, filters=filters
        )

    async def download_to(
        self, agent: str, entry_id: str, path: Path, fmt: str | None, on_chunk: OnChunk
    ) -> int:
        return await self.client.download_to(agent, entry_id, path, fmt, on_chunk)

    async def delete(self, agent: str, ids: list[str]) -> BulkDeleteResult:
        return await self.client.bulk_delete(agent, ids)

    async def replace(
        self,
        agent: str,
        entry_id: str,
        wav: bytes,
        filename: str,
        text: str | None,
        config: dict[str, Any] | None,
    ) -> None:
        if text is None:
            await self.client.replace_file(agent, entry_id, wav, filename)
        else:
            await self.client.replace_details(agent, entry_id, wav, text, config or {}, filename)

    async def preview(
        self, agent: str, entry_id: str, text: str, config: dict[str, Any], language: str | None
    ) -> bytes:
        return await self.client.preview(agent, entry_id, text, config, language)

    async def regenerate(self, agent: str, entry_id: str) -> Entry:
        return await self.client.regenerate(agent, entry_id)

    async def pin(self, agent: str, entry_id: str, pinned: bool) -> Entry:
        if pinned:
            return await self.client.pin(agent, entry_id)
        return await self.client.unpin(agent, entry_id)

    async def stats(self, agent: str, top: int) -> Stats:
        return await self.client.stats(agent, top)

    async def list_agents(self, account: str) -> list[tuple[Agent, CachePolicy]]:
        found = await self.client.list_agents(account)
        return [(a, await self.client.get_cache_policy(a.agent_id)) for a in found]

    async def create_agent(
        self, account: str, name: str, agent_id: str | None, voice: str | None, language: str
    ) -> Agent:
        return await self.client.create_agent(
            name, agent_id=agent_id, voice=voice, language=language, account=account
        )

    async def delete_agent(self, agent: str) -> None:
        await self.client.delete_agent(agent)

    async def duplicate_agent(self, agent: str, name: str, new_id: str | None) -> Agent:
        return await self.client.duplicate_agent(agent, name, new_id)

    async def get_policy(self, agent: str) -> CachePolicy:
        return await self.client.get_cache_policy(agent)

    async def set_policy(self, agent: str, policy: CachePolicy) -> CachePolicy:
        return await self.client.set_cache_policy(agent, policy)

    async def list_voices(self, account: str, provider: str | None) -> list[Voice]:
        return await self.client.list_voices(provider=provider, account=account)

    async def create_voice(
        self, account: str, name: str, provider: str, provider_voice_id: str
    ) -> Voice:
        return await self.client.create_voice(name, provider, provider_voice_id, account=account)

    async def get_voice(self, account: str, voice_id: str) -> Voice:
        return await self.client.get_voice(voice_id, account=account)

    async def warm(
        self,
        agent: str,
        phrases: list[WarmPhrase],
        concurrency: int,
        on_done: Callable[[WarmPhrase, bool | None], None],
    ) -> WarmReport:
        return await remote_warm(self.client, agent, phrases, concurrency, on_done)

    async def history(self, agent: str, entry_id: str) -> list[dict[str, Any]]:
        return [take_row(t) for t in await self.client.list_takes(agent, entry_id)]

    async def restore(self, agent: str, entry_id: str, take_id: str) -> dict[str, Any]:
        takes = {t.id: t for t in await self.client.list_takes(agent, entry_id)}
        restored = await self.client.restore_take(agent, entry_id, take_id)
        take = takes.get(str(take_id))  # its audio is the entry's now
        return {
            "id": restored.id,
            "transcript": restored.transcript,
            "sha256": take.sha256 if take else None,
            "size": take.size if take else None,
            "restoredTake": str(take_id),
        }


async def remote_warm(
    client: AsyncClient,
    agent: str,
    phrases: list[WarmPhrase],
    concurrency: int,
    on_done: Callable[[WarmPhrase, bool | None], None],
) -> WarmReport:
    """``warm_up`` through the API: one phrase a request, ``concurrency`` at once."""
    import anyio

    from audiocache.client import AudioCacheError as ClientError
    from audiocache.client import Phrase

    report = WarmReport()
    limit = anyio.Semaphore(max(1, concurrency))

    async def one(phrase: WarmPhrase) -> None:
        async with limit:
            try:
                result = await client.warm(
                    agent,
                    [Phrase(phrase.text, phrase.voice, phrase.language, phrase.config or None)],
                )
            except ClientError as exc:
                report.failed.append((phrase.line, exc.message))
                on_done(phrase, None)
                return
        created = result.synthesized > 0
        if created:
            report.synthesized += 1
        else:
            report.already_cached += 1
        on_done(phrase, created)

    async with anyio.create_task_group() as group:
        for phrase in phrases:
            group.start_soon(one, phrase)
    return report
