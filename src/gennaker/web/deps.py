"""Request helpers for the console routes: the shared state, the caller, and template rendering."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from gennaker.web.access import OFF, Principal
from gennaker.web.state import WebState


def web_state(request: Request) -> WebState:
    web: WebState = request.app.state.web
    return web


def principal(request: Request) -> Principal:
    p = getattr(request.state, "principal", None)
    return p if isinstance(p, Principal) else OFF


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    web = web_state(request)
    base = {
        "principal": principal(request),
        "csrf": getattr(request.state, "csrf", ""),
        "auth_on": web.auth is not None,
        "flash": request.query_params.get("err", ""),
    }
    return web.templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)


def back(url: str, error: str | None = None) -> RedirectResponse:
    """After a form post, back to the page (303: the browser follows with a GET)."""
    if error:
        url += ("&" if "?" in url else "?") + "err=" + quote(error[:300])
    return RedirectResponse(url, status_code=303)


def safe_next(url: str | None) -> str:
    """Only same-site paths: a login link must not send people elsewhere."""
    if url and url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url
    return "/applications"
