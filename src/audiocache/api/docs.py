"""OpenAPI helpers for routes that parse their own bodies (so auth runs before parsing)."""

from __future__ import annotations

import warnings
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from audiocache.api.openapi_text import enrich
from audiocache.api.schemas import Error

_BODY_MODELS: dict[str, type[BaseModel]] = {}

_DESCRIPTIONS = {
    400: "Invalid request",
    401: "Unauthorized - missing or invalid API key",
    403: "Forbidden - the API key lacks the permission",
    404: "Resource not found",
    409: "Conflict",
    416: "Range not satisfiable",
    502: "The TTS engine failed",
    503: "Storage or the TTS provider is unavailable for now (see Retry-After)",
    504: "The TTS provider did not answer in time",
}

AUDIO_WAV = {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": Error, "description": _DESCRIPTIONS[status]} for status in statuses}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    _BODY_MODELS[model.__name__] = model
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        with warnings.catch_warnings():
            # A GET+HEAD route gives both methods one operationId; HEAD's is renamed below.
            warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for operations in schema.get("paths", {}).values():
            # Validation errors are answered 400 with the envelope; FastAPI's 422 never is.
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
            get, head = operations.get("get"), operations.get("head")
            if get and head and head.get("operationId") == get.get("operationId"):
                name = get["operationId"]
                head["operationId"] = "head" + name[:1].upper() + name[1:]
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        for name, model in _BODY_MODELS.items():
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[name] = model_schema
        enrich(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
