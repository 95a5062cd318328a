"""Route dependencies: the services, and the caller checked 401 → 403 before anything else."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from starlette.routing import compile_path

from audiocache.api.observe import AUDIT_KEY, KEY_ID_KEY
from audiocache.auth import require
from audiocache.models import Principal
from audiocache.services import Services

api_key_header = APIKeyHeader(name="X-API-KEY", auto_error=False, scheme_name="polyApiKey")


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def permission(name: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the key, then checks it grants ``name``. A route
    needing a write permission is audited (``api/audit.py``), refused ones (403) included."""
    audited = name.endswith(":write")

    async def dependency(request: Request, key: str | None = Security(api_key_header)) -> Principal:
        principal = await services(request).authenticator.authenticate(key)
        request.scope[KEY_ID_KEY] = principal.key_id  # for the access log
        if audited:
            request.scope[AUDIT_KEY] = principal.account_id
        require(principal, name)
        return principal

    dependency.__name__ = f"require_{name.replace(':', '_')}"
    return dependency


async def authenticated(request: Request, key: str | None = Security(api_key_header)) -> Principal:
    """Any valid key, whatever it grants (``GET /v1/whoami``)."""
    principal = await services(request).authenticator.authenticate(key)
    request.scope[KEY_ID_KEY] = principal.key_id
    return principal


def caller(name: str) -> Principal:
    """``principal: Principal = caller("audio_cache:read")`` in a route signature."""
    return Depends(permission(name))  # type: ignore[no-any-return]


ServicesDep = Depends(services)


@dataclass(frozen=True)
class RouteSpec:
    """A route's path and permission, in one place for its decorator, its ``caller`` and
    the hot path (``api/hot_path.py``), which matches the path with the same compiler the
    router uses."""

    prefix: str  # the router's prefix
    path: str  # what the decorator names, under the prefix
    permission: str
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", compile_path(self.template)[0])

    @property
    def template(self) -> str:
        return self.prefix + self.path

    def caller(self) -> Principal:
        return caller(self.permission)

    def match(self, route_path: str) -> dict[str, str] | None:
        found = self.regex.match(route_path)
        return found.groupdict() if found is not None else None
