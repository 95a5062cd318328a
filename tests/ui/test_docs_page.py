"""/docs and /redoc render in chromium with every request to another host refused: the
operations show, from the app's own files alone."""

from __future__ import annotations

from conftest import Site
from playwright.sync_api import expect


def _offline(page, site: Site) -> list[str]:  # type: ignore[no-untyped-def]
    """Refuse (and list) every request to any other host."""
    elsewhere: list[str] = []

    def only_the_site(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.url.startswith(site.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.context.route("**/*", only_the_site)
    return elsewhere


def test_swagger_ui_renders_with_no_network(page, site: Site) -> None:
    elsewhere = _offline(page, site)
    page.goto(f"{site.url}/docs")
    operation = page.locator(".opblock", has_text="/v1/agents/{agentId}/audio-cache/stats")
    expect(operation.first).to_be_visible()
    expect(page.locator(".opblock")).not_to_have_count(0)
    assert page.locator(".opblock").count() > 30
    expect(page.get_by_text("NOT_READY").first).to_be_attached()  # the error-code table
    assert elsewhere == []


def test_redoc_renders_with_no_network(page, site: Site) -> None:
    elsewhere = _offline(page, site)
    page.goto(f"{site.url}/redoc")
    expect(page.get_by_role("heading", name="List cached audio entries").first).to_be_visible()
    expect(page.get_by_text("NOT_READY").first).to_be_attached()
    assert elsewhere == []
