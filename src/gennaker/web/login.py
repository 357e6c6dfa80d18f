"""Sign in and out. Sessions are signed cookies; failed sign-ins are throttled per address and user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from gennaker.web.deps import render, safe_next, web_state
from gennaker.web.security import CSRF_COOKIE, SESSION_COOKIE, new_csrf, verify_password
from gennaker.web.state import WebState

router = APIRouter(include_in_schema=False)
WebDep = Annotated[WebState, Depends(web_state)]


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, web: WebDep, next: str = "/applications") -> Response:
    if web.auth is None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", next=safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, web: WebDep, username: Annotated[str, Form(max_length=200)],
                password: Annotated[str, Form(max_length=1000)], next: Annotated[str, Form()] = "/applications",
                ) -> Response:
    if web.auth is None:
        return RedirectResponse(safe_next(next), status_code=303)
    client = getattr(request.state, "client", "unknown")
    keys = [f"addr:{client}", f"user:{username.lower()}"]
    wait = web.limiter.retry_after(keys)
    if wait > 0:
        return render(request, "login.html", status_code=429, next=safe_next(next),
                      error=f"Too many failed sign-ins: try again in {int(wait) + 1} seconds.")
    user = web.auth.users.get(username)
    ok = await run_in_threadpool(verify_password, user.password_hash if user else None, password)
    if not ok:
        web.limiter.failed(keys)
        return render(request, "login.html", status_code=401, next=safe_next(next),
                      error="Wrong user name or password.")
    web.limiter.succeeded(keys)
    csrf = new_csrf()  # a fresh token per session: one seen before signing in is worth nothing after
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, web.sessions.dump(username, csrf), max_age=int(web.sessions.max_age),
                        httponly=True, secure=web.auth.secure_cookies, samesite="lax", path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(web: WebDep) -> Response:
    response = RedirectResponse("/login" if web.auth else "/applications", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
