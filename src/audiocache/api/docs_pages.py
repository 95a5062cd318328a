"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), with every asset served from the package.

FastAPI's own pages load their scripts, style and icon from a CDN, so they are blank where
the service runs without Internet. Here the files come from ``/docs/static``: the builds that
the ``fastapi-offline`` package ships (Swagger UI 5, which reads OpenAPI 3.1; the
``swagger-ui-bundle`` package's 4.15 cannot), and no Google fonts for ReDoc.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = "/docs/static"
ASSETS = Path(fastapi_offline.__file__).parent / "static"
TITLE = "audiocache - API"
router = APIRouter(include_in_schema=False)
# Swagger UI starts from an inline script; ReDoc runs a worker from a blob: URL.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' blob:; worker-src 'self' blob:; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)
_REDOC = f"""<!DOCTYPE html>
<html lang="en">
<head>
<title>{TITLE}</title>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="shortcut icon" href="{STATIC}/favicon.png">
<style>body {{ margin: 0; padding: 0; }} a[href*="redocly"] {{ display: none; }}</style>
</head>
<body>
<noscript>ReDoc needs JavaScript.</noscript>
<redoc spec-url="/openapi.json"></redoc>
<script src="{STATIC}/redoc.standalone.js"></script>
</body>
</html>
"""


@router.get("/docs", include_in_schema=False)
async def swagger_ui() -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=TITLE,
        swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC}/swagger-ui.css",
        swagger_favicon_url=f"{STATIC}/favicon.png",
        oauth2_redirect_url=None,
    )
    page.headers["Content-Security-Policy"] = CSP
    return page


@router.get("/redoc", include_in_schema=False)
async def redoc() -> HTMLResponse:
    return HTMLResponse(_REDOC, headers={"Content-Security-Policy": CSP})


def install_docs(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(STATIC, StaticFiles(directory=ASSETS), name="docs-static")
