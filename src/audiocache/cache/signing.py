"""Time-limited signed tokens for URLs that need no API key (voice samples).

token = base64url(json payload) "." base64url(HMAC-SHA256(secret, payload)). The payload
carries its expiry; a token whose signature does not match is refused before it is read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from audiocache.errors import Forbidden


class UrlExpired(Forbidden):
    error_code = "URL_EXPIRED"
    default_message = "This link has expired"


class InvalidSignature(Forbidden):
    error_code = "INVALID_SIGNATURE"
    default_message = "This link is not valid"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the signing secret must be at least 16 bytes")
        self._secret = secret

    def sign(self, payload: dict[str, Any], ttl_seconds: int, now: float | None = None) -> str:
        body = {**payload, "exp": int((now or time.time()) + ttl_seconds)}
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return f"{_b64(raw)}.{_b64(self._mac(raw))}"

    def verify(self, token: str, now: float | None = None) -> dict[str, Any]:
        try:
            body_part, mac_part = token.split(".", 1)
            raw, mac = _unb64(body_part), _unb64(mac_part)
        except (ValueError, UnicodeEncodeError) as exc:
            raise InvalidSignature() from exc
        if not hmac.compare_digest(mac, self._mac(raw)):
            raise InvalidSignature()
        payload: dict[str, Any] = json.loads(raw)
        if payload.get("exp", 0) < (now or time.time()):
            raise UrlExpired()
        return payload

    def _mac(self, raw: bytes) -> bytes:
        return hmac.new(self._secret, raw, hashlib.sha256).digest()
