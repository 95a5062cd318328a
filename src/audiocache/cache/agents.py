"""Agents: ownership (another account's agent is 'not found'), cascade delete, duplicate."""

from __future__ import annotations

import secrets
from typing import Any

from audiocache.cache.admission import validate_policy
from audiocache.cache.keys import cache_key
from audiocache.cache.service import CacheService
from audiocache.errors import NotFound
from audiocache.models import Agent, Entry
from audiocache.storage.agents_repo import AgentRepository


class AgentService:
    def __init__(self, agents: AgentRepository, cache: CacheService) -> None:
        self.agents = agents
        self.cache = cache

    async def owned(self, account_id: str, agent_id: str) -> Agent:
        agent = await self.agents.get(agent_id)
        if agent is None or agent.account_id != account_id:
            raise NotFound(f"Agent {agent_id!r} not found")
        return agent

    async def list_for_account(self, account_id: str) -> list[Agent]:
        return await self.agents.list_for_account(account_id)

    async def create(
        self,
        account_id: str,
        *,
        name: str,
        greeting: str,
        language_code: str,
        agent_id: str | None = None,
        voice_id: str | None = None,
        llm_model_id: str | None = None,
    ) -> Agent:
        return await self.agents.create(
            id=agent_id or new_agent_id(),
            account_id=account_id,
            name=name,
            greeting=greeting,
            language_code=language_code,
            voice_id=voice_id,
            llm_model_id=llm_model_id,
        )

    async def delete(self, agent: Agent) -> None:
        self.cache.forget_recent()
        await self.agents.delete(agent.id)
        await self.cache.sweep()

    async def duplicate(self, agent: Agent, *, name: str, new_id: str | None = None) -> Agent:
        """One transaction: the copy and all its entries exist together, or neither does."""
        copy_id = new_id or new_agent_id()

        def rekey(entry: Entry) -> str:
            return cache_key(
                agent_id=copy_id,
                provider=entry.provider,
                voice=entry.provider_voice_id,
                model=entry.model,
                language=entry.language_code,
                text=entry.transcript,
                config=entry.config,
            )

        return await self.agents.duplicate(agent.id, rekey, id=copy_id, name=name)

    async def set_policy(
        self, agent: Agent, mode: str, min_hits: int | None, window_seconds: int | None
    ) -> Agent:
        validate_policy(mode, min_hits, window_seconds)
        values: dict[str, Any] = {
            "admission": mode,
            "admission_min_hits": min_hits if mode == "min_hits" else None,
            "admission_window_seconds": window_seconds if mode == "min_hits" else None,
        }
        await self.agents.update(agent.id, **values)
        return await self.owned(agent.account_id, agent.id)


def new_agent_id() -> str:
    return f"agent-{secrets.token_hex(6)}"
