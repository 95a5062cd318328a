"""What the published OpenAPI says in words: every operation's description, the values of
``sort``, ``filter`` and ``output_format``, and the catalogue of error codes.

Kept beside the OpenAPI builder (``api/docs.py``) rather than on each route, so that routes
stay short; the tests fail when an operation has no description here or on its route, and
when a code the API can answer with is missing from the catalogue.
"""

from __future__ import annotations

from typing import Any

from audiocache.api.errors import HTTP_CODES, OTHER_HTTP_CODE
from audiocache.audio.formats import FORMATS
from audiocache.cache.query import BOOL_FILTERS, SORT_FIELDS, TEXT_FILTERS
from audiocache.errors import AudioCacheError

_KEY = "Needs an API key (`X-API-KEY`) granting `{scope}`."
_READ, _WRITE = _KEY.format(scope="audio_cache:read"), _KEY.format(scope="audio_cache:write")
_AGENTS_READ = _KEY.format(scope="agents:read")
_AGENTS_WRITE = _KEY.format(scope="agents:write")
_VOICES_READ = _KEY.format(scope="voice_library:read")
_VOICES_WRITE = _KEY.format(scope="voice_library:write")

DESCRIPTIONS: dict[str, str] = {
    "listAudioCacheEntries": "A page of the agent's cached entries with the total count. "
    "`limit` 1-200, `offset`, `sort` and `filter` as listed on the parameters; anything "
    "unparseable is a 400 (`INVALID_SORT`, `INVALID_FILTER`), never a silent default. " + _READ,
    "getAudioCacheStats": "Entries, bytes and pinned entries; hit ratio and "
    "character-weighted hit ratio over the last hour, day and 30 days; the top phrases; "
    "characters, synthesis seconds and money saved; evictions. " + _READ,
    "deleteAudioCacheEntry": "Deletes the entry; its audio goes once nothing refers to it. "
    + _WRITE,
    "downloadAudioCacheFile": "The entry's audio: as stored (`wav`) or converted to "
    "`output_format` (a converted copy is made once and served like any file afterwards). "
    "ETag, byte ranges (single, multiple, suffix, `If-Range`), `If-None-Match` → 304. "
    "Does not count as a hit. A server run with `AUDIOCACHE_OFFLOAD=s3-presigned` answers a GET "
    "307 to a short-lived presigned S3 URL instead (follow redirects). " + _READ,
    "headAudioCacheFile": "The download's headers (Content-Length, ETag, Content-Type) "
    "without the audio. " + _READ,
    "replaceAudioCacheFile": "Replaces the entry's audio with the raw WAV of the body (at most "
    "6 MiB; PCM 8/16/24/32-bit or G.711); the duration is recomputed and the entry marked "
    "imported. The earlier take is kept in the entry's history. " + _WRITE,
    "replaceAudioCacheDetails": "Replaces the audio (multipart `file`) and the transcript and "
    "tuning (`settings` JSON) at once, e.g. to save a previewed take. " + _WRITE,
    "synthesizeAudioCachePreview": "Synthesizes the given text and tuning with the entry's "
    "provider and voice and returns the WAV; stores nothing. " + _READ,
    "bulkDeleteAudioCacheEntries": "Deletes 1-20 entries by id, best effort: the answer "
    "lists which were deleted and which failed. " + _WRITE,
    "regenerateAudioCacheEntry": "Synthesizes the entry's transcript again with its provider, "
    "voice and tuning, in place (the entry keeps its id and is marked regenerated; the earlier "
    "take stays in its history). " + _WRITE,
    "pinAudioCacheEntry": "Pins the entry: eviction (quota, TTL) never removes it. " + _WRITE,
    "unpinAudioCacheEntry": "Unpins the entry: eviction may remove it again. " + _WRITE,
    "warmAudioCache": "Synthesizes and stores up to 100 phrases ahead of time, whatever the "
    "admission policy; pinned unless asked otherwise. " + _WRITE,
    "lookupAudioCache": "The cached audio of a phrase (same canonical key as the runtime "
    "path), or 404 `NOT_CACHED`; never synthesizes and adds no hit, count or TTL refresh. " + _READ,
    "lookupAudioCacheBatch": "Which of these phrases are cached (for a CI check before a "
    "release); adds no hit, count or TTL refresh. " + _READ,
    "storeAudioCache": "Stores audio a runtime synthesized itself (multipart `file` + "
    "`settings`) under the phrase's canonical key, so the next lookup is a hit. " + _WRITE,
    "listAgents": "The account's agents. The account must be the key's own; another "
    "account's answers as unknown (404). " + _AGENTS_READ,
    "createAgent": "Creates an agent with its greeting, language and default voice "
    "(`voiceSettings.voiceId`: `provider:voice`, a default-provider voice or a library voice). "
    "Agent ids are per account. " + _AGENTS_WRITE,
    "deleteAgent": "Deletes the agent and all its cached entries. " + _AGENTS_WRITE,
    "duplicateAgent": "Copies the agent under a new id, its entries included (the audio is "
    "shared by hash, not copied). " + _AGENTS_WRITE,
    "getCachePolicy": "The agent's admission policy (`always`, `never`, `default`, "
    "`min_hits`), eviction limits (max entries, max bytes, `lru`/`lfu`, TTL), its usage and how "
    "many entries were evicted. " + _AGENTS_READ,
    "setCachePolicy": "Sets the agent's admission and eviction policy; `null` is no limit of "
    "the agent's own (the installation's still applies). " + _AGENTS_WRITE,
    "speak": "The runtime path: the phrase's audio from the cache (`X-Audio-Cache: hit`), or "
    "synthesized once and, if the admission policy says so, stored (`miss`, with "
    "`X-Audio-Cache-Entry-Id`). Concurrent misses of one phrase share one synthesis. Counts "
    "a hit. " + _READ,
    "getWhoami": "The key's own account id, key id and scopes: what a client (the web page's "
    "sign-in) needs to know from the key alone. Any valid key; no scope needed.",
    "listVoices": "The account's voice library, filtered by `language`, `gender`, "
    "`provider`, `isPolyVoice`. " + _VOICES_READ,
    "createVoice": "Registers a voice (provider, provider voice id, default tuning) in the "
    "account's library; agents and the runtime path may then name it. " + _VOICES_WRITE,
    "getVoice": "One voice of the account's library. " + _VOICES_READ,
    "updateVoice": "Changes a library voice's name, description or default tuning. "
    + _VOICES_WRITE,
    "getVoiceSample": "Synthesizes a short sample of the voice and returns a signed link to "
    "it that expires (`AUDIOCACHE_SAMPLE_URL_TTL_SECONDS`). " + _VOICES_READ,
    "downloadVoiceSample": "The sample's WAV. The signed token is the credential: no API key "
    "is needed; an expired or altered token is refused.",
    "headDownloadVoiceSample": "The sample download's headers, without the audio.",
    "getHealth": "Liveness: answers while the process serves requests (no key needed).",
    "getReadiness": "Readiness: asks the database (`SELECT 1`) and the blob store, each "
    "within `AUDIOCACHE_READINESS_TIMEOUT_SECONDS`; 503 `NOT_READY` naming the part that does "
    "not answer, with Retry-After (no key needed).",
    "getMetrics": "Prometheus text format: requests by route template and status, cache "
    "lookups by agent and result, bytes served, syntheses, queue depths, evictions. Open unless "
    "`AUDIOCACHE_METRICS_TOKEN` is set; then a bearer token.",
}


def _error_classes(root: type[AudioCacheError]) -> list[type[AudioCacheError]]:
    found = [root]
    for sub in root.__subclasses__():
        found += _error_classes(sub)
    return found


def error_catalogue() -> list[dict[str, Any]]:
    """Every ``error_code`` of the envelope with its status and meaning, sorted by status.

    The exception tree is walked when the OpenAPI is built, when every module that defines
    an error (``cache/signing.py``, ``cache/openai_speech.py`` …) has been imported."""
    codes: dict[str, dict[str, Any]] = {}
    for cls in _error_classes(AudioCacheError):
        own_doc = cls.__dict__.get("__doc__") or ""
        doc = " ".join(own_doc.strip().split("\n\n")[0].split()).replace("``", "`")
        meaning = doc or cls.__dict__.get("default_message") or cls.default_message
        codes.setdefault(
            cls.error_code, {"code": cls.error_code, "status": cls.status, "description": meaning}
        )
    for status, code in HTTP_CODES.items():
        codes.setdefault(
            code,
            {"code": code, "status": status, "description": code.replace("_", " ").capitalize()},
        )
    codes[OTHER_HTTP_CODE] = {
        "code": OTHER_HTTP_CODE,
        "status": 400,
        "description": "Any other HTTP-level refusal (its status says which)",
    }
    return sorted(codes.values(), key=lambda c: (c["status"], c["code"]))


def sort_fields() -> list[str]:
    """The sort field names a client writes (snake case; camel case is accepted too)."""
    return sorted(k for k, v in SORT_FIELDS.items() if k == v or v not in SORT_FIELDS)


_CAMEL_ALIASES = {"providervoiceid", "languagecode"}


def filter_fields() -> dict[str, list[str]]:
    """Filter field → its operators (the boolean flags take ``eq`` with true|false)."""
    fields = {n: list(ops) for n, ops in TEXT_FILTERS.items() if n not in _CAMEL_ALIASES}
    fields.update({name: ["eq"] for name in BOOL_FILTERS})
    return fields


def _parameter_docs() -> dict[str, tuple[str, dict[str, Any]]]:
    sorts = sort_fields()
    filters = filter_fields()
    formats = list(FORMATS)
    sort_text = (
        "Comma-separated `field:asc|desc` (direction defaults to asc), e.g. `hit_count:desc` "
        "or `voice:asc,id:asc`. Fields: " + ", ".join(f"`{f}`" for f in sorts) + "."
    )
    filter_text = (
        "`field:op:value` clauses, the parameter repeated or clauses joined by ` and ` (at "
        "most 10). Fields and operators: "
        + "; ".join(
            f"`{name}:{'|'.join(ops)}`" + (" `true|false`" if name in BOOL_FILTERS else "")
            for name, ops in filters.items()
        )
        + ". E.g. `transcript:contains:thanks`, `voice:eq:en-us`, `pinned:eq:true`."
    )
    format_text = (
        "The audio format: " + ", ".join(f"`{f}`" for f in formats) + " (`wav`: as stored; "
        "`pcm_*` raw 16-bit little-endian; `ulaw_8000`/`alaw_8000` raw G.711). Without it, "
        "`Accept: audio/basic` means `ulaw_8000`, anything else `wav`."
    )
    return {
        "sort": (sort_text, {"x-sort-fields": sorts, "x-sort-directions": ["asc", "desc"]}),
        "filter": (filter_text, {"x-filter-fields": filters}),
        "output_format": (format_text, {"enum": formats}),
    }


def _annotate_string(schema: dict[str, Any], extra: dict[str, Any]) -> None:
    """Put ``extra`` on the string branch of ``schema`` (``anyOf [string, null]`` or not)."""
    branches = schema.get("anyOf") or [schema]
    for branch in branches:
        if branch.get("type") == "string":
            branch.update(extra)
        elif branch.get("type") == "array" and branch.get("items", {}).get("type") == "string":
            branch["items"].update(extra)


def _document_audio_types(operation: dict[str, Any]) -> None:
    """An ``output_format`` answers in its format's media type (``audio/basic``, ``audio/pcm``
    …), not only ``audio/wav``: each is listed on the audio responses."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    types = sorted({fmt.media_type.split(";")[0] for fmt in FORMATS.values()})
    for status in ("200", "206"):
        content = operation.get("responses", {}).get(status, {}).get("content")
        if content is not None and "audio/wav" in content:
            for media_type in types:
                content.setdefault(media_type, binary)


def enrich(schema: dict[str, Any]) -> None:
    """Descriptions, parameter values and the error catalogue, into ``schema`` in place."""
    docs = _parameter_docs()
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            described = DESCRIPTIONS.get(operation.get("operationId", ""))
            if described and not operation.get("description"):
                operation["description"] = described
            for parameter in operation.get("parameters", []):
                doc = docs.get(parameter.get("name", ""))
                if doc is None or parameter.get("in") != "query":
                    continue
                text, extra = doc
                parameter["description"] = text
                parameter.setdefault("schema", {})["description"] = text
                enum = {k: v for k, v in extra.items() if k == "enum"}
                parameter.update({k: v for k, v in extra.items() if k != "enum"})
                if enum:
                    _annotate_string(parameter["schema"], enum)
                if parameter["name"] == "output_format":
                    _document_audio_types(operation)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():  # output_format in the JSON body (/tts …)
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            ref = (body or {}).get("schema", {}).get("$ref", "")
            model = components.get(ref.rsplit("/", 1)[-1], {})
            if "output_format" in model.get("properties", {}):
                _document_audio_types(operation)
    for model in components.values():
        prop = model.get("properties", {}).get("output_format")
        if prop is not None:
            prop["description"] = docs["output_format"][0]
            _annotate_string(prop, {"enum": list(FORMATS)})
    catalogue = error_catalogue()
    components["ErrorCode"] = {
        "type": "string",
        "title": "ErrorCode",
        "description": "Every `error_code` the error envelope may carry (see `x-error-codes` "
        "in `info` for statuses and meanings).",
        "enum": [c["code"] for c in catalogue],
    }
    error = components.get("Error")
    if error is not None:
        error["properties"]["error_code"] = {
            "type": "string",
            "title": "Error Code",
            "description": "One of the `ErrorCode` values.",
        }
    info = schema.setdefault("info", {})
    info["x-error-codes"] = catalogue
    rows = "\n".join(f"| `{c['code']}` | {c['status']} | {c['description']} |" for c in catalogue)
    info["description"] = (
        info.get("description", "")
        + "\n\nErrors come in one envelope, `{success: false, error, error_id, error_code, "
        "error_message, data: null}`, `error_id` being the `X-PolyAI-Correlation-Id`. "
        "The codes:\n\n| error_code | status | meaning |\n|---|---|---|\n" + rows
    )
