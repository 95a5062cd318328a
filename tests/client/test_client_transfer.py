"""The client's export/import, bulk takes, audit log and whoami against a live server."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from live_client import ACCOUNT, Live, new_agent
from support import sine_wav

from audiocache.client import Client, Forbidden, InvalidRequest, Phrase


def tar_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_export_import_takes_audit_and_whoami(live: Live, ac: Client, tmp_path: Path) -> None:
    agent = new_agent(ac)
    spoken = {text: ac.tts(agent, Phrase(text)) for text in ("Hello there", "Goodbye now")}

    archive = tmp_path / "desk.tar"
    size = ac.export_to(agent, archive)
    assert size == archive.stat().st_size and b"".join(ac.iter_export(agent)) != b""
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "manifest.json" in names and sum(n.startswith("audio/") for n in names) == 2

    new_agent(ac, "copy")
    report = ac.import_archive("copy", archive)  # streamed from the file
    assert (report.total, report.created, report.failed) == (2, 2, 0)
    again = ac.import_archive("copy", archive.read_bytes())
    assert (again.created, again.unchanged) == (0, 2)
    copied = {e.transcript: e for e in ac.iter_entries("copy")}
    assert set(copied) == set(spoken)
    hello = copied["Hello there"].id
    assert ac.download("copy", hello) == spoken["Hello there"].audio
    with pytest.raises(InvalidRequest) as damaged:
        ac.import_archive("copy", b"not a tar archive at all")
    assert damaged.value.status == 400

    studio = sine_wav(0.3, freq=330)
    takes = tar_of({"hello.wav": studio, "map.csv": b"file,transcript\nhello.wav,Hello there\n"})
    uploaded = ac.upload_takes("copy", takes)
    assert (uploaded.replaced, uploaded.failed) == (1, 0)
    assert ac.download("copy", hello) == studio
    history = ac.list_takes("copy", hello)
    assert [t.reason for t in history] == ["replace"]
    assert ac.download_take("copy", hello, history[0].id) == spoken["Hello there"].audio
    assert ac.restore_take("copy", hello, history[0].id).id == hello
    assert ac.download("copy", hello) == spoken["Hello there"].audio

    me = ac.whoami()
    assert me.account_id == ACCOUNT and "audio_cache:read" in me.scopes
    with pytest.raises(Forbidden):
        ac.audit_log()  # the audit log wants the "*" grant
    with live.client(key=live.admin_key) as admin:
        page = admin.audit_log(operation="importAudioCache")
        assert page.total_count == 3 and [e["status"] for e in page.events] == [400, 200, 200]
