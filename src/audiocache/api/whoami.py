"""``GET /v1/whoami``: what a key is (account, key id, scopes), so that a client holding only
the key (the web page's sign-in) learns its account. Any valid key may ask, whatever it
grants; the key itself is never echoed."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from audiocache.api.deps import authenticated
from audiocache.api.docs import errors
from audiocache.models import Principal

router = APIRouter(tags=["Keys (audiocache)"])


class Whoami(BaseModel):
    accountId: str = Field(description="The account the key belongs to")
    keyId: str = Field(description="The key's public id (as in the access log)")
    scopes: list[str] = Field(description="The permissions the key grants, sorted")


@router.get(
    "/v1/whoami",
    operation_id="getWhoami",
    summary="The calling key's account, key id and scopes",
    response_model=Whoami,
    responses={**errors(401)},
)
async def whoami(principal: Principal = Depends(authenticated)) -> Whoami:
    return Whoami(
        accountId=principal.account_id,
        keyId=principal.key_id,
        scopes=sorted(principal.grants),
    )
