"""How the CLI reaches Gennaker: directly on a database (``LocalClient``), or through a server's
REST API (``HttpClient``, with ``--server`` or ``GENNAKER_SERVER``). Both return the same dicts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx

from gennaker.engine import logs as stage_logs
from gennaker.engine import operations as ops
from gennaker.engine import views
from gennaker.errors import Conflict, Forbidden, GennakerError, NotFound, Problem, ValidationFailed
from gennaker.runtime import Runtime
from gennaker.triggers.fire import refuse_cycles, with_triggers


class Client(Protocol):
    def run_file(self, path: str, params: dict[str, Any]) -> str: ...
    def start_registered(self, name: str, params: dict[str, Any]) -> str: ...
    def register(self, path: str) -> dict[str, Any]: ...
    def pipelines(self) -> list[dict[str, Any]]: ...
    def executions(self, pipeline: str | None, status: list[str] | None, limit: int) -> list[dict[str, Any]]: ...
    def execution(self, execution_id: str) -> dict[str, Any]: ...
    def operations(self, execution_id: str) -> list[dict[str, Any]]: ...
    def logs(self, execution_id: str, stage_id: str, after: int) -> list[dict[str, Any]]: ...
    def cancel(self, execution_id: str, reason: str | None) -> None: ...
    def pause(self, execution_id: str) -> None: ...
    def resume(self, execution_id: str) -> None: ...
    def restart(self, execution_id: str, stage_id: str) -> None: ...
    def skip(self, execution_id: str, stage_id: str) -> None: ...
    def judge(self, execution_id: str, stage_id: str, choice: str, comment: str | None) -> None: ...


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationFailed([Problem(path, 1, 1, "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFailed([Problem(path, 1, 1, f"cannot read file: {exc}")]) from None


class LocalClient:
    def __init__(self, runtime: Runtime, actor: str):
        self.rt = runtime
        self.actor = actor

    def run_file(self, path: str, params: dict[str, Any]) -> str:
        pipeline = self.rt.load_pipeline(path)
        return ops.start_execution(self.rt.db, pipeline, params, self.actor, "manual", str(Path(path).resolve().parent))

    def start_registered(self, name: str, params: dict[str, Any]) -> str:
        with self.rt.db.read() as conn:
            text, source = views.pipeline_text(conn, name)
        pipeline = self.rt.pipeline_from_text(text, source or name)
        base = str(Path(source).parent) if source and Path(source).exists() else None
        return ops.start_execution(self.rt.db, pipeline, params, self.actor, "manual", base)

    def register(self, path: str) -> dict[str, Any]:
        pipeline = self.rt.load_pipeline(path)
        pipeline.source = str(Path(path).resolve())
        with self.rt.db.begin() as conn:
            refuse_cycles(conn, self.rt.triggers.catalog, pipeline, self.rt.config.limits)
            ops.save_pipeline(conn, pipeline, self.actor, registered=True)
            ops.record(conn, "register_pipeline", self.actor, pipeline=pipeline.name)
        return {"name": pipeline.name, "application": pipeline.application, "stages": len(pipeline.stages)}

    def pipelines(self) -> list[dict[str, Any]]:
        with self.rt.db.read() as conn:
            return with_triggers(conn, self.rt.triggers.catalog, views.list_pipelines(conn))

    def executions(self, pipeline: str | None, status: list[str] | None, limit: int) -> list[dict[str, Any]]:
        with self.rt.db.read() as conn:
            return views.list_executions(conn, pipeline, status, None, limit)

    def execution(self, execution_id: str) -> dict[str, Any]:
        with self.rt.db.read() as conn:
            return views.execution_detail(conn, execution_id)

    def operations(self, execution_id: str) -> list[dict[str, Any]]:
        with self.rt.db.read() as conn:
            views.execution_detail(conn, execution_id)
            return views.execution_operations(conn, execution_id)

    def logs(self, execution_id: str, stage_id: str, after: int) -> list[dict[str, Any]]:
        with self.rt.db.read() as conn:
            views.stage_detail(conn, execution_id, stage_id)
            return stage_logs.read(conn, execution_id, stage_id, after)

    def cancel(self, execution_id: str, reason: str | None) -> None:
        ops.cancel(self.rt.db, execution_id, self.actor, reason, self.rt.engine.on_event)

    def pause(self, execution_id: str) -> None:
        ops.pause(self.rt.db, execution_id, self.actor)

    def resume(self, execution_id: str) -> None:
        ops.resume(self.rt.db, execution_id, self.actor)

    def restart(self, execution_id: str, stage_id: str) -> None:
        ops.restart(self.rt.db, execution_id, stage_id, self.actor)

    def skip(self, execution_id: str, stage_id: str) -> None:
        ops.skip(self.rt.db, execution_id, stage_id, self.actor, self.rt.skippable)

    def judge(self, execution_id: str, stage_id: str, choice: str, comment: str | None) -> None:
        ops.judge(self.rt.db, execution_id, stage_id, self.actor, choice, comment)


_ERRORS: dict[int, type[GennakerError]] = {404: NotFound, 409: Conflict, 403: Forbidden, 401: Forbidden}


class HttpClient:
    """The REST API of a server. Without ``--token`` it uses the local credential a server on this
    machine left for its URL (``gennaker.web.credentials``); ``actor`` names the caller only to a
    server started with ``--insecure-no-auth``."""

    def __init__(self, base_url: str, actor: str, token: str | None = None, timeout: float = 30.0):
        headers = {"X-Gennaker-User": actor}
        if not token:
            from gennaker.web.credentials import find_credential

            local = find_credential(base_url)
            token = local["token"] if local else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.has_token = bool(token)
        self.base = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base, headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            resp = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise GennakerError(f"cannot reach the Gennaker server at {self.base}: {exc}") from None
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {"message": resp.text}
            if resp.status_code == 422 and body.get("problems"):
                raise ValidationFailed([Problem(**p) for p in body["problems"]])
            message = body.get("message") or body.get("detail") or resp.text
            if resp.status_code == 401 and not self.has_token:
                message += " (no --token, and no local credential for this URL: see docs/security.md)"
            raise _ERRORS.get(resp.status_code, GennakerError)(f"server said ({resp.status_code}): {message}")
        return resp.json() if resp.content else None

    def run_file(self, path: str, params: dict[str, Any]) -> str:
        body = {"yaml": _read(path), "source": path, "params": params, "base_dir": str(Path(path).resolve().parent)}
        return str(self._call("POST", "/api/executions", json=body)["id"])

    def start_registered(self, name: str, params: dict[str, Any]) -> str:
        return str(self._call("POST", f"/api/pipelines/{name}/executions", json={"params": params})["id"])

    def register(self, path: str) -> dict[str, Any]:
        return dict(self._call("POST", "/api/pipelines", json={"yaml": _read(path), "source": path}))

    def pipelines(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/pipelines"))

    def executions(self, pipeline: str | None, status: list[str] | None, limit: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if pipeline:
            params["pipeline"] = pipeline
        if status:
            params["status"] = status
        return list(self._call("GET", "/api/executions", params=params))

    def execution(self, execution_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/executions/{execution_id}"))

    def operations(self, execution_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/api/executions/{execution_id}/operations"))

    def logs(self, execution_id: str, stage_id: str, after: int) -> list[dict[str, Any]]:
        return list(
            self._call("GET", f"/api/executions/{execution_id}/stages/{stage_id}/logs", params={"after": after})
        )

    def cancel(self, execution_id: str, reason: str | None) -> None:
        self._call("POST", f"/api/executions/{execution_id}/cancel", json={"reason": reason})

    def pause(self, execution_id: str) -> None:
        self._call("POST", f"/api/executions/{execution_id}/pause")

    def resume(self, execution_id: str) -> None:
        self._call("POST", f"/api/executions/{execution_id}/resume")

    def restart(self, execution_id: str, stage_id: str) -> None:
        self._call("POST", f"/api/executions/{execution_id}/stages/{stage_id}/restart")

    def skip(self, execution_id: str, stage_id: str) -> None:
        self._call("POST", f"/api/executions/{execution_id}/stages/{stage_id}/skip")

    def judge(self, execution_id: str, stage_id: str, choice: str, comment: str | None) -> None:
        self._call(
            "POST",
            f"/api/executions/{execution_id}/stages/{stage_id}/judge",
            json={"choice": choice, "comment": comment},
        )


def follow_logs(
    client: Client, execution_id: str, stage_id: str, follow: bool, poll: float = 0.3
) -> Iterator[dict[str, Any]]:
    last = 0
    while True:
        rows = client.logs(execution_id, stage_id, last)
        yield from rows
        if rows:
            last = rows[-1]["id"]
        if not follow:
            return
        if not rows:
            ex = client.execution(execution_id)
            stage = next((s for s in ex["stages"] if s["stage_id"] == stage_id), None)
            done = stage is None or stage["status"] not in ("RUNNING", "WAITING", "NOT_STARTED")
            if done or views.is_done(ex["status"]):
                rest = client.logs(execution_id, stage_id, last)
                yield from rest
                return
            time.sleep(poll)
