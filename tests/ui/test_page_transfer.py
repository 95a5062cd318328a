"""Export, import and bulk takes through the page, in chromium against a live server: the
exported file is the agent's archive, importing it into another agent through the page gives
that agent the same transcripts and audio bytes, and a refused upload shows its message.
What the page did is checked through the public API."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import ACCOUNT, AGENT, Site
from conftest import sign_in as sign_in_only
from playwright.sync_api import expect
from support import sine_wav

OTHER = "desk"  # agent B, the import's target
PHRASES = ["Thanks for calling", "Please hold the line", "Your order has shipped"]


def listed(site: Site, agent: str) -> list[dict]:
    r = site.api.get(f"/v1/agents/{agent}/audio-cache", params={"limit": 200})
    assert r.status_code == 200, r.text
    return r.json()["entries"]


def audio(site: Site, agent: str, entry_id: str) -> bytes:
    r = site.api.get(f"/v1/agents/{agent}/audio-cache/{entry_id}/file")
    assert r.status_code == 200, r.text
    return r.content


def by_transcript(site: Site, agent: str) -> dict[str, str]:
    """transcript → sha256 of the agent's audio for it, downloaded through the API."""
    return {
        e["transcript"]: hashlib.sha256(audio(site, agent, e["id"])).hexdigest()
        for e in listed(site, agent)
    }


@pytest.fixture(scope="module", autouse=True)
def agents(site: Site) -> None:
    for text in PHRASES:
        r = site.api.post(f"/v1/agents/{AGENT}/tts", json={"text": text})
        assert r.status_code == 200, r.text
    body = {
        "name": "Front desk",
        "agentId": OTHER,
        "responseSettings": {"greeting": "Hi", "languageCode": "en-US"},
        "voiceSettings": {"voiceId": "fake:alpha"},
    }
    r = site.api.post(f"/v1/accounts/{ACCOUNT}/agents", json=body)
    assert r.status_code == 200, r.text


def sign_in(page, site: Site) -> None:  # type: ignore[no-untyped-def]
    sign_in_only(page, site)
    # signed in once the page knows the account: a goto before that would lose the key
    expect(page.locator("#whoami")).to_have_text(f"Account {ACCOUNT}")


def export_through_the_page(page, site: Site, folder: Path) -> Path:  # type: ignore[no-untyped-def]
    page.goto(f"{site.url}/ui/?agent={AGENT}")
    expect(page.locator("#rows tr")).to_have_count(len(listed(site, AGENT)))
    with page.expect_download() as download:
        page.get_by_role("button", name="Export archive").click()
    assert download.value.suggested_filename == f"{AGENT}.audiocache.tar"
    expect(page.locator("#transfer-summary")).to_contain_text(f"Exported {AGENT}.audiocache.tar")
    saved = folder / download.value.suggested_filename  # what a browser would save it as
    download.value.save_as(saved)
    return saved


def test_export_downloads_the_agents_archive(page, site: Site, tmp_path: Path) -> None:
    sign_in(page, site)
    saved = export_through_the_page(page, site, tmp_path)
    with tarfile.open(saved) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        members = {
            m.name: hashlib.sha256(archive.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
            for m in archive.getmembers()
            if m.name.startswith("audio/")
        }
    assert manifest["format"] == "audiocache-export"
    entries = listed(site, AGENT)
    assert sorted(r["id"] for r in manifest["entries"]) == sorted(e["id"] for e in entries)
    for record in manifest["entries"]:
        downloaded = hashlib.sha256(audio(site, AGENT, record["id"])).hexdigest()
        assert record["sha256"] == downloaded == members[record["file"]]


def test_import_the_export_into_another_agent(page, site: Site, tmp_path: Path) -> None:
    sign_in(page, site)
    saved = export_through_the_page(page, site, tmp_path)
    page.get_by_role("link", name="Front desk").click()
    expect(page.locator("#cache-title")).to_have_text(f"Audio cache of {OTHER}")
    expect(page.locator("#transfer-summary")).to_be_empty()  # agent A's report is not B's
    expect(page.locator("#total")).to_have_text("0 entries")
    # keyboard alone: the labelled file input opens the picker, Enter on Import sends it
    page.get_by_label("Import archive").focus()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(saved)
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    n = len(PHRASES)
    expect(page.locator("#transfer-summary")).to_have_text(
        f"Imported {AGENT}.audiocache.tar: {n} entries in the archive — "
        f"{n} created, 0 replaced, 0 unchanged, 0 failed."
    )
    expect(page.locator("#total")).to_have_text(f"{n} entries")  # the table was refreshed
    expect(page.locator("#error")).to_be_hidden()
    assert by_transcript(site, OTHER) == by_transcript(site, AGENT)

    # again: nothing changes, and the page says so
    page.get_by_label("Import archive").set_input_files(saved)
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator("#transfer-summary")).to_contain_text(
        f"0 created, 0 replaced, {n} unchanged"
    )
    assert by_transcript(site, OTHER) == by_transcript(site, AGENT)


def test_a_broken_archive_shows_the_api_message(page, site: Site) -> None:
    before = by_transcript(site, OTHER)
    sign_in(page, site)
    page.goto(f"{site.url}/ui/?agent={OTHER}")
    page.get_by_label("Import archive").set_input_files(
        {"name": "broken.tar", "mimeType": "application/x-tar", "buffer": b"not a tar at all" * 64}
    )
    page.get_by_role("button", name="Import", exact=True).click()
    error = page.get_by_role("alert")
    expect(error).to_be_visible()
    expect(error).to_contain_text("(INVALID_ARCHIVE, 400)")
    message = error.inner_text().split(" (INVALID_ARCHIVE")[0].strip()
    assert message  # the envelope's words, not just the code
    expect(page.locator("#transfer-summary")).to_be_empty()  # no "Importing…" left behind
    expect(page.get_by_role("button", name="Import", exact=True)).to_be_enabled()
    assert by_transcript(site, OTHER) == before  # refused whole


def test_upload_takes_creates_and_reports(page, site: Site) -> None:
    wav = sine_wav(0.75, freq=330.0)
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as archive:
        archive.writestr("takes.csv", "file,transcript\nwelcome.wav,Welcome to the front desk\n")
        archive.writestr("welcome.wav", wav)
    sign_in(page, site)
    page.goto(f"{site.url}/ui/?agent={OTHER}")
    page.get_by_label("Upload takes").set_input_files(
        {"name": "takes.zip", "mimeType": "application/zip", "buffer": body.getvalue()}
    )
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#transfer-summary")).to_have_text(
        "Takes from takes.zip: 1 created, 0 replaced, 0 failed, 0 skipped."
    )
    row = page.locator("tr", has_text="Welcome to the front desk")
    expect(row.locator(".badge", has_text="Pinned")).to_be_visible()
    [entry] = [e for e in listed(site, OTHER) if e["transcript"] == "Welcome to the front desk"]
    assert audio(site, OTHER, entry["id"]) == wav


def test_a_takes_mapping_error_shows_the_api_message(page, site: Site) -> None:
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as archive:
        archive.writestr("takes.csv", "name,words\nx.wav,Nothing maps\n")
        archive.writestr("x.wav", sine_wav(0.25))
    sign_in(page, site)
    page.goto(f"{site.url}/ui/?agent={OTHER}")
    page.get_by_label("Upload takes").set_input_files(
        {"name": "bad.zip", "mimeType": "application/zip", "buffer": body.getvalue()}
    )
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("takes.csv: the first line must name")
