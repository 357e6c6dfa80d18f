"""dr_drill: rehearse a disaster-recovery scenario in another region, measure RTO and RPO, tear down.

Tasks: begin (the drill's row is written, RUNNING, before anything is made in AWS) → drill (one
step per call: ops/dr/drill.py) → tear_down (everything tagged with the drill id, unless ``keep``;
an inverted health check always put back). The drill's state lives in the stage context and each
step finds what an earlier attempt made, so a worker killed mid-drill is replaced without a second
drill. The stage fails when a required step fails or an objective is missed. The primary region is
only read.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gennaker.errors import GennakerError
from gennaker.ops.dr import store
from gennaker.ops.dr.drill import Drill, new_state, scrub
from gennaker.ops.dr.tables import dr_drills
from gennaker.spec.durations import Duration, format_duration
from gennaker.spec.models import ID_PATTERN, StageConfig
from gennaker.stages.base import StageType, Task, TaskContext, TaskResult

Scenario = Literal["region_loss", "restore_data", "failover_dns"]
# An AWS region's shape (us-east-1, us-gov-west-1, ap-southeast-2): checked where the document is
# loaded, with its position; whether the account has it is checked when the drill starts.
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"


class Objectives(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rto: Duration | None = None
    rpo: Duration | None = None

    def as_seconds(self) -> dict[str, float | None]:
        return {"rto_s": self.rto, "rpo_s": self.rpo}


class DrDrillConfig(StageConfig):
    account: str = Field(min_length=1, max_length=100)
    application: str | None = None  # default: the pipeline's application
    from_region: str = Field(max_length=50, pattern=REGION_PATTERN)
    to_region: str = Field(max_length=50, pattern=REGION_PATTERN)
    scenario: Scenario = "region_loss"
    objectives: Objectives = Field(default_factory=Objectives)
    keep: bool = False  # leave what the drill built (an inverted health check is put back anyway)
    capacity: int = Field(default=1, ge=1, le=20)  # instances of the DR server group
    instance_type: str = Field(default="t3.small", max_length=50, pattern=r"^[a-z0-9-]+\.[a-z0-9-]+$")
    health_timeout: Duration = 900.0  # how long a restore or the server group may take
    dns_wait: Duration = 60.0  # how long to wait for Route 53 to see the inverted health check

    @field_validator("application")
    @classmethod
    def _application_name(cls, v: str | None) -> str | None:
        if v is not None and not ID_PATTERN.match(v):
            raise ValueError(f"'{v[:40]}' is not a valid application name (letters, digits, '-', '_')")
        return v

    @model_validator(mode="after")
    def _other_region(self) -> DrDrillConfig:
        # region_loss deploys behind the application's load balancer in to_region: in the primary
        # region that would be production's. restore_data only makes new resources, so it may.
        if self.scenario != "restore_data" and self.from_region == self.to_region:
            raise ValueError(f"{self.scenario} needs to_region to differ from from_region ({self.from_region})")
        return self


def _options(cfg: DrDrillConfig) -> dict[str, Any]:
    return {
        "capacity": cfg.capacity,
        "instance_type": cfg.instance_type,
        "health_timeout": cfg.health_timeout,
        "dns_wait": cfg.dns_wait,
    }


def summary(report: dict[str, Any], status: str) -> str:
    rto, rpo = report.get("rto_s"), report.get("rpo_s")
    shown = [format_duration(x) if x is not None else "unknown" for x in (rto, rpo)]
    figures = f"RTO {shown[0]}, RPO {shown[1]}"
    failed = [s["name"] for s in report["steps"] if s["status"] == "FAIL"]
    unknown = [s["name"] for s in report["steps"] if s["status"] == "UNKNOWN"]
    parts = [f"drill {status.lower()}: {figures}"]
    if report.get("met_objectives") is False:
        parts.append("objectives missed")
    if failed:
        parts.append(f"failed: {', '.join(failed)}")
    if unknown:
        parts.append(f"unknown: {', '.join(unknown)}")
    if report.get("missing"):
        parts.append(
            f"missing: {report['missing'][0]}"
            + (f" (+{len(report['missing']) - 1})" if len(report["missing"]) > 1 else "")
        )
    return "; ".join(parts)


class DrDrill(StageType[DrDrillConfig]):
    type = "dr_drill"
    Config = DrDrillConfig
    description = "Rehearse a DR scenario in another region, measure RTO and RPO, and tear down"

    def tasks(self, config: DrDrillConfig) -> list[Task[DrDrillConfig]]:
        return [Task("begin", self.begin), Task("drill", self.drill), Task("tear_down", self.tear_down)]

    def _drill(self, ctx: TaskContext[DrDrillConfig]) -> Drill:
        return Drill(ctx.services, copy.deepcopy(ctx.context["drill"]), ctx.execution_id, ctx.stage_id)

    def _save(self, ctx: TaskContext[DrDrillConfig], d: Drill) -> None:
        with ctx.services.db.begin() as conn:
            store.save_progress(
                conn, d.s["id"], report=d.report(), rpo=d.s["rpo"], rpo_s=d.s["rpo_s"], rto_s=d.s["rto_s"]
            )

    def begin(self, ctx: TaskContext[DrDrillConfig]) -> TaskResult:
        if ctx.context.get("drill"):
            return TaskResult.succeeded()
        cfg = ctx.config
        application = cfg.application or ctx.application
        with ctx.services.db.begin() as conn:
            # An earlier attempt may have written the row and died before its context was saved.
            row = conn.execute(
                dr_drills.select().where(
                    dr_drills.c.execution_id == ctx.execution_id,
                    dr_drills.c.stage_id == ctx.stage_id,
                    dr_drills.c.status == "RUNNING",
                )
            ).first()
            if row is not None:
                drill_id, started = row.id, float(row.started_at)
            else:
                started = ctx.now()
                drill_id = store.start_drill(
                    conn,
                    application=application,
                    account=cfg.account,
                    scenario=cfg.scenario,
                    from_region=cfg.from_region,
                    to_region=cfg.to_region,
                    objectives=cfg.objectives.as_seconds(),
                    execution_id=ctx.execution_id,
                    stage_id=ctx.stage_id,
                    started_at=started,
                )
        state = new_state(
            drill_id,
            scenario=cfg.scenario,
            application=application,
            account=cfg.account,
            from_region=cfg.from_region,
            to_region=cfg.to_region,
            started_at=started,
            objectives=cfg.objectives.as_seconds(),
            keep=cfg.keep,
            options=_options(cfg),
        )
        ctx.log(f"DR drill {drill_id}: {cfg.scenario} of {application}, {cfg.from_region} -> {cfg.to_region}")
        return TaskResult.succeeded(outputs={"drill_id": drill_id}, context={"drill": state})

    def drill(self, ctx: TaskContext[DrDrillConfig]) -> TaskResult:
        try:
            d = self._drill(ctx)
        except GennakerError as exc:  # e.g. an account that is not AWS: nothing was created
            with ctx.services.db.begin() as conn:
                store.finish_drill(conn, ctx.context["drill"]["id"], "FAILED", ended_at=ctx.now())
            return TaskResult.failed(scrub(str(exc)))
        if d.s["phase"] != "steps":
            return TaskResult.succeeded()
        before = [s["status"] for s in d.s["steps"]]
        after = d.advance(ctx.now())
        for old, new in zip(before, d.s["steps"], strict=True):
            if old != new["status"] and new["status"] not in ("RUNNING", "PENDING"):
                ctx.log(f"{new['name']}: {new['status']} ({new['duration_s']}s) {new['detail']}")
        self._save(ctx, d)
        if d.s["phase"] == "steps":
            step = d.s["steps"][min(d.s["cursor"], len(d.s["steps"]) - 1)]
            return TaskResult.running(
                after=after or 0.0, context={"drill": d.s}, message=f"{step['name']}: {step['detail'] or 'running'}"
            )
        return TaskResult.succeeded(context={"drill": d.s}, outputs={"rto_s": d.s["rto_s"], "rpo_s": d.s["rpo_s"]})

    def tear_down(self, ctx: TaskContext[DrDrillConfig]) -> TaskResult:
        d = self._drill(ctx)
        try:
            after = d.advance(ctx.now()) if d.s["phase"] == "teardown" else None
        except GennakerError as exc:  # AWS refused or failed: every tear-down step is safe to repeat
            errors = int(d.s.get("teardown_errors", 0)) + 1
            if errors >= 5:
                message = d.scrub(f"tear-down of drill {d.s['id']} failed: {exc}")
                report = d.report()
                report["missing"].append(f"{message}; what is tagged gennaker:drill={d.s['id']} may be left")
                with ctx.services.db.begin() as conn:
                    store.finish_drill(conn, d.s["id"], "FAILED", report=report, ended_at=ctx.now())
                return TaskResult.failed(message, context={"drill": d.s})
            ctx.log(d.scrub(f"tear-down: {exc}; trying again"))
            return TaskResult.running(after=5.0, context={"drill": {**d.s, "teardown_errors": errors}})
        if d.s["phase"] != "done":
            self._save(ctx, d)
            return TaskResult.running(after=after or 1.0, context={"drill": d.s}, message="tearing down")
        for line in d.s["teardown"]:
            ctx.log(f"tear-down: {line}")
        report, status = d.report(), d.status()
        if d.s.get("left"):
            status = "FAILED"
            report["missing"].append("left behind by the tear-down: " + ", ".join(d.s["left"]))
        with ctx.services.db.begin() as conn:
            store.finish_drill(
                conn,
                d.s["id"],
                status,
                report=report,
                rto_s=d.s["rto_s"],
                rpo=d.s["rpo"],
                rpo_s=d.s["rpo_s"],
                ended_at=ctx.now(),
            )
        outputs = {
            "drill_id": d.s["id"],
            "rto_s": d.s["rto_s"],
            "rpo_s": d.s["rpo_s"],
            "status": status,
            "report": report,
        }
        message = summary(report, status)
        if status == "FAILED":
            return TaskResult.failed(message, outputs=outputs, context={"drill": d.s})
        return TaskResult.succeeded(outputs=outputs, context={"drill": d.s}, message=message)

    def on_cancel(self, ctx: TaskContext[DrDrillConfig]) -> None:
        state = ctx.context.get("drill")
        if not state:
            ctx.log("cancel: the drill had not started; nothing to tear down")
            return
        d = Drill(ctx.services, copy.deepcopy(state), ctx.execution_id, ctx.stage_id)
        if d.s["phase"] == "done":
            return
        d.cancel()
        for line in d.s["teardown"]:
            ctx.log(f"cancel: {line}")
        # The engine also stops a stage this way when its ``timeout:`` expires: that is a failure.
        timed_out = ctx.config.timeout is not None and ctx.elapsed > ctx.config.timeout
        report = d.report()
        if timed_out:
            report["missing"].append(f"the drill timed out after {format_duration(ctx.config.timeout or 0)}")
        with ctx.services.db.begin() as conn:
            store.finish_drill(
                conn, d.s["id"], "FAILED" if timed_out else "CANCELED", report=report, ended_at=ctx.now()
            )
