"""``AUDIOCACHE_TRUSTED_PROXIES`` on a real ``audiocache serve``: a write whose connection
comes from a trusted proxy is audited with the client address its X-Forwarded-For names (a
forged address further left in the header is ignored); with the peer not trusted the header
is ignored and the connection's own address is recorded."""

from __future__ import annotations

from pathlib import Path

import httpx
import pydantic
import pytest
from support import LiveServer

from audiocache.config import Settings

CLIENT = "203.0.113.7"  # what nginx would append: the address it saw
FORGED = "198.51.100.1"  # what a client could put in its own X-Forwarded-For


def _audited_addresses(env: dict[str, str], data_dir: Path) -> list[str | None]:
    server = LiveServer(data_dir, env=env)
    key = server.cli("keys", "create", "--account", "acme", "--grant", "*").stdout.split()[-1]
    server.start()
    try:
        for n, forwarded in enumerate((CLIENT, f"{FORGED}, {CLIENT}", None)):
            body = {"name": f"a{n}", "agentId": f"a{n}", "responseSettings": {"greeting": "Hi"}}
            headers = {"X-API-KEY": key, **({"X-Forwarded-For": forwarded} if forwarded else {})}
            r = httpx.post(f"{server.url}/v1/accounts/acme/agents", json=body, headers=headers)
            assert r.status_code == 200, r.text
        r = httpx.get(f"{server.url}/v1/accounts/acme/audit-log", headers={"X-API-KEY": key})
        assert r.status_code == 200, r.text
        events = r.json()["events"]
    finally:
        server.stop()
    assert [e["agentId"] for e in events] == ["a2", "a1", "a0"]
    return [e["address"] for e in reversed(events)]


def test_a_trusted_proxys_forwarded_address_is_audited(tmp_path: Path) -> None:
    # The default trusts loopback: the test's connections come from 127.0.0.1, as a local
    # nginx's would.
    assert _audited_addresses({}, tmp_path / "default") == [CLIENT, CLIENT, "127.0.0.1"]


def test_an_untrusted_peers_forwarded_address_is_ignored(tmp_path: Path) -> None:
    env = {"AUDIOCACHE_TRUSTED_PROXIES": "10.0.0.0/8"}
    assert _audited_addresses(env, tmp_path / "other") == ["127.0.0.1"] * 3


def test_a_trusted_proxy_must_be_an_address_or_network() -> None:
    assert Settings(trusted_proxies=" 10.0.0.5, fd00::/8 ,*").trusted_proxy_list() == [
        "10.0.0.5",
        "fd00::/8",
        "*",
    ]
    assert Settings(trusted_proxies="").trusted_proxy_list() == []
    with pytest.raises(pydantic.ValidationError, match="'nginx' is not an address"):
        Settings(trusted_proxies="127.0.0.1,nginx")
