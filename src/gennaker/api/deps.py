"""FastAPI dependencies: the runtime and the acting user, taken from the app state (no globals)."""

from __future__ import annotations

from fastapi import Request

from gennaker.runtime import Runtime

USER_HEADER = "X-Gennaker-User"


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_actor(request: Request) -> str:
    """Who is acting. Access control (a later layer) may set ``request.state.user``; until then the
    caller names itself in a header, and an unnamed caller is recorded as anonymous."""
    user = getattr(request.state, "user", None)
    if user:
        return str(user)
    return request.headers.get(USER_HEADER) or "anonymous"


def get_actor_roles(request: Request) -> set[str] | None:
    """The actor's roles, or None when access control is off."""
    roles = getattr(request.state, "roles", None)
    return set(roles) if roles is not None else None


def is_admin(request: Request) -> bool:
    return bool(getattr(request.state, "is_admin", False))
