"""The FastAPI application: routers, error mapping, and (optionally) an in-process worker."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gennaker import __version__
from gennaker.api import accounts as accounts_api
from gennaker.api import alarms as alarms_api
from gennaker.api import canary as canary_api
from gennaker.api import cloud, executions, hooks, incident_actions, incidents, telemetry
from gennaker.api import costs as costs_api
from gennaker.api import dr as dr_api
from gennaker.api import notifications as notifications_api
from gennaker.api import ops as ops_api
from gennaker.api import triggers as triggers_api
from gennaker.api.limits import BodyLimit
from gennaker.api.telemetry import RequestDurations, metrics_registry
from gennaker.api.unavailable import DatabaseUnavailable
from gennaker.errors import Conflict, Forbidden, GennakerError, InvalidInput, NotFound, ValidationFailed
from gennaker.runtime import Runtime
from gennaker.web import mount

_STATUS = {NotFound: 404, Conflict: 409, Forbidden: 403, ValidationFailed: 422, InvalidInput: 422}


def error_status(exc: GennakerError) -> int:
    for kind, code in _STATUS.items():
        if isinstance(exc, kind):
            return code
    return 400


def _json_safe(value: Any) -> Any:
    """A validation error echoes the input, and JSON cannot carry NaN or Infinity back: name them."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def create_app(runtime: Runtime, with_worker: bool = False, worker_threads: int = 4) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker = runtime.worker(threads=worker_threads) if with_worker else None
        if worker:
            worker.start()
        try:
            yield
        finally:
            if worker:
                worker.stop()

    app = FastAPI(
        title="Gennaker",
        version=__version__,
        lifespan=lifespan,
        description="Continuous delivery and operations readiness for AWS.",
    )
    app.state.runtime = runtime
    app.state.db = runtime.db
    app.state.config = runtime.config
    app.state.aws = runtime.services.aws  # created lazily per account on first call; no network here

    @app.exception_handler(GennakerError)
    async def _gennaker_error(_request: Request, exc: GennakerError) -> JSONResponse:
        body: dict[str, object] = {"error": type(exc).__name__, "message": str(exc)}
        if isinstance(exc, ValidationFailed):
            body["problems"] = [p.__dict__ for p in exc.problems]
        return JSONResponse(body, status_code=error_status(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.get("/api/health", tags=["system"], summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.include_router(executions.router)
    app.include_router(cloud.router)
    app.include_router(ops_api.router)
    app.include_router(canary_api.router)
    app.include_router(alarms_api.router)
    app.include_router(telemetry.router)
    app.include_router(triggers_api.router)
    app.include_router(costs_api.router)
    app.include_router(accounts_api.router)
    app.include_router(notifications_api.router)
    app.include_router(incidents.router)
    app.include_router(dr_api.router)
    app.include_router(incident_actions.router)  # actions reaching beyond the incident (rollback)
    app.include_router(hooks.router)  # authenticated by signatures, not logins (see api/hooks.py)
    mount(app, runtime)  # the console, access control (middleware), tokens and the audit log
    app.state.metrics_registry, http_durations = metrics_registry(runtime)
    app.add_middleware(RequestDurations, histogram=http_durations)  # outside access control: refusals count too
    # outermost: an oversized body is refused before access control or any route reads it
    app.add_middleware(BodyLimit, max_bytes=runtime.config.limits.request_bytes)
    app.add_middleware(DatabaseUnavailable)  # outermost of all: access control reads the database too
    return app
