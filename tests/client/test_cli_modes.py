"""The CLI on the data folder and on a running server (--url/--key): the same scenario,
the same answers. Commands run in-process (typer's runner) next to a live server on the
same database and blobs; one test runs the real executable for the error line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from live_client import Live
from support import audiocache_cli, backend_env, free_port, sine_wav
from typer.testing import CliRunner, Result

from audiocache.cli import app


@pytest.fixture(params=["local", "remote"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Cli:
    def __init__(self, live: Live, mode: str) -> None:
        self.live = live
        if mode == "remote":
            self.where = ["--url", live.url, "--key", live.key]
            self.env = {}
        else:
            self.where = ["--data-dir", str(live.settings.data_dir)]
            self.env = backend_env(live.settings)
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True) -> Result:
        result = self.runner.invoke(app, [*args, *self.where], env=self.env)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        if ok:
            assert result.exit_code == 0, (args, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> object:
        return json.loads(self(*args).stdout)


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_the_same_scenario_on_the_data_folder_and_on_the_server(
    live: Live, mode: str, tmp_path: Path
) -> None:
    cli = Cli(live, mode)
    made = cli("agents", "create", "--account", "acme", "--name", "Desk", "--agent-id", "desk",
               "--voice", "en-us")  # fmt: skip
    assert made.stdout.strip() == "desk"
    cli("agents", "policy", "desk", "always")
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("Good morning\nHow can I help\n")
    warmed = cli("warm", str(phrases), "--agent", "desk")
    assert json.loads(warmed.stdout.splitlines()[-1]) == {
        "synthesized": 2,
        "alreadyCached": 0,
        "failed": 0,
    }

    listed = cli.json("cache", "ls", "desk", "--json", "--sort", "transcript:asc")
    assert isinstance(listed, list)
    assert [e["transcript"] for e in listed] == ["Good morning", "How can I help"]
    assert all(e["pinned"] for e in listed)
    paged = cli.json("cache", "ls", "desk", "--json", "--limit", "1", "--all")
    assert isinstance(paged, list) and len(paged) == 2
    found = cli.json("cache", "ls", "desk", "--json", "--filter", "transcript:contains:morning")
    assert isinstance(found, list) and [e["transcript"] for e in found] == ["Good morning"]
    entry = listed[0]["id"]

    out = tmp_path / "got.wav"
    got = cli("cache", "get", "desk", entry, "-o", str(out))
    with live.client() as client:
        assert out.read_bytes() == client.download("desk", entry)
    assert f"{out}: {out.stat().st_size} bytes" in " ".join(got.stderr.split())

    take = tmp_path / "take.wav"
    take.write_bytes(sine_wav(0.25))
    cli("cache", "replace", "desk", entry, str(take))
    cli("cache", "get", "desk", entry, "-o", str(out))
    assert out.read_bytes() == take.read_bytes()
    cli("cache", "replace", "desk", entry, str(take), "--text", "Good evening", "--config", "{}")
    assert cli.json("cache", "ls", "desk", "--json", "--filter", "transcript:eq:Good evening")

    preview = tmp_path / "preview.wav"
    cli("cache", "preview", "desk", entry, "A preview", "-o", str(preview))
    assert preview.read_bytes()[:4] == b"RIFF"

    cli("cache", "regenerate", "desk", entry)
    cli("cache", "pin", "desk", entry, "--unpin")
    after = {e["id"]: e for e in cli.json("cache", "ls", "desk", "--json")}  # type: ignore[union-attr]
    assert after[entry]["regenerated"] and not after[entry]["pinned"]

    stats = cli.json("stats", "desk", "--json")
    assert isinstance(stats, dict) and (stats["entries"], stats["pinned"]) == (2, 1)

    assert cli.json("agents", "list", "acme", "--json") == [
        {"agentId": "desk", "name": "Desk", "admission": "always"}
    ]
    copied = cli("agents", "duplicate", "desk", "--name", "Copy", "--new-agent-id", "copy")
    assert copied.stdout.strip() == "copy"
    shown = cli.json("agents", "show", "copy")
    assert isinstance(shown, dict) and shown["admission"] == "always"
    assert shown["usage"]["entries"] == 2
    cli("agents", "delete", "copy")

    archive = tmp_path / "desk.tar"
    exported = json.loads(cli("export", "--agent", "desk", str(archive)).stdout)
    assert exported == {"file": str(archive), "entries": 2, "bytes": archive.stat().st_size}
    cli("agents", "create", "--account", "acme", "--name", "Restored", "--agent-id", "restored")
    imported = json.loads(cli("import", "--agent", "restored", str(archive)).stdout)
    assert (imported["total"], imported["created"], imported["failed"]) == (2, 2, 0)
    restored = cli.json("cache", "ls", "restored", "--json", "--sort", "transcript:asc")
    assert [e["transcript"] for e in restored] == ["Good evening", "How can I help"]  # type: ignore[union-attr]

    voice = cli("voices", "add", "--account", "acme", "--name", "Robot", "--provider", "espeak",
                "--provider-voice-id", "en-gb").stdout.strip()  # fmt: skip
    assert [v["id"] for v in cli.json("voices", "ls", "--account", "acme", "--json")] == [voice]  # type: ignore[union-attr]
    assert cli.json("voices", "show", voice, "--account", "acme")["name"] == "Robot"  # type: ignore[index]

    removed = cli("cache", "rm", "desk", entry, "999999", ok=False)
    assert removed.exit_code == 1
    assert json.loads(removed.stdout) == {"deleted": [entry], "failed": ["999999"]}
    assert [e["id"] for e in cli.json("cache", "ls", "desk", "--json")] == [listed[1]["id"]]  # type: ignore[index]

    assert "not found" in one_error_line(cli("cache", "ls", "nobody", ok=False)).lower()
    assert "INVALID_SORT" in one_error_line(
        cli("cache", "ls", "desk", "--sort", "loudness:up", ok=False)
    )
    missing = one_error_line(cli("cache", "get", "desk", "424242", ok=False))
    assert "not found" in missing.lower()


def test_remote_errors_are_one_line(live: Live) -> None:
    runner = CliRunner()
    denied = runner.invoke(app, ["cache", "ls", "desk", "--url", live.url, "--key", "ack_no"])
    assert "UNAUTHORIZED" in one_error_line(denied)
    reader = runner.invoke(
        app,
        ["agents", "create", "--account", "acme", "--name", "X"],
        env={"AUDIOCACHE_URL": live.url, "AUDIOCACHE_KEY": live.read_key},
    )
    assert "FORBIDDEN" in one_error_line(reader)


def test_a_command_needing_data_says_where_it_looked(tmp_path: Path) -> None:
    runner = CliRunner()
    empty = tmp_path / "nothing-here"
    result = runner.invoke(app, ["cache", "ls", "desk", "--data-dir", str(empty)])
    line = one_error_line(result)
    assert str(empty) in line and "--data-dir" in line and not empty.exists()
    xdg = tmp_path / "xdg"
    result = runner.invoke(app, ["stats", "desk"], env={"XDG_DATA_HOME": str(xdg)})
    assert str(xdg / "audiocache") in one_error_line(result)
    assert runner.invoke(app, ["init"], env={"XDG_DATA_HOME": str(xdg)}).exit_code == 0
    assert (xdg / "audiocache" / "audiocache.db").exists()


def test_the_executable_prints_one_line_when_the_server_is_unreachable(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [*audiocache_cli(), "cache", "ls", "desk", "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: cannot connect to {url}: All connection attempts failed (CONNECTION_FAILED)"
    ]
    assert not (tmp_path / "data").exists()


def test_a_server_knows_the_keys_account(live: Live) -> None:
    runner = CliRunner()
    remote = {"AUDIOCACHE_URL": live.url, "AUDIOCACHE_KEY": live.key}
    made = runner.invoke(app, ["agents", "create", "--name", "Own"], env=remote)
    assert made.exit_code == 0, made.stderr
    listed = runner.invoke(app, ["agents", "list", "--json"], env=remote)
    assert [a["agentId"] for a in json.loads(listed.stdout)] == [made.stdout.strip()]
    robot = ["--name", "R", "--provider", "espeak", "--provider-voice-id", "en-gb"]
    voice = runner.invoke(app, ["voices", "add", *robot], env=remote)
    assert voice.exit_code == 0, voice.stderr
    local = ["--data-dir", str(live.settings.data_dir)]
    needs = runner.invoke(app, ["agents", "list", "--json", *local], env=backend_env(live.settings))
    assert "--account" in one_error_line(needs)
