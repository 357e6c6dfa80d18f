"""``run``: a command on the worker's host. A string runs in ``/bin/sh -c``; a list is exec'd as is.

Its stdout and stderr are the stage log. Lines ``::output key=value`` on stdout become stage outputs,
readable later as ``${stages.<id>.outputs.<key>}``. A non-zero exit fails the stage.

Each command runs under a supervisor (``gennaker.stages.supervisor``) that owns its whole process
tree: when the command exits, is canceled or times out, or its worker dies, every process it started
is killed before the supervisor exits. The intent to start and then the supervisor's pid are
committed before the command starts, so a worker taking over a lost attempt always knows what may be
running. On this host it waits (``GENNAKER_TAKEOVER_WAIT_SECONDS``, default 30) for the supervisor to
finish: if the command had finished by itself, its real status and outputs are recorded; if it was
stopped with its worker, the stage fails with "worker lost" (and is retried if it has retries left).
When that cannot be established (the attempt ran on another host, or its supervisor does not finish
in time), the stage fails with "an earlier attempt may still be running on HOST" and is not retried.
A new attempt never starts while an earlier attempt's supervisor on this host still holds its tree.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from gennaker.spec import shell
from gennaker.spec.models import StageConfig
from gennaker.stages import processes
from gennaker.stages.base import Capabilities, StageType, Task, TaskContext, TaskResult

TAKEOVER_WAIT_SECONDS = 30.0


def takeover_wait() -> float:
    try:
        return float(os.environ.get("GENNAKER_TAKEOVER_WAIT_SECONDS", TAKEOVER_WAIT_SECONDS))
    except ValueError:
        return TAKEOVER_WAIT_SECONDS


class RunConfig(StageConfig):
    shell_fields: ClassVar[tuple[str, ...]] = ("command",)  # text run by /bin/sh (checked by validation)
    command: str | list[str]
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None

    @field_validator("command")
    @classmethod
    def _not_empty(cls, v: str | list[str]) -> str | list[str]:
        if (isinstance(v, str) and not v.strip()) or (isinstance(v, list) and not v):
            raise ValueError("command is empty")
        return v

    @field_validator("env", mode="before")
    @classmethod
    def _env_text(cls, v: Any) -> Any:
        if isinstance(v, dict):
            nested = [str(k) for k, x in v.items() if isinstance(x, list | dict)]
            if nested:
                raise ValueError(f"env values must be text or numbers, not lists or mappings: {', '.join(nested)}")
            return {
                str(k): "" if x is None else (str(x).lower() if isinstance(x, bool) else str(x)) for k, x in v.items()
            }
        return v


class RunStage(StageType[RunConfig]):
    type = "run"
    Config = RunConfig
    description = "Run a command; its output is the stage log; ::output key=value lines become outputs."
    capabilities = Capabilities(streams_log=True)

    def tasks(self, config: RunConfig) -> list[Task[RunConfig]]:
        return [Task("runCommand", self.run_command)]

    def resolve_config(self, raw: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
        """A string command goes through ``/bin/sh``: each value interpolated into it is quoted, so a
        parameter can never become shell syntax. A list command is exec'd: its items are plain text."""
        resolved = super().resolve_config({k: v for k, v in raw.items() if k != "command"}, scope)
        command = raw.get("command")
        if isinstance(command, str):
            resolved["command"] = shell.interpolate(command, scope)
        elif command is not None:
            resolved["command"] = super().resolve_config({"command": command}, scope)["command"]
        return resolved

    @staticmethod
    def _key(ctx: TaskContext[RunConfig]) -> tuple[str, str, int]:
        return (ctx.execution_id, ctx.stage_id, ctx.attempt)

    def run_command(self, ctx: TaskContext[RunConfig]) -> TaskResult:
        registry = ctx.services.processes
        key = self._key(ctx)
        handle = registry.get(key)
        if handle is None:
            if ctx.context.get("supervisor"):
                return self._take_over(ctx)
            if ctx.context.get("pid"):  # started before commands had supervisors: nothing tells if it lives
                return _may_still_run(ctx.context.get("host"), f"pid {ctx.context['pid']} had no supervisor")
            if ctx.context.get("launching") is None:
                earlier = processes.live_earlier_attempts(*key)
                if earlier:
                    return self._wait_for(ctx, "waiting_since", f"attempt {earlier[-1]} of this stage")
                # Commit that we are about to start before starting: if we die after this point, the
                # next worker knows the command may have run and does not silently run it again.
                return TaskResult.running(after=0, pin=True, context={"launching": ctx.worker_id})
            # The intent is committed and no supervisor is: the command has not started anywhere.
            return self._start(ctx)
        if not handle.go_sent:
            if (ctx.context.get("supervisor") or {}).get("pid") != handle.proc.pid:
                # what _start returned was not committed (the engine could not write it): again
                return TaskResult.running(after=0, pin=True, context=self._supervisor_context(ctx, handle))
            # The supervisor's pid is committed: a worker taking over can find it. Only now may it start.
            registry.go(key)
            return TaskResult.running(after=0.02, pin=True)
        code = handle.finished()
        if code is None:
            waited = ctx.now() - handle.started_at
            return TaskResult.running(after=min(1.0, 0.02 + waited / 10), pin=True)
        registry.forget(key)
        return self._result(ctx, handle.status(), code)

    def _start(self, ctx: TaskContext[RunConfig]) -> TaskResult:
        cfg = ctx.config
        argv = ["/bin/sh", "-c", cfg.command] if isinstance(cfg.command, str) else [str(a) for a in cfg.command]
        base = ctx.trigger.get("base_dir") or os.getcwd()
        cwd = str(Path(base, cfg.cwd)) if cfg.cwd else base
        if not Path(cwd).is_dir():
            return TaskResult.failed(f"working directory does not exist: {cwd}")
        env = {
            **os.environ,
            **cfg.env,
            "GENNAKER_EXECUTION_ID": ctx.execution_id,
            "GENNAKER_STAGE_ID": ctx.stage_id,
            "GENNAKER_ATTEMPT": str(ctx.attempt),
        }
        db = ctx.services.db
        from gennaker.engine import logs

        def write(stream: str, lines: list[str]) -> None:
            logs.append(db, ctx.execution_id, ctx.stage_id, ctx.attempt, stream, lines)

        try:
            handle = ctx.services.processes.start(self._key(ctx), argv, env, cwd, write)
        except OSError as exc:
            return TaskResult.failed(f"cannot start the command's supervisor: {exc.strerror or exc}")
        pid = handle.proc.pid
        shown = cfg.command if isinstance(cfg.command, str) else " ".join(argv)
        ctx.log(f"starting under supervisor pid {pid}: {shown}")
        return TaskResult.running(after=0, pin=True, context=self._supervisor_context(ctx, handle))

    @staticmethod
    def _supervisor_context(ctx: TaskContext[RunConfig], handle: processes.Handle) -> dict[str, Any]:
        pid = handle.proc.pid
        supervisor = {
            "pid": pid,
            "start": processes.process_start_time(pid),
            "host": socket.gethostname(),
            "status": str(handle.status_path),
            "worker": ctx.worker_id,
        }
        return {"supervisor": supervisor, "worker": ctx.worker_id, "takeover_since": None}

    def _result(self, ctx: TaskContext[RunConfig], status: processes.RunStatus, supervisor_code: int) -> TaskResult:
        if status.error:
            return TaskResult.failed(status.error)
        if not status.done:
            if status.command_pid:
                processes.kill_group(status.command_pid)
            return _may_still_run(socket.gethostname(), f"its supervisor died (exit code {supervisor_code})")
        if status.reason == "not started":
            return TaskResult.failed("the command was stopped before it started")
        outputs: dict[str, Any] = {**status.outputs, "exit_code": status.exit_code}
        if status.reason == "stopped":
            return TaskResult.failed("command stopped", outputs=outputs)
        code = status.exit_code
        if code != 0:
            reason = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            return TaskResult.failed(f"command failed: {reason}", outputs=outputs)
        return TaskResult.succeeded(outputs=outputs)

    def _take_over(self, ctx: TaskContext[RunConfig]) -> TaskResult:
        """This attempt's worker was lost: find out what its command did before doing anything."""
        sup: dict[str, Any] = ctx.context["supervisor"]
        host, lost = sup.get("host") or "?", sup.get("worker", "?")
        if host != socket.gethostname():
            return _may_still_run(host, f"its worker {lost} was lost and only a worker there can stop it")
        path = Path(sup["status"])
        if processes.locked(path):
            if ctx.context.get("takeover_since") is None:
                # its supervisor sees the worker gone and is stopping the tree; a worker that only
                # stopped beating (but lives) is stopped the same way
                processes.stop_supervisor(sup.get("pid"), sup.get("start"))
                ctx.log(f"worker {lost} was lost; waiting for its supervisor (pid {sup.get('pid')}) to finish")
            return self._wait_for(ctx, "takeover_since", f"the supervisor (pid {sup.get('pid')}) of worker {lost}")
        status = processes.read_status(path)
        if status is None:
            return _may_still_run(host, f"the status file of its supervisor is missing: {path}")
        for stream, lines in processes.spilled_output(path).items():
            from gennaker.engine import logs

            logs.append(ctx.services.db, ctx.execution_id, ctx.stage_id, ctx.attempt, stream, lines)
        if status.done and status.reason == "not started":
            ctx.log(f"worker {lost} was lost before the command started; starting it here")
            return self._start(ctx)
        if status.exited_on_its_own or status.error:
            ctx.log(f"the command finished while its worker {lost} was lost (exit code {status.exit_code})")
            return self._result(ctx, status, 0)
        if not status.done:
            if status.command_pid:
                processes.kill_group(status.command_pid)
            return _may_still_run(host, f"its supervisor (pid {sup.get('pid')}) died without recording its end")
        return TaskResult.failed(
            f"worker lost: worker {lost} stopped while running the command; its supervisor "
            f"(pid {sup.get('pid')}) stopped the command and every process it started"
        )

    def _wait_for(self, ctx: TaskContext[RunConfig], since_key: str, what: str) -> TaskResult:
        since = ctx.context.get(since_key)
        if since is None:
            since = ctx.now()
        elif ctx.now() - since > takeover_wait():
            return _may_still_run(socket.gethostname(), f"{what} still holds its processes after {takeover_wait():g}s")
        return TaskResult.running(after=0.1, pin=True, context={since_key: since})

    def on_cancel(self, ctx: TaskContext[RunConfig]) -> None:
        if ctx.services.processes.terminate(self._key(ctx)):
            return
        sup = ctx.context.get("supervisor")
        if sup and sup.get("host") == socket.gethostname():
            processes.stop_supervisor(sup.get("pid"), sup.get("start"))

    def on_worker_lost(self, ctx: TaskContext[RunConfig]) -> str | TaskResult | None:
        # run_command takes the attempt over (see _take_over); an attempt on another host is decided
        # here, before a timeout could fail it with a retry beside a copy that may still run there
        sup = ctx.context.get("supervisor")
        if sup and sup.get("host") != socket.gethostname():
            lost = sup.get("worker", "?")
            return _may_still_run(sup.get("host"), f"its worker {lost} was lost and only a worker there can stop it")
        return None


def _may_still_run(host: str | None, why: str) -> TaskResult:
    """Fail without a retry: a second copy must never run beside a first one that may be alive."""
    return TaskResult.failed(
        f"an earlier attempt may still be running on {host or '?'}: {why}", context={"_no_retry": True}
    )
