"""Agents: ownership (another account's agent is 'not found'), cascade delete, duplicate."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from typing import Any

from audiocache.cache.admission import validate_policy
from audiocache.cache.curation import Curation
from audiocache.cache.eviction import validate_limits
from audiocache.cache.keys import KeyParts
from audiocache.errors import InvalidInput, NotFound
from audiocache.models import Agent, Entry, Usage
from audiocache.storage.agents_repo import AgentRepository
from audiocache.storage.eviction_repo import EvictionRepository


class AgentService:
    def __init__(
        self, agents: AgentRepository, curation: Curation, eviction: EvictionRepository
    ) -> None:
        self.agents = agents
        self.curation = curation
        self.eviction = eviction

    async def owned(self, account_id: str, agent_id: str) -> Agent:
        """The account's agent of that (public) id; another account's is simply not there."""
        agent = await self.agents.find(account_id, agent_id)
        if agent is None:
            raise NotFound(f"Agent {agent_id!r} not found")
        return agent

    async def named(self, agent_id: str, account_id: str | None = None) -> Agent:
        """For the CLI, which acts for no account: the agent of that public id in the given
        account, or the only one of that id in any account."""
        if account_id is not None:
            return await self.owned(account_id, agent_id)
        found = await self.agents.with_public_id(agent_id)
        if not found:
            raise NotFound(f"Agent {agent_id!r} not found")
        if len(found) > 1:
            accounts = ", ".join(sorted(a.account_id for a in found))
            raise InvalidInput(
                f"Agent id {agent_id!r} exists in several accounts ({accounts}); "
                "name the account with --account"
            )
        return found[0]

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
            public_id=agent_id or new_agent_id(),
            account_id=account_id,
            name=name,
            greeting=greeting,
            language_code=language_code,
            voice_id=voice_id,
            llm_model_id=llm_model_id,
        )

    async def delete(self, agent: Agent) -> None:
        self.curation.forget_recent()
        await self.agents.delete(agent.id)
        await self.curation.sweep()

    async def duplicate(self, agent: Agent, *, name: str, new_id: str | None = None) -> Agent:
        """One transaction: the copy and all its entries exist together, or neither does."""

        def rekey(entry: Entry, copy_internal_id: str) -> str:
            return KeyParts.of_entry(entry, agent_id=copy_internal_id).key

        return await self.agents.duplicate(
            agent.id, rekey, public_id=new_id or new_agent_id(), name=name
        )

    async def set_policy(
        self,
        agent: Agent,
        mode: str,
        min_hits: int | None,
        window_seconds: int | None,
        eviction: EvictionPolicy | None = None,
        personal_data: str | None = None,
    ) -> Agent:
        """Admission, and (unless ``eviction`` / ``personal_data`` is None, which keeps
        them) eviction limits and the personal-data rule."""
        validate_policy(mode, min_hits, window_seconds, personal_data or "skip")
        values: dict[str, Any] = {
            "admission": mode,
            "admission_min_hits": min_hits if mode == "min_hits" else None,
            "admission_window_seconds": window_seconds if mode == "min_hits" else None,
        }
        if personal_data is not None:
            values["personal_data"] = personal_data
        if eviction is not None:
            validate_limits(
                eviction.max_entries,
                eviction.max_bytes,
                eviction.eviction,
                eviction.ttl_seconds,
                eviction.ttl_from,
            )
            values.update(asdict(eviction))
        await self.agents.update(agent.id, **values)
        return await self.owned(agent.account_id, agent.public_id)

    async def usage(self, agent: Agent) -> Usage:
        """What the agent's entries take now, pinned and imported ones included."""
        return await self.eviction.usage(agent.id)


@dataclass(frozen=True)
class EvictionPolicy:
    """An agent's own eviction fields (None: no limit of its own; see cache/eviction.py)."""

    max_entries: int | None = None
    max_bytes: int | None = None
    eviction: str | None = None
    ttl_seconds: int | None = None
    ttl_from: str | None = None

    @classmethod
    def of(cls, agent: Agent) -> EvictionPolicy:
        return cls(
            agent.max_entries, agent.max_bytes, agent.eviction, agent.ttl_seconds, agent.ttl_from
        )


def new_agent_id() -> str:
    return f"agent-{secrets.token_hex(6)}"
