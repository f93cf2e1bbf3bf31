"""The web console (docs/reference/console.md): a static page on the JSON API, served at /console.

The page, its script and its style ship beside this module as package data. The
console holds the tenant's token in the tab's sessionStorage and sends it as a header
on every API call, as any client does; the API reads no cookie, so a cross-site form
cannot act as the user. The headers below keep the page from running any script but
its own and from being framed.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

console = APIRouter(prefix="/console", include_in_schema=False)


def _asset(name: str) -> Response:
    body = files(__package__).joinpath(name).read_bytes()
    return Response(body, media_type=ASSETS[name], headers=SECURITY_HEADERS)


@console.get("")
def console_page() -> Response:
    return _asset("index.html")


@console.get("/")
def console_slash() -> RedirectResponse:
    return RedirectResponse("/console", status_code=308)


@console.get("/console.js")
def console_script() -> Response:
    return _asset("console.js")


@console.get("/console.css")
def console_style() -> Response:
    return _asset("console.css")


__all__ = ["console"]
