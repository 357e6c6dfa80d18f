"""``gennaker plan``: what each cloud stage of a pipeline would do, given today's state, changing nothing.

The planner calls the very functions the stages run (choose_name, strategy_actions, the stages'
``plan`` methods), so a plan and the deploy that follows it cannot disagree on the same state.
Stages are planned in dependency order, each against the clusters as the stages planned before
it would leave them (an in-memory model: groups created, enabled, disabled, resized, destroyed), so
a stage that destroys the canary an earlier stage creates plans exactly that.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from gennaker.cloud.actions import Action
from gennaker.cloud.model import ModelProvider
from gennaker.cloud.provider import CloudProvider
from gennaker.cloud.registry import provider_for
from gennaker.errors import GennakerError
from gennaker.spec import expressions
from gennaker.spec.models import Pipeline, StageConfig


class PlannedStage(Protocol):
    """A stage type that can say what it would do (deploy, cleanup, the server group stages): the
    planner asks each stage type for its plan instead of knowing the types."""

    Config: type[BaseModel]

    def plan(self, ctx: Any, provider: CloudProvider) -> tuple[list[Action], dict[str, Any]]: ...


@dataclass
class PlanContext:
    """What a stage's ``plan`` reads of its task context, for an execution that does not exist."""

    stage_id: str
    pipeline: str
    application: str
    config: Any
    services: Any
    execution_id: str = "plan"
    trigger: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    attempt: int = 0
    stage_started_at: float = 0.0
    log: Callable[[str], None] = lambda _line: None
    worker_id: str = ""
    now: Callable[[], float] = time.time


@dataclass
class StagePlan:
    stage_id: str
    type: str
    account: str | None = None
    region: str | None = None
    cluster: str | None = None
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage_id": self.stage_id,
            "type": self.type,
            "account": self.account,
            "region": self.region,
            "cluster": self.cluster,
            "actions": [{**a.to_dict(), "description": a.describe()} for a in self.actions],
            "notes": self.notes,
            "error": self.error,
        }


def _lenient(value: Any, scope: dict[str, Any]) -> Any:
    """Resolve what can be resolved now; keep ``${stages...}`` and other unknowns as written."""
    if isinstance(value, str):
        try:
            return expressions.resolve(value, scope)
        except expressions.ExpressionError:
            return value
    if isinstance(value, dict):
        return {k: _lenient(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [_lenient(v, scope) for v in value]
    return value


def dependency_order(stages: list[StageConfig]) -> list[StageConfig]:
    """Stages with every stage they require before them, otherwise in file order."""
    done: set[str] = set()
    ordered: list[StageConfig] = []
    pending = list(stages)
    while pending:
        ready = [s for s in pending if set(s.requires) <= done] or pending[:1]  # a cycle: file order
        stage = ready[0]
        pending.remove(stage)
        ordered.append(stage)
        done.add(stage.id)
    return ordered


def plan_pipeline(
    pipeline: Pipeline, registry: Mapping[str, Any], services: Any, params: dict[str, Any] | None = None
) -> list[StagePlan]:
    """Plan every stage of ``pipeline`` whose type can plan (deploy, cleanup, server group stages)."""
    values = {p.name: p.default for p in pipeline.parameters} | (params or {})
    scope = {
        "parameters": values,
        "trigger": {"params": values},
        "application": pipeline.application,
        "pipeline": {"name": pipeline.name},
    }
    plans = []
    models: dict[tuple[str, str], ModelProvider] = {}
    for stage in dependency_order(list(pipeline.stages)):
        stype: PlannedStage | None = registry.get(stage.type)
        if stype is None or not callable(getattr(stype, "plan", None)):
            continue
        plan = StagePlan(stage.id, stage.type)
        plans.append(plan)
        try:
            raw = _lenient(stage.model_dump(mode="json", exclude={"when"}, warnings=False), scope)
            cfg: Any = stype.Config.model_validate(raw)
            plan.account, plan.region = cfg.account, cfg.region
            real = provider_for(services, cfg.account, cfg.region)
            plan.account, plan.region = real.account, real.region
            key = (real.account, real.region)
            if key not in models:
                models[key] = ModelProvider(real)
            provider = models[key]
            if stage.when:
                plan.notes.append(f"runs only when {stage.when}")
            cluster = getattr(cfg, "cluster", None)
            plan.cluster = cluster(pipeline.application) if callable(cluster) else None
            context = PlanContext(stage.id, pipeline.name, pipeline.application, cfg, services)
            plan.actions, _outputs = stype.plan(context, provider)
            notes = getattr(stype, "plan_notes", None)
            plan.notes += notes(cfg) if callable(notes) else []
            created_here = {a.server_group for a in plan.actions if a.kind == "create"}
            for name in dict.fromkeys(a.server_group for a in plan.actions):
                if name in provider.created_by and name not in created_here:
                    plan.notes.append(f"{name} is created by stage {provider.created_by[name]}")
            provider.apply(stage.id, plan.actions)
        except (GennakerError, ValidationError, ValueError) as exc:
            plan.error = str(exc)
    return plans


def render(plans: list[StagePlan]) -> str:
    """Plain text, one block per stage (the CLI prints it)."""
    if not plans:
        return "No deploy, cleanup or server group stages to plan.\n"
    lines = []
    for p in plans:
        where = f"{p.account}/{p.region}" if p.account else "?"
        lines.append(f"{p.stage_id} ({p.type}) in {where}" + (f", cluster {p.cluster}" if p.cluster else ""))
        if p.error:
            lines.append(f"  cannot plan: {p.error}")
        for a in p.actions:
            symbol = {
                "create": "+",
                "destroy": "-",
                "disable": "~",
                "disable_share": "~",
                "resize": "~",
                "enable": "~",
            }.get(a.kind, " ")
            lines.append(f"  {symbol} {a.describe()}")
        if not p.actions and not p.error:
            lines.append("    nothing to do")
        lines += [f"  note: {n}" for n in p.notes]
    return "\n".join(lines) + "\n"
