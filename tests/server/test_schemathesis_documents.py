"""The documents the schemathesis runs test are the ones we mean: the reference's ``nullable``
read as 3.1 allows, and every reference operation the run leaves out left out on purpose."""

from __future__ import annotations

import json
import re

import pytest
from schemathesis_documents import (
    OWN_OPENAPI,
    REFERENCE_OPENAPI,
    REFERENCE_PATH,
    nullable_to_31,
    reference_run_excludes,
)

pytestmark = pytest.mark.slow  # as when these lived in test_schemathesis.py


def test_nullable_rewrite() -> None:
    strict = pytest.importorskip("jsonschema_rs").Draft202012Validator  # schemathesis' validator
    assert not strict({"type": "string", "nullable": True}).is_valid(None)
    assert strict(nullable_to_31({"type": "string", "nullable": True})).is_valid(None)
    assert nullable_to_31({"type": "string", "nullable": True}) == {"type": ["string", "null"]}
    assert nullable_to_31({"nullable": True, "description": "x"}) == {
        "anyOf": [{"description": "x"}, {"type": "null"}]
    }
    assert nullable_to_31({"nullable": True, "enum": ["a"], "type": "string"}) == {
        "type": ["string", "null"],
        "enum": ["a", None],
    }
    assert nullable_to_31({"type": "string", "nullable": False}) == {"type": "string"}
    if REFERENCE_PATH.exists():
        raw = json.loads(REFERENCE_PATH.read_text())
        fixed = nullable_to_31(raw)
        assert '"nullable"' in json.dumps(raw) and '"nullable"' not in json.dumps(fixed)
        schemas = fixed["components"]["schemas"]
        filename = schemas["AudioCacheEntry"]["properties"]["audioFilename"]
        assert filename["type"] == ["string", "null"]
        assert {"type": "null"} in schemas["Error"]["properties"]["data"]["anyOf"]


def test_reference_operations_are_served() -> None:
    """Every operation the reference run skips is skipped on purpose: the rest we serve."""
    if REFERENCE_OPENAPI is None:
        pytest.skip(f"reference OpenAPI not found at {REFERENCE_PATH}")
    excluded = reference_run_excludes()
    missing = [
        f"{method.upper()} {path}"
        for path, item in REFERENCE_OPENAPI["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch", "head", "options")
        and not (excluded and re.match(excluded, path))
        and method not in OWN_OPENAPI["paths"].get(path, {})
    ]
    assert not missing, missing
