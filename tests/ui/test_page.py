"""The web page driven in chromium against a live server; results checked through the API."""

from __future__ import annotations

import re

from conftest import AGENT, Site, sign_in
from playwright.sync_api import expect
from support import sine_wav


def test_sign_in_shows_agents_and_the_cache_table(page, site: Site) -> None:
    site.seed("Welcome to the table")
    sign_in(page, site)
    expect(page.get_by_role("link", name="Bot")).to_be_visible()
    row = page.locator("tr", has_text="Welcome to the table")
    expect(row).to_be_visible()
    expect(page.locator("#total")).to_contain_text("entries")
    assert re.search(r"\?agent=" + AGENT, page.url) or page.url.endswith("/ui/")


def test_filter_and_sort_are_urls_and_back_works(page, site: Site) -> None:
    site.seed("Alpha phrase")
    site.seed("Zulu phrase")
    sign_in(page, site)
    page.get_by_role("link", name="Bot").click()
    page.get_by_role("button", name="Transcript", exact=True).click()
    expect(page).to_have_url(re.compile(r"sort=transcript%3Aasc"))
    page.get_by_role("searchbox", name="Transcript").fill("Zulu")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"q=Zulu"))
    expect(page.locator("#rows tr")).to_have_count(1)
    page.go_back()
    expect(page.locator("tr", has_text="Alpha phrase")).to_be_visible()


def test_pin_then_unpin_a_row(page, site: Site) -> None:
    entry = site.seed("Pin me please")
    sign_in(page, site)
    page.get_by_role("button", name="Pin “Pin me please”", exact=True).click()
    expect(page.get_by_role("button", name="Unpin “Pin me please”")).to_be_visible()
    assert [e["pinned"] for e in site.entries() if e["id"] == entry] == [True]
    page.get_by_role("button", name="Unpin “Pin me please”").click()
    expect(page.get_by_role("button", name="Pin “Pin me please”", exact=True)).to_be_visible()
    assert [e["pinned"] for e in site.entries() if e["id"] == entry] == [False]


def test_delete_asks_then_deletes(page, site: Site) -> None:
    entry = site.seed("Delete me please")
    sign_in(page, site)
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete “Delete me please”").click()
    expect(page.locator("tr", has_text="Delete me please")).to_have_count(0)
    assert entry not in [e["id"] for e in site.entries()]


def test_api_errors_are_shown_in_words(page, site: Site) -> None:
    page.goto(f"{site.url}/ui/")
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("401")


def test_bulk_pin_unpin_regenerate_and_delete_in_batches(page, site: Site) -> None:
    ids = [site.seed(f"Bulk phrase {chr(97 + n)}") for n in range(22)]
    sign_in(page, site)
    page.get_by_role("searchbox", name="Transcript").fill("Bulk phrase")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#total")).to_have_text("22 entries")

    def pick(count: int) -> None:
        boxes = page.locator("input.pick")
        expect(boxes).to_have_count(count)
        for n in range(count):
            boxes.nth(n).check()

    pick(22)
    page.get_by_role("button", name="Pin selected", exact=True).click()
    expect(page.locator(".badge", has_text="Pinned")).to_have_count(22)
    assert all(e["pinned"] for e in site.entries(limit=200) if e["id"] in ids)
    pick(22)
    page.get_by_role("button", name="Unpin selected").click()
    expect(page.locator(".badge", has_text="Pinned")).to_have_count(0)
    page.locator("input.pick").nth(0).check()
    page.get_by_role("button", name="Regenerate selected").click()
    expect(page.locator(".badge", has_text="Regenerated")).to_have_count(1)
    pick(22)
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete selected").click()  # 22 ids: two bulk calls
    expect(page.locator("#total")).to_have_text("0 entries")
    assert not set(ids) & {e["id"] for e in site.entries(limit=200)}


def test_stats_panel_and_policy_edit(page, site: Site) -> None:
    site.seed("Counted in the stats")
    sign_in(page, site)
    stats = page.get_by_role("region", name="Stats")
    expect(stats).to_contain_text("Hit ratio")
    expect(stats).to_contain_text(
        str(site.api.get(f"/v1/agents/{AGENT}/audio-cache/stats").json()["entries"])
    )
    page.get_by_label("Max entries").fill("500")
    page.get_by_label("Eviction").select_option("lfu")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("status")).to_have_text("Policy saved.")
    policy = site.api.get(f"/v1/agents/{AGENT}/cache-policy").json()
    assert (policy["maxEntries"], policy["eviction"], policy["admission"]) == (500, "lfu", "always")
    page.get_by_label("Max entries").fill("9007199254740991")  # past the API limit: words shown
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("alert")).to_contain_text("400")
    page.get_by_label("Max entries").fill("")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("status")).to_have_text("Policy saved.")


def test_edit_previews_then_saves_with_settings(page, site: Site) -> None:
    entry = site.seed("Edit me soon")
    sign_in(page, site)
    page.get_by_role("button", name="Edit “Edit me soon”").click()
    dialog = page.get_by_role("dialog")
    save = dialog.get_by_role("button", name="Save", exact=True)
    expect(save).to_be_disabled()
    dialog.get_by_label("Transcript").fill("Edited at last")
    dialog.get_by_label("Stability").fill("0.4")
    expect(save).to_be_disabled()  # not before a preview
    dialog.get_by_role("button", name="Preview").click()
    expect(save).to_be_enabled()
    save.click()
    expect(page.locator("tr", has_text="Edited at last")).to_be_visible()
    [edited] = [e for e in site.entries() if e["id"] == entry]
    assert edited["transcript"] == "Edited at last"


def test_upload_replacement_from_a_file(page, site: Site, tmp_path) -> None:
    entry = site.seed("Replace my audio")
    before = site.api.get(f"/v1/agents/{AGENT}/audio-cache/{entry}/file").content
    wav = tmp_path / "take.wav"
    wav.write_bytes(sine_wav(1.5))
    sign_in(page, site)
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Upload replacement “Replace my audio”").click()
    chooser.value.set_files(str(wav))
    expect(page.locator("tr", has_text="Replace my audio")).to_contain_text("1.50 s")
    after = site.api.get(f"/v1/agents/{AGENT}/audio-cache/{entry}/file").content
    assert after != before and after == wav.read_bytes()


def test_play_feeds_the_audio_element_also_at_8_khz(page, site: Site) -> None:
    site.seed("Play me now")
    sign_in(page, site)
    page.get_by_role("button", name="Play 8 kHz “Play me now”").click()
    player = page.get_by_label("Player", exact=True)
    expect(player).to_have_attribute("data-format", "wav_8000")
    expect(player).to_have_attribute("src", re.compile(r"^blob:"))
    rate = page.evaluate(
        "async () => { const b = await (await fetch(document.querySelector('#player').src))"
        ".arrayBuffer(); return new DataView(b).getUint32(24, true); }"
    )
    assert rate == 8000


def test_keyboard_alone_signs_in_and_pins(page, site: Site) -> None:
    entry = site.seed("Keyboard only")
    page.goto(f"{site.url}/ui/")
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(site.key)
    page.keyboard.press("Enter")
    pin = page.get_by_role("button", name="Pin “Keyboard only”", exact=True)
    pin.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Unpin “Keyboard only”")).to_be_visible()
    assert [e["pinned"] for e in site.entries() if e["id"] == entry] == [True]


def test_history_lists_plays_and_restores_a_take(page, site: Site) -> None:
    entry = site.seed("Has a history")
    base = f"/v1/agents/{AGENT}/audio-cache/{entry}"
    original = site.api.get(f"{base}/file").content
    r = site.api.patch(
        f"{base}/file", content=sine_wav(freq=300.0), headers={"Content-Type": "audio/wav"}
    )
    assert r.status_code == 204, r.text
    sign_in(page, site)
    page.get_by_role("button", name="History “Has a history”").click()
    history = page.get_by_role("region", name="History of “Has a history”")
    expect(history).to_be_visible()
    expect(history.get_by_role("listitem")).to_have_count(1)
    expect(history.get_by_role("listitem")).to_contain_text("replace")
    history.get_by_role("button", name=re.compile("^Play take of")).click()
    expect(page.locator("#player")).to_have_attribute("src", re.compile("^blob:"))
    history.get_by_role("button", name=re.compile("^Restore take of")).click()
    expect(history).to_be_hidden()  # the page re-renders once the restore is done
    assert site.api.get(f"{base}/file").content == original
    takes = site.api.get(f"{base}/history").json()["takes"]
    assert [t["reason"] for t in takes] == ["restore"]


def test_audit_log_view_shows_the_accounts_writes(page, site: Site) -> None:
    entry = site.seed("Audited phrase")
    for _ in range(26):  # more than one page of the view (25)
        r = site.api.put(f"/v1/agents/{AGENT}/audio-cache/{entry}/pin")
        assert r.status_code == 200, r.text
    sign_in(page, site)
    page.get_by_role("link", name="Audit log").click()
    expect(page).to_have_url(re.compile(r"view=audit"))
    audit = page.get_by_role("region", name=re.compile("Audit log"))
    expect(audit).to_be_visible()
    total = site.api.get("/v1/accounts/acme/audit-log").json()["totalCount"]
    expect(page.locator("#audit-title")).to_have_text(f"Audit log ({total} events)")
    newest = audit.locator("#audit-rows tr").first
    expect(newest).to_contain_text("pinAudioCacheEntry")
    expect(newest).to_contain_text(entry)
    expect(newest).to_contain_text("200")

    # filters and the page are the view's URL
    audit.get_by_label("Operation").fill("pinAudioCacheEntry")
    audit.get_by_role("button", name="Filter events").click()
    expect(page).to_have_url(re.compile(r"operation=pinAudioCacheEntry"))
    pins = site.api.get(
        "/v1/accounts/acme/audit-log", params={"operation": "pinAudioCacheEntry"}
    ).json()["totalCount"]
    assert pins >= 26
    expect(page.locator("#audit-title")).to_have_text(f"Audit log ({pins} events)")
    expect(page.locator("#audit-rows tr")).to_have_count(25)
    for text in page.locator("#audit-rows tr").all_inner_texts():
        assert "pinAudioCacheEntry" in text
    page.get_by_role("button", name="Next events").click()
    expect(page).to_have_url(re.compile(r"offset=25"))
    expect(page.locator("#audit-page")).to_have_text(f"26\u2013{pins} of {pins}")
    expect(page.get_by_role("button", name="Next events")).to_be_disabled()
    page.go_back()
    expect(page.locator("#audit-page")).to_have_text(f"1\u201325 of {pins}")

    audit.get_by_label("From").fill("2099-01-01T00:00:00")
    audit.get_by_role("button", name="Filter events").click()
    expect(page.locator("#audit-title")).to_have_text("Audit log (0 events)")


def test_audit_log_view_shows_the_entries_a_bulk_delete_removed(page, site: Site) -> None:
    first, second = site.seed("Bulk gone one"), site.seed("Bulk gone two")
    r = site.api.post(
        f"/v1/agents/{AGENT}/audio-cache/bulk-delete", json={"ids": [second, first, "999999"]}
    )
    assert r.status_code == 200, r.text
    assert sorted(r.json()["deleted"]) == sorted([first, second])
    sign_in(page, site)
    page.goto(f"{site.url}/ui/?view=audit&operation=bulkDeleteAudioCacheEntries")
    newest = page.locator("#audit-rows tr").first
    expect(newest).to_contain_text("bulkDeleteAudioCacheEntries")
    ids = ", ".join(sorted([first, second], key=int))  # as the log keeps them: by number
    expect(newest.locator("td").nth(4)).to_have_text(ids)  # the Entry column
