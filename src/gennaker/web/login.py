"""Sign in and out. A session is a row in the database behind a signed cookie; sign-in attempts are
counted per (user, address), per address and in all before the password is checked, and the checks
run on a small bounded pool (``security.LoginLimiter``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from gennaker.web.deps import render, safe_next, web_state
from gennaker.web.security import CSRF_COOKIE, SESSION_COOKIE, new_csrf
from gennaker.web.state import WebState

router = APIRouter(include_in_schema=False)
WebDep = Annotated[WebState, Depends(web_state)]


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, web: WebDep, next: str = "/applications") -> Response:
    if web.auth is None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", next=safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    web: WebDep,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form()] = "/applications",
) -> Response:
    if web.auth is None:
        return RedirectResponse(safe_next(next), status_code=303)
    client = getattr(request.state, "client", "unknown")
    wait = await run_in_threadpool(web.limiter.claim, web.db, username, client)
    if wait > 0:
        return render(
            request,
            "login.html",
            status_code=429,
            next=safe_next(next),
            error=f"Too many failed sign-ins: try again in {int(wait) + 1} seconds.",
        )
    user = web.auth.users.get(username)
    ok = await web.limiter.verify(user.password_hash if user else None, password)
    if ok is None:  # every password checker is busy: the attempt was not tried, so it does not count
        await run_in_threadpool(web.limiter.give_back, web.db, username, client)
        return render(
            request,
            "login.html",
            status_code=429,
            next=safe_next(next),
            error="Too many sign-ins at once: try again in a few seconds.",
        )
    if not ok:
        return render(
            request, "login.html", status_code=401, next=safe_next(next), error="Wrong user name or password."
        )
    await run_in_threadpool(web.limiter.give_back, web.db, username, client, forget_pair=True)
    csrf = new_csrf()  # a fresh token per session: one seen before signing in is worth nothing after
    cookie = await run_in_threadpool(web.sessions.start, username, csrf)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=web.sessions.whole_seconds,
        httponly=True,
        secure=web.secure_cookies(dict(request.headers)),
        samesite="lax",
        path="/",
    )
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request, web: WebDep) -> Response:
    """End the session on the server: the row goes, so a copy of the cookie signs nobody in."""
    await run_in_threadpool(web.sessions.end, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login" if web.auth else "/applications", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
