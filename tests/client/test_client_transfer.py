"""The client's export/import, bulk takes, audit log and whoami against a live server."""

from __future__ import annotations

import io
import itertools
import tarfile
import wave
from pathlib import Path

import pytest
from live_client import ACCOUNT, Live, new_agent
from support import sine_wav, tar_of

from audiocache.client import Client, Forbidden, InvalidRequest, Phrase
from audiocache.client.upload import UPLOAD_CHUNK


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


def long_wav(seconds: int) -> bytes:
    """A WAV of ``seconds`` s (one second of tone repeated: quick to make at any length)."""
    second = sine_wav(1.0)
    with wave.open(io.BytesIO(second)) as w:
        pcm = w.readframes(w.getnframes())
        params = w.getparams()
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setparams(params)
        w.writeframes(pcm * seconds)
    return out.getvalue()


def test_an_upload_is_streamed_from_disk_with_its_progress(
    live: Live, ac: Client, tmp_path: Path
) -> None:
    agent = new_agent(ac)
    ac.tts(agent, Phrase("Hello there"))
    studio = long_wav(100)  # 3.2 MB: several chunks
    archive = tmp_path / "takes.tar"
    archive.write_bytes(
        tar_of({"hello.wav": studio, "map.csv": b"file,transcript\nhello.wav,Hello there\n"})
    )
    size = archive.stat().st_size
    seen: list[int] = []
    read_so_far: list[int] = []
    with archive.open("rb") as handle:

        def told(n: int) -> None:
            seen.append(n)
            read_so_far.append(handle.tell())

        report = ac.upload_takes(agent, handle, on_chunk=told)
    assert (report.replaced, report.failed) == (1, 0)
    hello = next(e.id for e in ac.iter_entries(agent))
    assert ac.download(agent, hello) == studio  # every byte arrived
    assert sum(seen) == size and len(seen) >= 4 and max(seen) <= UPLOAD_CHUNK
    # The file is read a chunk at a time as the body goes out, never whole first.
    assert read_so_far == list(itertools.accumulate(seen))

    exported = tmp_path / "desk.tar"
    ac.export_to(agent, exported)
    new_agent(ac, "copy")
    progress: list[int] = []
    imported = ac.import_archive("copy", exported, on_chunk=progress.append)  # a path
    assert (imported.created, imported.failed) == (1, 0)
    assert sum(progress) == exported.stat().st_size and len(progress) >= 4


async def test_the_async_client_streams_an_import_with_its_progress(
    live: Live, tmp_path: Path
) -> None:
    with live.client() as ac:
        agent = new_agent(ac)
        ac.tts(agent, Phrase("Hello there"))
        ac.upload_takes(
            agent,
            tar_of({"a.wav": long_wav(80), "map.csv": b"file,transcript\na.wav,Hello there\n"}),
        )
        archive = tmp_path / "desk.tar"
        ac.export_to(agent, archive)
        new_agent(ac, "copy")
    progress: list[int] = []
    async with live.aclient() as aac:
        report = await aac.import_archive("copy", archive, on_chunk=progress.append)
    assert (report.created, report.failed) == (1, 0)
    assert sum(progress) == archive.stat().st_size and len(progress) >= 3
