"""``audiocache export``, ``import`` and ``takes upload`` as an operator runs them: on data
folders, and with ``--url``/``--key`` against a live server."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
from support import ALL_GRANTS, LiveServer, sine_wav


def cli(*args: str, data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--data-dir", str(data_dir)] if data_dir is not None else []
    return subprocess.run(
        [sys.executable, "-m", "audiocache", *args, *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def entries_of(archive: Path) -> list[tuple]:
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    fields = ("transcript", "provider", "voice", "language", "config", "flags", "sha256")
    return sorted(tuple(json.dumps(e[f]) for f in fields) for e in manifest["entries"])


def damaged(archive: Path, out: Path) -> Path:
    with tarfile.open(archive) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    name = next(n for n in files if n.endswith(".wav"))
    files[name] = files[name][:-10] + b"\xff" * 10
    with tarfile.open(out, "w") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def _finished_bar(label: str, stderr: str) -> bool:
    """A progress bar ``label`` at its end: rich, off a terminal, prints its last state
    once (``2.0/2.0 kB``, what was sent of the whole)."""
    bar = re.compile(rf"^{re.escape(label)} \S+ (\d+(?:\.\d+)?)/\1 [kMG]?B\b", re.MULTILINE)
    return bar.search(stderr) is not None


def test_export_then_import_into_a_fresh_data_folder(tmp_path: Path) -> None:
    source, fresh = tmp_path / "a", tmp_path / "b"
    made = cli("agents", "create", "--account", "acme", "--name", "Desk", "--agent-id", "desk",
               "--voice", "en-us", data_dir=source)  # fmt: skip
    assert made.returncode == 0, made.stderr
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("Hello there\nPlease hold the line\nGoodbye\n")
    assert cli("warm", "--agent", "desk", str(phrases), data_dir=source).returncode == 0

    archive = tmp_path / "desk.tar"
    exported = ok(cli("export", "--agent", "desk", str(archive), data_dir=source))
    assert exported["entries"] == 3 and archive.stat().st_size == exported["bytes"]
    assert not (tmp_path / "desk.tar.part").exists()

    missing = cli("import", "--agent", "front", str(archive), data_dir=fresh)
    assert missing.returncode == 1 and "give --account" in missing.stderr
    first = ok(cli("import", "--agent", "front", "--account", "acme", str(archive), data_dir=fresh))
    assert (first["created"], first["unchanged"], first["failed"]) == (3, 0, 0)
    again = cli("import", "--agent", "front", "--account", "acme", str(archive), data_dir=fresh)
    assert (ok(again)["created"], ok(again)["unchanged"]) == (0, 3)
    assert "nothing changed" in again.stderr

    copy = tmp_path / "front.tar"
    ok(cli("export", "--agent", "front", str(copy), data_dir=fresh))
    assert entries_of(copy) == entries_of(archive)  # same texts, voices, flags, audio

    refused = cli("import", "--agent", "other", "--account", "acme",
                  str(damaged(archive, tmp_path / "bad.tar")), data_dir=fresh)  # fmt: skip
    assert refused.returncode == 1 and "INVALID_ARCHIVE" in refused.stderr
    assert "sha256" in refused.stderr and "Traceback" not in refused.stderr
    agents = json.loads(cli("agents", "list", "acme", "--json", data_dir=fresh).stdout)
    assert [a["agentId"] for a in agents] == ["front"]  # a refused archive creates nothing


def test_the_commands_against_a_live_server(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "srv", env={"AUDIOCACHE_KEY_CACHE_SECONDS": "0"})
    grants = [arg for g in ALL_GRANTS for arg in ("--grant", g)]
    key = server.cli("keys", "create", "--account", "acme", *grants).stdout.splitlines()[-1]
    server.start()
    try:
        headers = {"X-API-KEY": key}
        for agent in ("desk", "copy"):
            body = {
                "name": agent,
                "agentId": agent,
                "responseSettings": {"greeting": "Hi", "languageCode": "en-US"},
                "voiceSettings": {"voiceId": "en-us"},
            }
            r = httpx.post(f"{server.url}/v1/accounts/acme/agents", json=body, headers=headers)
            assert r.status_code == 200, r.text
        phrases = [{"text": "Welcome back"}, {"text": "One moment please"}]
        r = httpx.post(
            f"{server.url}/v1/agents/desk/audio-cache/warm",
            json={"phrases": phrases},
            headers=headers,
            timeout=30,
        )
        assert r.status_code == 200, r.text
        remote = ("--url", server.url, "--key", key)

        archive = tmp_path / "desk.tar"
        assert ok(cli("export", "--agent", "desk", str(archive), *remote))["entries"] == 2
        imported = cli("import", "--agent", "copy", str(archive), *remote)
        first = ok(imported)
        assert (first["created"], first["unchanged"]) == (2, 0)
        assert _finished_bar("uploading", imported.stderr)
        assert ok(cli("import", "--agent", "copy", str(archive), *remote))["unchanged"] == 2
        bad = cli("import", "--agent", "copy", str(damaged(archive, tmp_path / "x.tar")), *remote)
        assert bad.returncode == 1 and "INVALID_ARCHIVE" in bad.stderr

        takes = tmp_path / "takes"
        takes.mkdir()
        (takes / "welcome.wav").write_bytes(sine_wav(0.3))
        (takes / "new.wav").write_bytes(sine_wav(0.2, freq=600.0))
        mapping = tmp_path / "lines.csv"
        mapping.write_text("file,transcript\nwelcome.wav,Welcome back\nnew.wav,A new line\n")
        upload = cli("takes", "upload", "--agent", "copy", str(takes), "--map", str(mapping),
                     *remote)  # fmt: skip
        assert ok(upload) == {"created": 1, "replaced": 1, "failed": 0, "skipped": 0}
        assert "replaced  welcome.wav" in upload.stderr
        assert _finished_bar("uploading takes", upload.stderr)  # the packed tar, all sent
        assert "Traceback" not in upload.stderr
        r = httpx.post(
            f"{server.url}/v1/agents/copy/tts", json={"text": "A new line"}, headers=headers
        )
        assert r.headers["x-audio-cache"] == "hit" and r.content == sine_wav(0.2, freq=600.0)
        wrong_key = cli("export", "--agent", "desk", str(archive), "--url", server.url,
                        "--key", "nope")  # fmt: skip
        assert wrong_key.returncode == 1 and "UNAUTHORIZED" in wrong_key.stderr
        assert archive.exists()  # a failed export leaves the earlier archive alone
    finally:
        server.stop()


def test_takes_upload_on_a_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "d"
    made = cli("agents", "create", "--account", "acme", "--name", "Desk", "--agent-id", "desk",
               "--voice", "en-us", data_dir=data)  # fmt: skip
    assert made.returncode == 0, made.stderr
    takes = tmp_path / "takes.zip"
    import zipfile

    with zipfile.ZipFile(takes, "w") as archive:
        archive.writestr("map.json", json.dumps({"a.wav": "Thanks for waiting", "b.wav": "Bye"}))
        archive.writestr("a.wav", sine_wav(0.2))
        archive.writestr("b.wav", b"not a wav")
    result = cli("takes", "upload", "--agent", "desk", str(takes), data_dir=data)
    assert result.returncode == 1  # one take failed
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "created": 1,
        "replaced": 0,
        "failed": 1,
        "skipped": 0,
    }
    assert "failed  b.wav" in result.stderr
    exported = tmp_path / "out.tar"
    ok(cli("export", "--agent", "desk", str(exported), data_dir=data))
    with tarfile.open(exported) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    [entry] = manifest["entries"]
    assert entry["transcript"] == "Thanks for waiting"
    assert entry["flags"] == {
        "imported": True,
        "regenerated": False,
        "pinned": True,
        "warmed": False,
    }
    assert entry["audioFilename"] == "a.wav"
