"""API keys → principals, with a short in-memory cache so a hit costs no key lookup."""

from __future__ import annotations

import time

from audiocache.errors import Forbidden, Unauthorized
from audiocache.models import Principal
from audiocache.storage.keys_repo import ApiKeyRepository

PERMISSIONS = (
    "audio_cache:read",
    "audio_cache:write",
    "agents:read",
    "agents:write",
    "voice_library:read",
    "voice_library:write",
)
MAX_KEY_LENGTH = 256


class Authenticator:
    def __init__(self, keys: ApiKeyRepository, cache_seconds: float = 2.0) -> None:
        self.keys = keys
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def authenticate(self, key: str | None) -> Principal:
        if not key:
            raise Unauthorized("Missing API key: send it in the X-API-KEY header")
        if len(key) > MAX_KEY_LENGTH:
            raise Unauthorized("Invalid API key")
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self.cache_seconds:
            principal = cached[1]
        else:
            found = await self.keys.find_active(key)
            principal = Principal(found.key_id, found.account_id, found.grants) if found else None
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now, principal)
        if principal is None:
            raise Unauthorized("Invalid or revoked API key")
        return principal

    def forget(self) -> None:
        self._cache.clear()


def require(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        if permission == "*":
            raise Forbidden("This needs an admin key (one granted '*')")
        raise Forbidden(f"The API key does not have the {permission} permission")


def validate_grants(grants: list[str]) -> set[str]:
    valid = set(PERMISSIONS) | {p.split(":")[0] + ":*" for p in PERMISSIONS} | {"*"}
    unknown = [g for g in grants if g not in valid]
    if unknown:
        raise ValueError(
            f"unknown permission(s): {', '.join(unknown)}; valid: {', '.join(PERMISSIONS)}"
        )
    return set(grants)
