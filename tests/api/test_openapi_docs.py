"""The published OpenAPI says in words what the API does, and /docs and /redoc work offline.

Every operation has a description; ``sort``, ``filter`` and ``output_format`` list their
values (and each listed value is accepted); every error code the source can answer with is in
the ``ErrorCode`` enum and in ``info.x-error-codes``. The HTML the app serves names no other
host (no CDN): its scripts and styles come from the app itself."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Api

from audiocache.audio.formats import FORMATS, parse_output_format
from audiocache.cache.query import (
    BOOL_FILTERS,
    SORT_FIELDS,
    TEXT_FILTERS,
    parse_filters,
    parse_sort,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "audiocache"


@pytest.fixture
def backend() -> str:
    return "sqlite+fs"


async def _openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    return r.json()


def _operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for ops in schema["paths"].values() for op in ops.values()]


def _parameter(schema: dict[str, Any], name: str) -> list[dict[str, Any]]:
    found = [p for op in _operations(schema) for p in op.get("parameters", []) if p["name"] == name]
    assert found, name
    return found


async def test_every_operation_has_a_description(client: httpx.AsyncClient) -> None:
    schema = await _openapi(client)
    operations = _operations(schema)
    assert len(operations) > 30
    for op in operations:
        text = op.get("description", "")
        assert len(text) > 30 and text != op.get("summary"), op["operationId"]


async def test_sort_filter_and_output_format_list_their_values(
    client: httpx.AsyncClient,
) -> None:
    schema = await _openapi(client)
    [sort] = _parameter(schema, "sort")
    listed = sort["x-sort-fields"]
    # every field the parser sorts by is listed under some name, and every listed one parses
    assert {SORT_FIELDS[name] for name in listed} == set(SORT_FIELDS.values())
    for name in listed:
        assert f"`{name}`" in sort["description"]
        for direction in sort["x-sort-directions"]:
            parse_sort(f"{name}:{direction}")
    [filter_] = _parameter(schema, "filter")
    fields = filter_["x-filter-fields"]
    assert set(fields) >= {"transcript", "provider", "voice", "language", *BOOL_FILTERS}
    for name, ops in fields.items():
        assert ops == (["eq"] if name in BOOL_FILTERS else list(TEXT_FILTERS[name]))
        assert f"`{name}:{'|'.join(ops)}`" in filter_["description"]
        for op in ops:
            parse_filters([f"{name}:{op}:true"])
    for parameter in _parameter(schema, "output_format"):
        [string] = [s for s in parameter["schema"]["anyOf"] if s.get("type") == "string"]
        assert string["enum"] == list(FORMATS)
        for name in string["enum"]:
            assert f"`{name}`" in parameter["description"]
            assert parse_output_format(name).name == name


def _codes_in_source() -> set[str]:
    """Every ``error_code = "…"`` of an exception class (class level), and the web layer's
    HTTP codes. The client library (``audiocache.client``) answers none: it reads them."""
    codes: set[str] = set()
    for path in SRC.rglob("*.py"):
        if path.is_relative_to(SRC / "client"):  # the client's own codes (CONNECTION_FAILED…)
            continue
        attribute = r'^    error_code(?::\s*str)?\s*=\s*"([A-Z_]+)"'  # class level
        codes |= set(re.findall(attribute, path.read_text(), re.MULTILINE))
    web = (SRC / "api" / "errors.py").read_text()
    table = web.split("HTTP_CODES = {", 1)[1].split("}", 1)[0]
    codes |= set(re.findall(r'"([A-Z_]+)"', table))
    codes |= set(re.findall(r'OTHER_HTTP_CODE = "([A-Z_]+)"', web))
    return codes


async def test_every_error_code_is_listed(client: httpx.AsyncClient) -> None:
    schema = await _openapi(client)
    source = _codes_in_source()
    assert {"NOT_READY", "INVALID_SORT", "UNSUPPORTED_MEDIA_TYPE", "HTTP_ERROR"} <= source
    enum = set(schema["components"]["schemas"]["ErrorCode"]["enum"])
    assert source <= enum, source - enum
    catalogue = {c["code"]: c for c in schema["info"]["x-error-codes"]}
    assert set(catalogue) == enum
    for code, entry in catalogue.items():
        assert 400 <= entry["status"] < 600 and entry["description"], entry
        assert f"| `{code}` | {entry['status']} |" in schema["info"]["description"]


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/ui/"])
async def test_served_html_names_no_other_host(api: Api, page: str) -> None:
    r = await api.client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", r.text, re.I), r.text
    parser = _Assets()
    parser.feed(r.text)
    assets = [u for u in parser.urls if not u.startswith(("#", "data:"))]
    assert assets, "the page loads its script and style"
    for url in assets:
        assert url.startswith("/"), url
        asset = await api.client.get(url)
        assert asset.status_code == 200, url


async def test_docs_and_redoc_read_the_served_openapi(client: httpx.AsyncClient) -> None:
    for page, script in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        r = await client.get(page)
        assert f"/docs/static/{script}" in r.text and "/openapi.json" in r.text, page
        # the browser itself fetches from this origin only
        assert "default-src 'self'" in r.headers["content-security-policy"], page


async def test_every_output_format_answers_in_a_documented_media_type(api: Api) -> None:
    await api.create_agent("bot")
    entry = await api.seed_entry("bot", "Documented formats")
    schema = await _openapi(api.client)
    download = schema["paths"]["/v1/agents/{agentId}/audio-cache/{entryId}/file"]["get"]
    speak = schema["paths"]["/v1/agents/{agentId}/tts"]["post"]
    for name in FORMATS:
        r = await api.client.get(
            f"/v1/agents/bot/audio-cache/{entry}/file",
            params={"output_format": name},
            headers=api.headers,
        )
        assert r.status_code == 200, (name, r.text[:200])
        media_type = r.headers["content-type"].split(";")[0]
        assert media_type in download["responses"]["200"]["content"], name
        r = await api.speak("bot", "Documented formats", output_format=name)
        assert r.status_code == 200, (name, r.text[:200])
        assert r.headers["content-type"].split(";")[0] in speak["responses"]["200"]["content"]
