"""The console (server-rendered pages, live by server-sent events) and access control.

``mount(app, runtime)`` adds both to the API's FastAPI app: the console routes, static files, the
access-control middleware, and the token / audit / whoami API routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from gennaker.runtime import Runtime


def mount(app: FastAPI, runtime: Runtime) -> None:
    # Imported here: the migration imports gennaker.web.tables, which must not pull in the web stack.
    from fastapi.staticfiles import StaticFiles

    from gennaker.web import accounts as accounts_pages
    from gennaker.web import api, canary, cloud_actions, console, events, incidents, login, pages
    from gennaker.web import costs as costs_pages
    from gennaker.web import dr as dr_pages
    from gennaker.web.middleware import Guard
    from gennaker.web.state import HERE, WebState

    web = WebState.build(runtime)
    app.state.web = web
    app.include_router(api.router)
    app.include_router(login.router)
    app.include_router(events.router)
    app.include_router(console.router)
    app.include_router(pages.router)
    app.include_router(cloud_actions.router)
    app.include_router(canary.router)
    app.include_router(incidents.router)
    app.include_router(costs_pages.router)
    app.include_router(accounts_pages.router)
    app.include_router(dr_pages.router)  # a DR drill's report page
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.add_middleware(Guard, web=web)
