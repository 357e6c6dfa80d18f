"""Which applications the caller may read, as a FastAPI dependency for the read routes.

The set comes from the caller's roles (``Principal.readable``: None means every application) and is
handed to the read models, which apply it (``gennaker.engine.views``); routes never filter by hand."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gennaker.web.deps import principal


def readable_applications(request: Request) -> frozenset[str] | None:
    return principal(request).readable()


ReadableDep = Annotated[frozenset[str] | None, Depends(readable_applications)]
