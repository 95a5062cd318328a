"""Schemathesis against a live ``audiocache serve``: our own OpenAPI and the reference one.

Two property-based runs against one real server on a loopback port:

* **own** — the OpenAPI the server publishes at ``/openapi.json``. Checks: no 5xx, every
  response matches its declared schema and content type, every status code is declared.
* **reference** — the official Agents API 1.0.11 document in ``shared/reference`` (the in-scope
  paths it holds). Checks: no 5xx; responses the reference documents match its schema and
  content type. The reference leaves most error statuses undocumented (the agents list, for
  one, lists only 200), so status codes are held to our own spec only.

Both runs also check documented response headers, and use schemathesis' ``ignored_auth``
check: a successful request is replayed without the key and with a wrong key, and must then be
refused (401/403). The ``X-API-KEY`` header rides on every generated request; the negative cases
that schemathesis derives by itself (the header left out) stay as generated.

The server and its real data are ``schemathesis_world``'s; ``schemathesis_steering`` steers
generation so that a good share of the requests name those real ids, and ``schemathesis_documents``
builds the two documents at collection (and says why not from a fixture). Both runs share this
module's server and tally, which is why they are not split across modules.

Size: ``SCHEMATHESIS_MAX_EXAMPLES`` fuzzed cases per operation, plus schemathesis' example and
coverage cases. The ``CI=true`` default gives the issue's figure of at least 1,000 generated
requests over both specs, which the last test of the module asserts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis_documents import (
    OWN_OPENAPI,
    REFERENCE_OPENAPI,
    REFERENCE_PATH,
    reference_run_excludes,
)
from schemathesis_steering import prepare, steer_explicit_case
from schemathesis_world import IN_CI, PENDING_KEY, World, live_world

pytestmark = pytest.mark.slow

MIN_REQUESTS_IN_CI = 1000


@schemathesis.check
def status_code_conformance_within_head_limits(ctx: Any, response: Any, case: Any) -> bool | None:
    """``status_code_conformance``, except for 431: the server's answer to a request head past
    its limits (``audiocache.server``; generated query strings can pass 32 KiB), given before
    any route sees the request, so it belongs to no operation."""
    if response.status_code == 431:
        return None
    return status_code_conformance(ctx, response, case)  # type: ignore[no-any-return]


OWN_CHECKS = [
    not_a_server_error,
    status_code_conformance_within_head_limits,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,
]
REFERENCE_CHECKS = [
    not_a_server_error,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,
]


own_schema = prepare(schemathesis.openapi.from_dict(OWN_OPENAPI))


@dataclass
class Tally:
    """Generated requests sent, per spec and per operation, and the statuses they got."""

    sent: Counter[str] = field(default_factory=Counter)
    statuses: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with live_world(tmp_path_factory.mktemp("schemathesis") / "data") as running:
        yield running


@pytest.fixture(scope="module")
def tally() -> Tally:
    """Counts every request the schemathesis tests send; the last test checks the total."""
    return Tally()


def run_case(case: Any, world: World, tally: Tally, spec: str, checks: list[Any]) -> None:
    """Send one generated case (one HTTP request) to our server and check the response."""
    world.ensure()
    steer_explicit_case(case)
    if case.headers and case.headers.get("X-API-KEY") == PENDING_KEY:
        case.headers["X-API-KEY"] = world.key
    operation = f"{spec} {case.operation.label}"
    tally.sent[spec] += 1
    tally.sent[operation] += 1
    # Always our server: the reference's `servers` name the real poly.ai hosts.
    response = case.call_and_validate(base_url=world.url, checks=checks)
    tally.statuses[operation][response.status_code] += 1
    world.observe(case.method.upper(), case.operation.path, case.path_parameters or {}, response)


def test_served_openapi_is_the_one_tested(world: World) -> None:
    served = httpx.get(f"{world.url}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == OWN_OPENAPI


@own_schema.parametrize()
def test_own_openapi(case: Any, world: World, tally: Tally) -> None:
    run_case(case, world, tally, "own", OWN_CHECKS)


if REFERENCE_OPENAPI is not None:
    reference_schema = schemathesis.openapi.from_dict(REFERENCE_OPENAPI)
    if reference_run_excludes() is not None:
        reference_schema = reference_schema.exclude(path_regex=reference_run_excludes())
    reference_schema = prepare(reference_schema)

    @reference_schema.parametrize()
    def test_reference_openapi(case: Any, world: World, tally: Tally) -> None:
        run_case(case, world, tally, "reference", REFERENCE_CHECKS)

else:

    def test_reference_openapi() -> None:
        message = f"reference OpenAPI not found at {REFERENCE_PATH} (set REFERENCE_OPENAPI)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def test_generated_request_count(tally: Tally, world: World) -> None:
    """At least 1,000 generated requests over both specs in CI (fewer locally, for speed)."""
    own, reference = tally.sent["own"], tally.sent["reference"]
    if not own or not reference:
        pytest.skip("the schemathesis runs of this module were not both selected")
    print(
        f"\nschemathesis: {own + reference} generated requests (own {own}, reference"
        f" {reference}); the data was repaired {world.repairs} times"
    )
    for name, statuses in sorted(tally.statuses.items()):
        print(f"  {tally.sent[name]:5d}  {name}  {dict(sorted(statuses.items()))}")
    if IN_CI:
        assert own + reference >= MIN_REQUESTS_IN_CI, tally.sent
