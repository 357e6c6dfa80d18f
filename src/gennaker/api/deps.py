"""FastAPI dependencies: the runtime and the acting user, taken from the app state (no globals)."""

from __future__ import annotations

from fastapi import Request

from gennaker.runtime import Runtime

USER_HEADER = "X-Gennaker-User"  # honoured only with --insecure-no-auth


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_actor(request: Request) -> str:
    """Who is acting, as access control (``gennaker.web.middleware``) established it. The
    X-Gennaker-User header counts only there, and only with ``--insecure-no-auth``: here it is never
    read, so naming yourself grants nothing."""
    user = getattr(request.state, "user", None)
    return str(user) if user else "anonymous"


def get_actor_roles(request: Request) -> set[str] | None:
    """The actor's roles, or None when access control is off."""
    roles = getattr(request.state, "roles", None)
    return set(roles) if roles is not None else None


def is_admin(request: Request) -> bool:
    return bool(getattr(request.state, "is_admin", False))
