"""Agents of an account (the Agents API subset in scope) and audiocache's cache policy."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from audiocache.api.deps import ServicesDep, caller
from audiocache.api.docs import errors, json_body
from audiocache.api.observe import note_for_audit
from audiocache.api.requests import parse_json
from audiocache.api.schemas import AgentResponse, CachePolicy, CreateAgentBody, DuplicateAgentBody
from audiocache.errors import NotFound
from audiocache.models import Principal
from audiocache.services import Services

router = APIRouter(tags=["Agents"])
READ, WRITE = "agents:read", "agents:write"


def _own_account(principal: Principal, account_id: str) -> None:
    if account_id != principal.account_id:
        raise NotFound("Account ID does not exist.")


@router.get(
    "/v1/accounts/{accountId}/agents",
    operation_id="listAgents",
    summary="List agents",
    response_model=list[AgentResponse],
    responses=errors(401, 403, 404),
)
async def list_agents(
    accountId: str, principal: Principal = caller(READ), services: Services = ServicesDep
) -> list[AgentResponse]:
    _own_account(principal, accountId)
    return [AgentResponse.of(a) for a in await services.agents.list_for_account(accountId)]


@router.post(
    "/v1/accounts/{accountId}/agents",
    operation_id="createAgent",
    summary="Create agent",
    response_model=AgentResponse,
    responses=errors(400, 401, 403, 404, 409),
    openapi_extra=json_body(CreateAgentBody),
)
async def create_agent(
    request: Request,
    accountId: str,
    principal: Principal = caller(WRITE),
    services: Services = ServicesDep,
) -> AgentResponse:
    body = await parse_json(request, CreateAgentBody)
    note_for_audit(request.scope, agent_id=body.agentId)  # the one asked for, if refused
    _own_account(principal, accountId)
    agent = await services.agents.create(
        accountId,
        agent_id=body.agentId,
        name=body.name,
        greeting=body.responseSettings.greeting,
        language_code=body.responseSettings.languageCode,
        voice_id=body.voiceSettings.voiceId if body.voiceSettings else None,
        llm_model_id=body.llmSettings.modelId if body.llmSettings else None,
    )
    note_for_audit(request.scope, agent_id=agent.public_id)
    return AgentResponse.of(agent)


@router.delete(
    "/v1/agents/{agentId}",
    operation_id="deleteAgent",
    summary="Delete agent",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Agent deleted"}, **errors(401, 403, 404)},
)
async def delete_agent(
    agentId: str, principal: Principal = caller(WRITE), services: Services = ServicesDep
) -> Response:
    agent = await services.agents.owned(principal.account_id, agentId)
    await services.agents.delete(agent)
    return Response(status_code=204)


@router.post(
    "/v1/agents/{agentId}/duplicate",
    operation_id="duplicateAgent",
    summary="Duplicate agent",
    response_model=AgentResponse,
    responses=errors(400, 401, 403, 404, 409),
    openapi_extra=json_body(DuplicateAgentBody),
)
async def duplicate_agent(
    request: Request,
    agentId: str,
    principal: Principal = caller(WRITE),
    services: Services = ServicesDep,
) -> AgentResponse:
    body = await parse_json(request, DuplicateAgentBody)
    # The path's agentId is the source, so the copy is the event's target: the one asked
    # for (if refused), then the one made.
    note_for_audit(request.scope, target_id=body.newAgentId)
    agent = await services.agents.owned(principal.account_id, agentId)
    copy = await services.agents.duplicate(agent, name=body.newAgentName, new_id=body.newAgentId)
    note_for_audit(request.scope, target_id=copy.public_id)
    return AgentResponse.of(copy)


@router.get(
    "/v1/agents/{agentId}/cache-policy",
    operation_id="getCachePolicy",
    summary="Get the agent's admission and eviction policy, usage (audiocache extension)",
    response_model=CachePolicy,
    responses=errors(401, 403, 404),
)
async def get_policy(
    agentId: str, principal: Principal = caller(READ), services: Services = ServicesDep
) -> CachePolicy:
    agent = await services.agents.owned(principal.account_id, agentId)
    return CachePolicy.of(agent, await services.agents.usage(agent))


@router.put(
    "/v1/agents/{agentId}/cache-policy",
    operation_id="setCachePolicy",
    summary="Set the agent's admission and eviction policy (audiocache extension)",
    response_model=CachePolicy,
    responses=errors(400, 401, 403, 404),
    openapi_extra=json_body(CachePolicy),
)
async def set_policy(
    request: Request,
    agentId: str,
    principal: Principal = caller(WRITE),
    services: Services = ServicesDep,
) -> CachePolicy:
    body = await parse_json(request, CachePolicy)
    agent = await services.agents.owned(principal.account_id, agentId)
    updated = await services.agents.set_policy(
        agent,
        body.admission,
        body.minHits,
        body.windowSeconds,
        body.eviction_policy(),
        personal_data=body.personalData,
    )
    return CachePolicy.of(updated, await services.agents.usage(updated))
