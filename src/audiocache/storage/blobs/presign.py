"""AWS Signature V4 query presigning of an S3 GET (a URL that is its own credential).

By hand rather than obstore's ``sign``: that signs the path alone, and the redirect needs
``response-content-type`` / ``response-content-disposition`` in the signed query (the
objects are stored without a content type, and a download names its file). The algorithm
is AWS's "Authenticating Requests: Using Query Parameters"; ``tests/storage/
test_presign.py`` checks it against that page's worked example and against radosgw.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_EXPIRES = 7 * 86400  # SigV4's own limit on X-Amz-Expires
_DEFAULT_PORTS = {"http": 80, "https": 443}


@lru_cache(maxsize=4096)  # the same names, types and paths come back on every hit
def _encode(value: str, safe: str = "") -> str:
    """SigV4's URI encoding: everything but the unreserved characters, UTF-8, upper hex."""
    return quote(value, safe="-_.~" + safe)


@lru_cache(maxsize=8)
def _signing_key(secret: str, day: str, region: str) -> bytes:
    """The day's key (four HMACs): the same for every URL signed that day."""
    key = hmac.new(f"AWS4{secret}".encode(), day.encode(), hashlib.sha256).digest()
    for part in (region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


@lru_cache(maxsize=8)
def _origin(endpoint: str) -> tuple[str, str, str]:
    """Scheme, Host header (as a client sends it: no default port) and base path."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return parts.scheme, host, parts.path.rstrip("/")


def presign_get(
    *,
    endpoint: str,
    path: str,
    region: str,
    access_key_id: str,
    secret_access_key: str,
    expires_seconds: int,
    query: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> str:
    """The presigned URL of ``GET endpoint + path`` (``path`` unencoded, from ``/``), valid
    ``expires_seconds`` from ``now``; ``query`` adds signed parameters (``response-*``)."""
    if not 1 <= expires_seconds <= MAX_EXPIRES:
        raise ValueError(f"expires_seconds must be 1..{MAX_EXPIRES}, not {expires_seconds}")
    scheme, host, base = _origin(endpoint)
    canonical_path = _encode(base + path, safe="/")
    stamp = (now or datetime.now(UTC)).astimezone(UTC)
    amz_date = stamp.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    scope = f"{day}/{region}/s3/aws4_request"
    params = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{access_key_id}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires_seconds),
        "X-Amz-SignedHeaders": "host",
        **(query or {}),
    }
    canonical_query = "&".join(
        f"{k}={v}" for k, v in sorted((_encode(k), _encode(v)) for k, v in params.items())
    )
    canonical_request = "\n".join(
        ["GET", canonical_path, canonical_query, f"host:{host}", "", "host", "UNSIGNED-PAYLOAD"]
    )
    to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = _signing_key(secret_access_key, day, region)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{scheme}://{host}{canonical_path}?{canonical_query}&X-Amz-Signature={signature}"
