"""``run``: a command on the worker's host. A string runs in ``/bin/sh -c``; a list is exec'd as is.

Its stdout and stderr are the stage log. Lines ``::output key=value`` on stdout become stage outputs,
readable later as ``${stages.<id>.outputs.<key>}``. A non-zero exit fails the stage. If the worker
running the command dies, the command dies with it; the stage is then re-run if it has retries
left, else it fails with "worker lost". The intent to start is committed before the command starts,
so a command is never silently run a second time.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from gennaker.spec.models import StageConfig
from gennaker.stages.base import StageType, Task, TaskContext, TaskResult
from gennaker.stages.processes import kill_group, process_start_time


class RunConfig(StageConfig):
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


class RunStage(StageType):
    type = "run"
    Config = RunConfig
    description = "Run a command; its output is the stage log; ::output key=value lines become outputs."

    def tasks(self, config: Any) -> list[Task]:
        return [Task("runCommand", self.run_command)]

    @staticmethod
    def _key(ctx: TaskContext) -> tuple[str, str, int]:
        return (ctx.execution_id, ctx.stage_id, ctx.attempt)

    def run_command(self, ctx: TaskContext) -> TaskResult:
        registry = ctx.services.processes
        handle = registry.get(self._key(ctx))
        if handle is None:
            launcher = ctx.context.get("launching")
            if launcher is None:
                # Commit that we are about to start before starting: if we die after this point, the
                # next worker knows the command may have run and does not silently run it again.
                return TaskResult.running(after=0, pin=True, context={"launching": ctx.worker_id})
            if launcher != ctx.worker_id or ctx.context.get("pid"):
                return TaskResult.failed(self.on_worker_lost(ctx) or "worker lost")
            return self._start(ctx)
        code = handle.finished()
        if code is None:
            waited = ctx.now() - handle.started_at
            return TaskResult.running(after=min(1.0, 0.02 + waited / 10), pin=True)
        registry.forget(self._key(ctx))
        outputs = dict(handle.outputs)
        outputs["exit_code"] = code
        if code != 0:
            reason = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            return TaskResult.failed(f"command failed: {reason}", outputs=outputs)
        return TaskResult.succeeded(outputs=outputs)

    def _start(self, ctx: TaskContext) -> TaskResult:
        cfg: RunConfig = ctx.config
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
            return TaskResult.failed(f"cannot start {argv[0]}: {exc.strerror or exc}")
        pid = handle.proc.pid
        ctx.log(f"started pid {pid}: {cfg.command if isinstance(cfg.command, str) else ' '.join(argv)}")
        return TaskResult.running(
            after=0.02,
            pin=True,
            context={
                "pid": pid,
                "host": socket.gethostname(),
                "proc_start": process_start_time(pid),
                "worker": ctx.worker_id,
            },
        )

    def on_cancel(self, ctx: TaskContext) -> None:
        if not ctx.services.processes.terminate(self._key(ctx)):
            self._kill_orphan(ctx)

    def on_worker_lost(self, ctx: TaskContext) -> str | None:
        self._kill_orphan(ctx)
        return (
            f"worker lost: worker {ctx.context.get('worker', '?')} stopped while running the command "
            f"(pid {ctx.context.get('pid', '?')})"
        )

    @staticmethod
    def _kill_orphan(ctx: TaskContext) -> None:
        """Kill what is left of a lost worker's command, if it ran here and is still that process."""
        pid = ctx.context.get("pid")
        if not pid or ctx.context.get("host") != socket.gethostname():
            return
        if ctx.context.get("proc_start") and process_start_time(pid) == ctx.context.get("proc_start"):
            kill_group(pid, grace=2.0)
