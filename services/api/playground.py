"""The browser playground: a static page at ``/`` that calls the ``/v1`` routes from the browser.

Plain HTML, CSS and JavaScript shipped in ``services/api/static`` (no build step, nothing
fetched from elsewhere). The page talks to the same origin only, keeps an API key in the
tab's ``sessionStorage`` and sends it as a bearer token, so it works against a server with
keys too. The routes here are left out of the OpenAPI document: they are not part of the API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).with_name("static")
STATIC_PREFIX = "/static"
# the page runs only its own script and talks only to its own origin
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'self'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def install_playground(app: FastAPI) -> None:
    """Serve the page at ``/`` and its assets under ``/static``."""
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def playground() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)
