"""The two OpenAPI documents the schemathesis runs test: our own and the reference contract.

Why they are built at import and not from a fixture: schemathesis' lazy ``from_fixture`` loader
sets ``request.node._nodeid``, which pytest 9.2 no longer has (``AttributeError``). So our own
spec is built in-process from ``create_app`` at collection, and
``test_served_openapi_is_the_one_tested`` checks that the live server serves exactly that; the
base URL and the key, known only once the server runs, are applied per request.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from audiocache.app import create_app
from audiocache.config import Settings
from audiocache.services import build_services
from audiocache.storage.blobs.memory import MemoryBlobStore

# A copy of the contract (shared/reference) is kept in the repository so that a clone tests
# against it on its own; REFERENCE_OPENAPI points at another copy when one wants to.
REFERENCE_PATH = Path(
    os.environ.get(
        "REFERENCE_OPENAPI",
        Path(__file__).resolve().parents[1] / "reference" / "agents-api-audio-cache.openapi.json",
    )
)
# The reference also holds the account voice library (list/register/get/patch/sample), which
# has its own issue. Until our server serves it, every call would be a 404 and prove nothing, so
# it is left out of the reference run for as long as our own OpenAPI lacks it (see
# `reference_run_excludes`); it joins the run by itself when the routes land.
VOICE_LIBRARY = "/v1/accounts/{accountId}/voice-library"


# --- the reference's 3.0-style `nullable` inside a 3.1 document ---------------------------------


def nullable_to_31(node: Any) -> Any:
    """Rewrite OpenAPI 3.0 ``nullable: true`` into its 3.1 (JSON Schema) spelling; returns a copy.

    The reference declares ``openapi: 3.1.0`` but marks ``AudioCacheEntry.audioFilename`` and the
    error envelope's ``data`` with the 3.0 keyword ``nullable: true``. 3.1 dropped that keyword,
    so a strict 3.1 validator ignores it: ``{"type": "string", "nullable": true}`` rejects
    ``null``, and every entry without a filename would "violate" the reference. Its authors
    meant "null is allowed" (DESIGN.md), so we test against that reading: ``type: [t, "null"]``,
    or ``anyOf: [schema, {"type": "null"}]`` when the schema names no ``type`` (as ``data``).
    schemathesis 4.32 happens to honour ``nullable`` in 3.1 documents too; the rewrite makes the
    reading explicit instead of resting on that leniency.
    """
    if isinstance(node, list):
        return [nullable_to_31(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: nullable_to_31(value) for key, value in node.items()}
    if out.pop("nullable", False) is not True:
        return out
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = [kind, "null"]
    elif isinstance(kind, list):
        out["type"] = kind if "null" in kind else [*kind, "null"]
    else:
        return {"anyOf": [out, {"type": "null"}]}
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


# --- the two schemas, built at collection --------------------------------------------------------


def own_openapi() -> dict[str, Any]:
    """What ``GET /openapi.json`` serves, built in-process (no database or engine is touched)."""
    settings = Settings(database_url="sqlite+aiosqlite://")
    services = build_services(settings, engines=[], blobs=MemoryBlobStore())
    return create_app(settings, services).openapi()


def reference_openapi() -> dict[str, Any] | None:
    if not REFERENCE_PATH.exists():
        return None
    return nullable_to_31(json.loads(REFERENCE_PATH.read_text()))


OWN_OPENAPI = own_openapi()
REFERENCE_OPENAPI = reference_openapi()


def reference_run_excludes() -> str | None:
    """Path regex left out of the reference run: the voice library while we do not serve it."""
    if any(path.startswith(VOICE_LIBRARY) for path in OWN_OPENAPI["paths"]):
        return None
    return "^" + re.escape(VOICE_LIBRARY)
