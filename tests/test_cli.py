"""The CLI against a real data folder (subprocesses, as an operator would run it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
from support import LiveServer


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audiocache", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_keys_lifecycle(tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = run(data, "keys", "create", "--account", "acme", "--grant", "audio_cache:read")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("ack_")
    assert key not in (data / "audiocache.db").read_bytes().decode("latin-1")  # only a hash
    listed = json.loads(run(data, "keys", "list", "--json").stdout)
    assert [(k["account"], k["grants"], k["revoked"]) for k in listed] == [
        ("acme", ["audio_cache:read"], False)
    ]
    bad = run(data, "keys", "create", "--account", "acme", "--grant", "everything")
    assert bad.returncode != 0 and "unknown permission" in bad.stderr
    revoked = run(data, "keys", "revoke", listed[0]["keyId"])
    assert revoked.returncode == 0
    assert json.loads(run(data, "keys", "list", "--json").stdout)[0]["revoked"] is True
    assert run(data, "keys", "revoke", listed[0]["keyId"]).returncode == 1


def test_serve_uses_the_key_and_revocation_takes_effect(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "srv", env={"AUDIOCACHE_KEY_CACHE_SECONDS": "0"})
    created = server.cli("keys", "create", "--account", "acme", "--grant", "agents:read")
    key = created.stdout.strip().splitlines()[-1]
    server.start()
    try:
        url = f"{server.url}/v1/accounts/acme/agents"
        assert httpx.get(url, headers={"X-API-KEY": key}).status_code == 200
        key_id = json.loads(server.cli("keys", "list", "--json").stdout)[0]["keyId"]
        server.cli("keys", "revoke", key_id)
        assert httpx.get(url, headers={"X-API-KEY": key}).status_code == 401
    finally:
        server.stop()


def test_agents_and_policy_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = run(data, "agents", "create", "--account", "acme", "--name", "Desk", "--agent-id", "d1")
    assert made.returncode == 0 and made.stdout.strip() == "d1"
    assert run(data, "agents", "policy", "d1", "always").returncode == 0
    listed = json.loads(run(data, "agents", "list", "acme", "--json").stdout)
    assert listed == [{"agentId": "d1", "name": "Desk", "admission": "always"}]
    assert run(data, "agents", "policy", "nobody", "always").returncode == 1


def test_an_agent_id_used_by_two_accounts_needs_account(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for account in ("acme", "globex"):
        made = run(data, "agents", "create", "--account", account, "--name", "F", "--agent-id", "f")
        assert made.returncode == 0 and made.stdout.strip() == "f", made.stderr
    ambiguous = run(data, "agents", "policy", "f", "always")
    assert ambiguous.returncode == 1 and "--account" in ambiguous.stderr
    assert "acme, globex" in ambiguous.stderr
    assert run(data, "agents", "policy", "f", "always", "--account", "globex").returncode == 0
    for account, admission in (("acme", "default"), ("globex", "always")):
        listed = json.loads(run(data, "agents", "list", account, "--json").stdout)
        assert [(a["agentId"], a["admission"]) for a in listed] == [("f", admission)]
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("Hello\n")
    warm = run(data, "warm", "--agent", "f", str(phrases))
    assert warm.returncode == 1 and "--account" in warm.stderr
    regen = run(data, "regenerate", "--agent", "f", "1")
    assert regen.returncode == 1 and "--account" in regen.stderr


def test_check_and_gc_on_an_empty_install(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run(data, "init").returncode == 0
    report = json.loads(run(data, "check", "--json").stdout)
    assert report["entries"] == 0 and report["rowsWithoutBlob"] == []
    assert run(data, "gc", "--grace-seconds", "0", "--json").returncode == 0


def test_agents_policy_sets_eviction_options_and_keeps_those_not_given(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = run(data, "agents", "create", "--account", "acme", "--name", "E", "--agent-id", "e1")
    assert made.returncode == 0, made.stderr

    def policy(*args: str) -> str:
        done = run(data, "agents", "policy", "e1", *args)
        assert done.returncode == 0, done.stderr
        return " ".join(done.stderr.split())  # as printed, whatever the line wrapping

    policy("always", "--max-entries", "3", "--eviction", "lfu")
    second = policy("never", "--ttl-seconds", "60")
    assert "max_entries 3" in second and "eviction lfu" in second
    assert "ttl_seconds 60" in second and "max_bytes none" in second
    cleared = policy("never", "--max-entries", "none")
    assert "max_entries none" in cleared and "ttl_seconds 60" in cleared
    bad = run(data, "agents", "policy", "e1", "never", "--eviction", "fifo")
    assert bad.returncode == 1 and "eviction must be one of" in " ".join(bad.stderr.split())
    assert run(data, "agents", "policy", "e1", "never", "--max-bytes", "lots").returncode == 2


def test_a_usage_error_is_one_line_with_exit_code_2(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cases = {
        ("cache", "ls", "desk", "--foo"): "error: no such option: --foo (see audiocache cache ls",
        ("cache", "ls"): "error: missing argument 'agent' (see audiocache cache ls --help)",
        ("nope",): "error: no such command 'nope' (see audiocache --help)",
        ("cache", "ls", "desk", "--limit", "lots"): "error: invalid value for '--limit'",
    }
    for args, told in cases.items():
        result = run(data, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.splitlines() == [result.stderr.strip()], (args, result.stderr)
        assert result.stderr.startswith(told), (args, result.stderr)
        assert result.stdout == ""
    helped = subprocess.run(  # no subcommand: the group's help, as before
        [sys.executable, "-m", "audiocache", "cache"], capture_output=True, text=True, timeout=60
    )
    assert helped.returncode == 2 and "ls" in helped.stdout and helped.stderr == ""
