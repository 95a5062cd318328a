"""More of the page, end to end in chromium against a live server: sign-in with the key
alone and sign-out, the columns and badges, sort by every column, each filter, paging with
the total, views as URLs, download, a WAV dropped on a row, regenerate, and a name for every
control. What the page did is checked through the public API."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from conftest import ACCOUNT, AGENT, Site, sign_in
from playwright.sync_api import expect
from support import sine_wav

DASH = "\N{EN DASH}"  # as the page writes a range of rows
COLUMNS = {  # header → the list's sort field
    "Transcript": "transcript",
    "Voice": "voice",
    "Duration": "duration",
    "Hits": "hit_count",
    "Cached": "cached_at",
    "Last hit": "last_hit_at",
}


def say(site: Site, text: str, **extra: str) -> str:
    r = site.api.post(f"/v1/agents/{AGENT}/tts", json={"text": text, **extra})
    assert r.status_code == 200, r.text
    return r.headers["x-audio-cache-entry-id"]


def row_ids(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.locator("#rows tr").evaluate_all("rows => rows.map(r => r.dataset.id)")


@pytest.fixture(scope="module", autouse=True)
def catalogue(site: Site) -> None:
    """Entries that differ in voice, language, duration and hits."""
    say(site, "Catalogue alpha one")
    say(site, "Catalogue beta voice", voice="fake:beta")
    say(site, "Catalogue in French", language="fr-FR")
    say(site, "Catalogue, a much longer phrase than the others are")
    for _ in range(3):
        say(site, "Catalogue alpha one")  # hits


def test_sign_in_with_the_key_alone_then_sign_out(page, site: Site) -> None:
    page.goto(f"{site.url}/ui/")
    expect(page.get_by_label("Account")).to_have_count(0)  # nothing but the key is asked for
    sign_in(page, site)
    expect(page.locator("#whoami")).to_have_text(f"Account {ACCOUNT}")
    expect(page.get_by_role("link", name="Bot")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('audiocache.key')") == site.key
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.get_by_role("link", name="Bot")).to_have_count(0)
    assert page.evaluate("sessionStorage.getItem('audiocache.key')") is None
    page.reload()
    expect(page.get_by_label("API key")).to_be_visible()  # still signed out


def test_columns_badges_and_agent_links(page, site: Site) -> None:
    sign_in(page, site)
    headers = page.locator("thead th").all_inner_texts()
    assert [h.strip() for h in headers if h.strip() in COLUMNS] == list(COLUMNS)
    link = page.get_by_role("link", name="Bot")
    assert link.get_attribute("href") == f"/ui/?agent={AGENT}"
    link.click()
    expect(page).to_have_url(re.compile(rf"agent={AGENT}"))
    row = page.locator("tr", has_text="Catalogue beta voice")
    expect(row.locator("td").nth(2)).to_have_text("beta")
    expect(row.locator("td").nth(2)).to_have_attribute("title", "fake / beta / en-US")
    hits = page.locator("tr", has_text="Catalogue alpha one").locator("td").nth(4)
    expect(hits).to_have_text("3")


@pytest.mark.parametrize("header", list(COLUMNS))
def test_sort_by_every_column_both_ways(page, site: Site, header: str) -> None:
    field = COLUMNS[header]
    sign_in(page, site)
    button = page.get_by_role("button", name=header, exact=True)
    for direction, aria in (("asc", "ascending"), ("desc", "descending")):
        button.click()
        expect(page).to_have_url(re.compile(rf"sort={field}%3A{direction}"))
        expect(page.locator("th", has=button)).to_have_attribute("aria-sort", aria)
        expected = [e["id"] for e in site.entries(sort=f"{field}:{direction}", limit=25)]
        expect(page.locator("#rows tr")).to_have_count(len(expected))
        assert row_ids(page) == expected


def test_each_filter_is_applied_and_kept_in_the_url(page, site: Site) -> None:
    pinned = say(site, "Catalogue pinned phrase")
    assert site.api.put(f"/v1/agents/{AGENT}/audio-cache/{pinned}/pin").status_code == 200
    sign_in(page, site)
    cases = [
        ("Provider", "fill", "fake", "provider=fake", "provider:eq:fake"),
        ("Voice", "fill", "beta", "voice=beta", "voice:eq:beta"),
        ("Language", "fill", "fr-FR", "language=fr-FR", "language:eq:fr-FR"),
        ("Flag", "select", "pinned", "flag=pinned", "pinned:eq:true"),
    ]
    for label, how, value, in_url, clause in cases:
        page.goto(f"{site.url}/ui/?agent={AGENT}")
        control = page.locator("#filters").get_by_label(label)
        control.select_option(value) if how == "select" else control.fill(value)
        page.get_by_role("button", name="Filter").click()
        expect(page).to_have_url(re.compile(re.escape(in_url)))
        expected = [e["id"] for e in site.entries(filter=clause, limit=25)]
        assert expected, clause
        expect(page.locator("#total")).to_have_text(f"{len(expected)} entries")
        assert row_ids(page) == expected
        expect(control).to_have_value(value)  # the form shows the view it is on


def test_paging_shows_the_total_and_back_returns(page, site: Site) -> None:
    for n in range(27):  # letters: a phrase with digits is kept out as personal data
        say(site, f"Paged phrase {chr(97 + n // 26)}{chr(97 + n % 26)}")
    sign_in(page, site)
    page.get_by_role("searchbox", name="Transcript").fill("Paged phrase")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#total")).to_have_text("27 entries")
    expect(page.locator("#page")).to_have_text(f"1{DASH}25 of 27")
    expect(page.get_by_role("button", name="Previous page")).to_be_disabled()
    first = row_ids(page)
    page.get_by_role("button", name="Next page").click()
    expect(page).to_have_url(re.compile(r"offset=25"))
    expect(page.locator("#page")).to_have_text(f"26{DASH}27 of 27")
    expect(page.locator("#rows tr")).to_have_count(2)
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    page.go_back()
    expect(page.locator("#page")).to_have_text(f"1{DASH}25 of 27")
    assert row_ids(page) == first


def test_a_view_url_opens_that_view(page, site: Site) -> None:
    sign_in(page, site)
    page.goto(f"{site.url}/ui/?agent={AGENT}&sort=hit_count%3Adesc&q=Catalogue")
    expect(page.locator("th", has_text="Hits")).to_have_attribute("aria-sort", "descending")
    expect(page.get_by_role("searchbox", name="Transcript")).to_have_value("Catalogue")
    expected = [
        e["id"] for e in site.entries(sort="hit_count:desc", filter="transcript:contains:Catalogue")
    ]
    expect(page.locator("#rows tr")).to_have_count(len(expected))
    assert row_ids(page) == expected


def test_download_saves_the_entry_audio(page, site: Site) -> None:
    entry = say(site, "Download me as a file")
    sign_in(page, site)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download “Download me as a file”").click()
    saved = Path(download.value.path()).read_bytes()
    assert saved == site.api.get(f"/v1/agents/{AGENT}/audio-cache/{entry}/file").content
    assert download.value.suggested_filename.endswith(".wav")


def test_a_wav_dropped_on_a_row_replaces_its_audio(page, site: Site) -> None:
    entry = say(site, "Drop a take on me")
    wav = sine_wav(1.25)
    sign_in(page, site)
    row = page.locator("tr", has_text="Drop a take on me")
    transfer = page.evaluate_handle(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], "dropped.wav", { type: "audio/wav" }));
            return data;
        }""",
        base64.b64encode(wav).decode(),
    )
    row.dispatch_event("dragover", {"dataTransfer": transfer})
    row.dispatch_event("drop", {"dataTransfer": transfer})
    expect(row).to_contain_text("1.25 s")
    expect(row.locator(".badge", has_text="Uploaded")).to_be_visible()
    assert site.api.get(f"/v1/agents/{AGENT}/audio-cache/{entry}/file").content == wav
    [after] = [e for e in site.entries(limit=200) if e["id"] == entry]
    assert after["imported"] is True


def test_regenerate_one_row(page, site: Site) -> None:
    entry = say(site, "Regenerate just me")
    sign_in(page, site)
    page.get_by_role("button", name="Regenerate “Regenerate just me”").click()
    row = page.locator("tr", has_text="Regenerate just me")
    expect(row.locator(".badge", has_text="Regenerated")).to_be_visible()
    [after] = [e for e in site.entries(limit=200) if e["id"] == entry]
    assert after["regenerated"] is True


def test_play_feeds_the_player_the_stored_wav(page, site: Site) -> None:
    say(site, "Play me as stored")
    sign_in(page, site)
    page.get_by_role("button", name="Play “Play me as stored”").click()
    player = page.get_by_label("Player", exact=True)
    expect(player).to_have_attribute("data-format", "wav")
    expect(player).to_have_attribute("src", re.compile(r"^blob:"))


def test_every_control_has_a_name_for_screen_readers(page, site: Site) -> None:
    sign_in(page, site)
    expect(page.locator("#rows tr").first).to_be_visible()
    nameless = page.evaluate(
        """() => [...document.querySelectorAll("button, input, select, textarea, audio, a")]
            .filter((el) => {
                const labelled = el.getAttribute("aria-labelledby");
                const name = el.getAttribute("aria-label")
                    || (labelled && document.getElementById(labelled)?.textContent)
                    || [...(el.labels || [])].map((l) => l.textContent).join(" ")
                    || (["BUTTON", "A"].includes(el.tagName) ? el.textContent : "")
                    || el.getAttribute("title") || "";
                return !name.trim();
            })
            .map((el) => el.outerHTML.slice(0, 120))"""
    )
    assert nameless == []


def test_keyboard_alone_sorts_and_filters(page, site: Site) -> None:
    sign_in(page, site)
    hits = page.get_by_role("button", name="Hits", exact=True)
    hits.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"sort=hit_count%3Aasc"))
    search = page.get_by_role("searchbox", name="Transcript")
    search.focus()
    page.keyboard.type("Catalogue beta")
    page.keyboard.press("Enter")  # submits the filter form
    expect(page).to_have_url(re.compile(r"q=Catalogue\+beta"))
    expect(page.locator("#rows tr")).to_have_count(1)
    page.keyboard.press("Tab")  # onwards from the search box, focus stays on the page
    assert page.evaluate("document.activeElement !== document.body")
