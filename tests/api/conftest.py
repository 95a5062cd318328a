"""Fixtures of the API tests: an agent of the contract tests and one stored entry of it."""

from __future__ import annotations

import pytest
from audio_cache_helpers import AGENT
from support import Api


@pytest.fixture
async def agent(api: Api) -> str:
    return await api.create_agent(AGENT)


@pytest.fixture
async def entry_id(api: Api, agent: str) -> str:
    return await api.seed_entry(agent, "Thanks for calling")
