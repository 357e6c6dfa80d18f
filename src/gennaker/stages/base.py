"""What a stage type is: a config model (its YAML schema) and an ordered list of idempotent tasks.

The engine runs a stage's tasks one after the other. A task is a function ``(ctx) -> TaskResult``:
- ``TaskResult.running(after=…)`` asks to be called again later (no thread is held meanwhile);
- ``succeeded(...)`` moves to the next task; ``failed(...)`` / ``terminal(...)`` end the stage.
A task may be called again after a crash or a lost lease, so it must find what it already did
(by name, by tag, or from ``ctx.context``) instead of doing it twice.
"""

from __future__ import annotations

import builtins
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar

from gennaker.spec import expressions, shell
from gennaker.spec.models import StageConfig

TaskStatus = Literal["RUNNING", "SUCCEEDED", "FAILED", "TERMINAL"]


@dataclass
class TaskResult:
    status: TaskStatus
    outputs: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    poll_after: float = 1.0

    @classmethod
    def running(
        cls,
        after: float = 1.0,
        context: dict[str, Any] | None = None,
        message: str | None = None,
        outputs: dict[str, Any] | None = None,
        pin: bool = False,
    ) -> TaskResult:
        """Poll again in ``after`` seconds. ``pin`` keeps the polling on this worker (it holds a local
        process); if this worker dies, the stage type's ``on_worker_lost`` decides what happens."""
        ctx = dict(context or {})
        if pin:
            ctx["_pin"] = True
        return cls("RUNNING", outputs or {}, ctx, message, after)

    @classmethod
    def succeeded(
        cls, outputs: dict[str, Any] | None = None, context: dict[str, Any] | None = None, message: str | None = None
    ) -> TaskResult:
        return cls("SUCCEEDED", outputs or {}, context or {}, message)

    @classmethod
    def failed(
        cls, message: str, outputs: dict[str, Any] | None = None, context: dict[str, Any] | None = None
    ) -> TaskResult:
        return cls("FAILED", outputs or {}, context or {}, message)

    @classmethod
    def terminal(cls, message: str, outputs: dict[str, Any] | None = None) -> TaskResult:
        """Stop the pipeline on purpose (e.g. a judgment said Stop); continue_on_failure does not apply."""
        return cls("TERMINAL", outputs or {}, {}, message)


C = TypeVar("C", bound=StageConfig)  # a stage type's config model


@dataclass
class TaskContext(Generic[C]):
    """What a task sees. ``context`` is the stage's persisted scratch state (read-only here: return
    changes in ``TaskResult.context``); ``services`` is whatever the host process wired in.
    ``TaskContext[RunConfig]``: ``config`` is a ``RunConfig``, so ``ctx.config.command`` is checked."""

    execution_id: str
    stage_id: str
    pipeline: str
    application: str
    trigger: dict[str, Any]
    config: C  # the stage type's Config model, expressions resolved
    context: dict[str, Any]
    outputs: dict[str, Any]
    attempt: int
    stage_started_at: float
    services: Any
    log: Callable[[str], None]
    worker_id: str = ""
    now: Callable[[], float] = time.time

    @property
    def elapsed(self) -> float:
        return self.now() - self.stage_started_at


@dataclass(frozen=True)
class Capabilities:
    """What a stage type can do, declared as data: the engine, the API, the CLI and the console ask
    these flags (or ``engine.views.awaiting_judgment``), never the type's name. The engine records them
    with each stage it runs, so whoever reads a stage reads them too."""

    waits: bool = False  # shown as WAITING (for time or people) rather than RUNNING
    skippable: bool = False  # an operator may skip it (the ``skip`` signal)
    # it may ask people for a judgment: while WAITING if it also ``waits`` (a manual judgment), else
    # when its context says so (``awaiting_judgment: {options, roles, instructions}``: a rolling deploy)
    judgeable: bool = False
    streams_log: bool = False  # what it runs writes a live log worth showing beside it
    # it changes which server group of a cluster serves (counted in /metrics as a deploy, by the
    # ``strategy`` of its config and its result; a ``rollback`` in its context counts as a rollback)
    deploys: bool = False

    def as_dict(self) -> dict[str, bool]:
        # (not dataclasses.asdict: its deep copy was a tenth of a no-op stage's cost)
        return {name: getattr(self, name) for name in _CAPABILITY_NAMES}

    @classmethod
    def from_dict(cls, stored: Any) -> Capabilities:
        """Read back what ``as_dict`` stored (a stage not started yet has none: nothing)."""
        return cls(**{k: bool(v) for k, v in (stored or {}).items() if k in _CAPABILITY_NAMES})


_CAPABILITY_NAMES = tuple(f.name for f in dataclasses.fields(Capabilities))


@dataclass(frozen=True)
class Task(Generic[C]):
    name: str
    run: Callable[[TaskContext[C]], TaskResult]


class StageType(Generic[C]):
    """Base of stage types. Subclasses name their config model twice, as the type parameter (for the
    type checker: ``class RunStage(StageType[RunConfig])``) and as ``Config`` (for the engine, which
    validates with it), set ``type`` and implement ``tasks``."""

    type: ClassVar[str]
    # `type` is shadowed by the attribute above; a ClassVar cannot name C, hence StageConfig
    Config: ClassVar[builtins.type[StageConfig]]
    description: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    script_fields: ClassVar[tuple[str, ...]] = ()  # fields that may hold a shell script (e.g. user data)

    def tasks(self, config: C) -> list[Task[C]]:
        raise NotImplementedError

    def on_cancel(self, ctx: TaskContext[C]) -> None:
        """Stop whatever the stage started (a process, a deploy); called once when canceled."""

    def resolve_config(self, raw: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
        """The stage's config with its expressions resolved. Values going into a field of
        ``script_fields`` that holds a shell script are quoted for the shell (``gennaker.spec.shell``);
        a type may resolve a field its own way (``run`` quotes what goes into its command)."""
        templates = set(getattr(self.Config, "template_fields", ()))
        resolved: dict[str, Any] = {
            k: shell.resolve_script(v, scope)
            if k in self.script_fields
            else expressions.resolve(v, scope, expressions.TEMPLATE_ROOTS if k in templates else frozenset())
            for k, v in raw.items()
        }
        return resolved

    def on_worker_lost(self, ctx: TaskContext[C]) -> str | TaskResult | None:
        """Called when the task's worker died mid-task. Return a failure reason to fail the
        attempt (it is retried if the stage has retries left), a result to end the task with (before
        any timeout applies), or None to simply run the task again."""
        return None
