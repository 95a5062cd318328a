"""The web page under /ui/: one HTML shell rendered with Jinja2, and its static files.

The page holds no server session: the browser keeps the API key in sessionStorage and calls
the public JSON API with ``X-API-KEY``, so every action goes through the same checks as any
other client. These routes are public (the shell carries no data) and not in the OpenAPI.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from audiocache import __version__
from audiocache.ui import STATIC, TEMPLATES

_templates = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())
router = APIRouter(include_in_schema=False)


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/", include_in_schema=False)
async def shell() -> HTMLResponse:
    # Every view (agent, sort, filter, page) lives in the query string, read by ui.js.
    html = _templates.get_template("index.html").render(version=__version__)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def install_ui(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
