"""The deploy stage: create the cluster's next server group, wait until it is healthy, apply the
strategy, and roll back when it fails.

Tasks: create_server_group → wait_for_healthy → apply_strategy. Each keeps its progress in the
stage context and finds what an earlier attempt created (by name and by the execution/stage tags),
so a worker killed at any point and restarted never makes a second server group.
The fields here are the cloud-neutral ones; what only one provider understands (AWS: instance_type,
subnets, target_groups, ...; local: command, env, load_balancers) is checked by that provider's
model, chosen by the account's kind (``gennaker.cloud.registry``).
A failure after the new group exists (unhealthy, timed out, an AWS error) switches the running
task into rollback mode: the previous group is re-enabled and healthy before the new one is taken
out, then the task fails with both stories in its message.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from gennaker.cloud import naming, registry
from gennaker.cloud.actions import JUDGMENT_OPTIONS, Action, HealthTimeout, run_action
from gennaker.cloud.lease import held_by_other, lease_value
from gennaker.cloud.provider import (
    TAG_DEPLOYING,
    TAG_EXECUTION,
    AlarmState,
    Capacity,
    CloudProvider,
    NotSupported,
    ServerGroup,
    ServerGroupSpec,
)
from gennaker.cloud.strategies import (
    StrategyName,
    StrategyOptions,
    cancel_actions,
    initial_capacity,
    percentages,
    previous_server_group,
    rollback_actions,
    strategy_actions,
)
from gennaker.cloud.tasks import ActionFailed, CapacityModel, CloudStageConfig, advance
from gennaker.errors import GennakerError
from gennaker.metrics.sources import Scope
from gennaker.spec.durations import Duration, format_duration
from gennaker.stages import watch as watching
from gennaker.stages.base import Capabilities, StageType, Task, TaskContext, TaskResult

# Failures that mean "this deploy did not work" (roll back), as opposed to bugs in Gennaker.
DEPLOY_FAILURES = (GennakerError, HealthTimeout, ValueError)
MAX_ROLLBACK_ATTEMPTS = 5
# Added to a deploy's worst-case duration for its cluster lease: polls, API latency, a worker restart.
LEASE_MARGIN = 900.0


class Judgment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instructions: str = "Check the new server group, then continue or roll back."
    roles: list[str] = Field(default_factory=list)  # who may answer; empty: anyone who may judge


class PauseForJudgment(BaseModel):
    """``pause_between_steps: {judgment: {instructions, roles}}``: wait for an operator between steps."""

    model_config = ConfigDict(extra="forbid")

    judgment: Judgment


class DeployConfig(CloudStageConfig):
    # Extras are the provider's fields, checked by its model (see CloudStageConfig).
    model_config = ConfigDict(extra="allow")
    provider_stage: ClassVar[str | None] = "deploy"

    stack: str = ""
    detail: str = ""
    image: str
    capacity: CapacityModel
    tags: dict[str, str] = Field(default_factory=dict)
    strategy: StrategyName = "red_black"
    max_remaining_server_groups: int = Field(default=0, ge=0)
    delay_before_disable: Duration = 0.0
    scale_down: bool = False
    delay_before_scale_down: Duration = 0.0
    target_percentages: list[int] = Field(default_factory=lambda: [50, 100])
    pause_between_steps: Duration | PauseForJudgment = 0.0
    rollback_on_failure: bool = True
    destroy_on_rollback: bool = False
    health_timeout: Duration = 1800.0
    # After cutover: watch alarms and metric conditions, and roll back when one fires (stages/watch.py).
    watch: watching.WatchConfig | None = None
    on_alarm_before: Literal["warn", "refuse"] = "warn"  # a watched alarm already in ALARM

    @field_validator("watch")
    @classmethod
    def _watchable(cls, v: watching.WatchConfig | None, info: ValidationInfo) -> watching.WatchConfig | None:
        """What the account's kind can watch (once bound to a configuration), and a previous group
        left to roll back to."""
        if v is None:
            return v
        if info.data.get("rollback_on_failure", True) and (
            info.data.get("strategy") == "highlander" or info.data.get("max_remaining_server_groups") == 1
        ):
            raise ValueError(
                "it rolls back to the previous server group, which highlander or "
                "max_remaining_server_groups: 1 destroys at cutover"
            )
        account = info.data.get("account")
        kind_name = (cls.account_kinds or {}).get(account) if isinstance(account, str) else None
        kind = registry.PROVIDERS.get(kind_name) if kind_name else None
        if kind is None:
            return v  # unbound: the watch's first poll says what the provider cannot read
        if v.alarms and not kind.alarms:
            raise ValueError(
                f"alarms: account {account} is of kind {kind.name}, which has no alarms; "
                "watch metric conditions instead"
            )
        for c in v.metrics:
            if c.source not in kind.metric_sources:
                raise ValueError(
                    f"metrics: source '{c.source}' cannot see server groups of account {account} "
                    f"(kind {kind.name}: {', '.join(kind.metric_sources)})"
                )
        return v

    def options(self) -> StrategyOptions:
        return StrategyOptions(
            strategy=self.strategy,
            max_remaining_server_groups=self.max_remaining_server_groups,
            delay_before_disable=self.delay_before_disable,
            scale_down=self.scale_down,
            delay_before_scale_down=self.delay_before_scale_down,
            target_percentages=list(self.target_percentages),
            pause_between_steps=self.pause_seconds(),
            pause_judgment=(
                self.pause_between_steps.judgment.model_dump()
                if isinstance(self.pause_between_steps, PauseForJudgment)
                else None
            ),
            destroy_on_rollback=self.destroy_on_rollback,
            health_timeout=self.health_timeout,
        )

    def cluster(self, application: str) -> str:
        return naming.cluster_name(application, self.stack, self.detail)

    def lease_seconds(self) -> float:
        """How long this deploy may hold its cluster: every health wait and delay it can make, plus
        a margin; the stage's own ``timeout:`` when shorter (its expiry cancels the deploy)."""
        waits = 1 + (len(percentages(self.options())) if self.strategy == "rolling_red_black" else 0)
        steps = len(self.target_percentages) if self.strategy == "rolling_red_black" else 0
        bound = (
            waits * self.health_timeout
            + self.delay_before_disable
            + self.delay_before_scale_down
            + steps * self.pause_seconds()
            + (self.watch.for_ if self.watch else 0.0)
            + LEASE_MARGIN
        )
        return min(bound, self.timeout + LEASE_MARGIN) if self.timeout else bound

    def pause_seconds(self) -> float:
        """The timed pause (0 for a judgment, which has no bound: its lease is renewed while waiting)."""
        return 0.0 if isinstance(self.pause_between_steps, PauseForJudgment) else float(self.pause_between_steps)


def choose_name(provider: CloudProvider, cluster: str, groups: list[ServerGroup]) -> str:
    """The next free name, counting what a crashed create left (an AWS launch template) so that its
    name is not reused by another execution."""
    used = [g.name for g in groups] + provider.names_in_use(cluster)
    return naming.next_server_group(used, cluster)


def plan_deploy(provider: CloudProvider, cfg: DeployConfig, application: str) -> list[Action]:
    """The actions a deploy would take now: create, wait until healthy, then the strategy's."""
    cluster = cfg.cluster(application)
    groups = provider.list_server_groups(cluster=cluster)
    name = choose_name(provider, cluster, groups)
    previous = previous_server_group(groups)
    opts = cfg.options()
    full = cfg.capacity.to_capacity()
    capacity = initial_capacity(opts, full, previous is not None)
    actions = [Action("create", name, capacity, reason=f"image {cfg.image}")]
    if capacity.desired:
        actions.append(Action("wait_healthy", name, count=capacity.desired, seconds=cfg.health_timeout))
    return actions + strategy_actions(opts, groups, name, full)


def _current(saved: dict[str, Any]) -> Action | None:
    """The action a saved action list is at, if any is left."""
    step, actions = int(saved.get("step", 0)), saved.get("actions") or []
    return Action.from_dict(actions[step]) if step < len(actions) else None


def _region(ctx: TaskContext) -> str | None:
    """The region the stage acts in: as written, or its account's only one (a local account's)."""
    acct = ctx.services.config.accounts.get(ctx.config.account)
    return ctx.config.region or (acct.regions[0] if acct is not None and len(acct.regions) == 1 else None)


def _snapshot(group: ServerGroup | None) -> dict[str, Any] | None:
    return None if group is None else {"name": group.name, "capacity": group.capacity.as_dict()}


class Deploy(StageType):
    type = "deploy"
    Config = DeployConfig
    description = "Create the next server group of a cluster and cut over with a strategy"
    # a rolling deploy may pause between steps for a judgment
    capabilities = Capabilities(judgeable=True, deploys=True)
    script_fields = ("user_data",)  # a #!/bin/sh script runs as root: values in it are quoted

    def tasks(self, config: Any) -> list[Task]:
        watch: watching.WatchConfig | None = config.watch
        return [
            *([Task("check_alarms", self.check_alarms)] if watch and watch.alarms else []),
            Task("create_server_group", self._guarded(self.create_server_group)),
            Task("wait_for_healthy", self._guarded(self.wait_for_healthy)),
            Task("apply_strategy", self._guarded(self.apply_strategy)),
            *([Task("watch", self._guarded(self.watch))] if watch else []),
        ]

    def plan(self, ctx: TaskContext, provider: CloudProvider) -> tuple[list[Action], dict[str, Any]]:
        """What ``gennaker plan`` shows: the very actions the tasks below would take on this state."""
        cfg: DeployConfig = ctx.config
        return plan_deploy(provider, cfg, ctx.application), {}

    def plan_notes(self, config: Any) -> list[str]:
        notes = [f"image comes from {config.image} at run time"] if "${" in str(config.image) else []
        if config.watch is not None:
            notes.append(
                f"after cutover, watches {config.watch.describe()} for {format_duration(config.watch.for_)} "
                "and rolls back to the previous server group if one fires"
            )
        return notes

    # --- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _provider(ctx: TaskContext) -> CloudProvider:
        cfg: DeployConfig = ctx.config
        return registry.provider_for(ctx.services, cfg.account, cfg.region)

    @staticmethod
    def _outputs(ctx: TaskContext, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        c = {**ctx.context, **(extra or {})}
        out = {
            "server_group": c.get("server_group"),
            "previous_server_group": c.get("previous_server_group"),
            "image_id": c.get("image_id"),
            "cluster": c.get("cluster"),
            "account": ctx.config.account,
            "region": _region(ctx),
        }
        if ctx.config.watch is not None:
            out["alarms_before"] = c.get("alarms_before")
            out["watch"] = watching.summary(c.get("watch"))
        return out

    def _release(self, ctx: TaskContext, provider: CloudProvider, name: str | None) -> None:
        """Clear this deploy's lease on the cluster (see cloud/lease.py). A failure to clear it is
        logged, not raised: the deploy's own outcome stands, and the lease expires by itself."""
        if not name:
            return
        try:
            provider.delete_server_group_tag(name, TAG_DEPLOYING)
        except GennakerError as exc:
            ctx.log(f"could not clear the deploy lease on {name} ({exc}); it expires by itself")

    def _renew_lease(self, ctx: TaskContext, provider: CloudProvider, name: str) -> dict[str, Any]:
        """A judgment has no time bound: keep the cluster's lease alive while waiting for one,
        renewing it when half of it has run out."""
        cfg: DeployConfig = ctx.config
        renewed = float(ctx.context.get("lease_renewed_at") or 0.0)
        if ctx.now() - renewed < cfg.lease_seconds() / 2:
            return {}
        provider.set_server_group_tag(
            name, TAG_DEPLOYING, lease_value(ctx.execution_id, ctx.now() + cfg.lease_seconds())
        )
        return {"lease_renewed_at": ctx.now()}

    def _guarded(self, step: Any) -> Any:
        def run(ctx: TaskContext) -> TaskResult:
            if ctx.context.get("rollback"):
                return self._roll_back(ctx)
            try:
                result: TaskResult = step(ctx)
                return result
            except DEPLOY_FAILURES as exc:
                # A destroy cut short (group deleted, template not yet) is finished, not undone.
                finish = exc.action if isinstance(exc, ActionFailed) and exc.action.kind == "destroy" else None
                return self._fail(ctx, str(exc), finish=finish)

        return run

    def _fail(
        self, ctx: TaskContext, reason: str, known: dict[str, Any] | None = None, finish: Action | None = None
    ) -> TaskResult:
        """Fail, or start the rollback; ``known`` is state not yet persisted (a create cut short)."""
        cfg: DeployConfig = ctx.config
        context = {**ctx.context, **(known or {})}
        new = context.get("server_group")
        previous = context.get("previous")
        ctx.log(f"deploy failed: {reason}")
        if not (cfg.rollback_on_failure and new and previous):
            why = "rollback_on_failure is off" if not cfg.rollback_on_failure else "nothing to roll back to"
            self._release(ctx, self._provider(ctx), new)
            return TaskResult.failed(f"{reason} (no rollback: {why})", outputs=self._outputs(ctx))
        ctx.log(f"rolling back to {previous['name']}")
        return TaskResult.running(
            after=0,
            context={
                **(known or {}),
                "awaiting_judgment": None,
                "rollback": {
                    "reason": reason,
                    "progress": None,
                    "errors": 0,
                    "finish": finish.to_dict() if finish else None,
                },
            },
            message=f"rolling back to {previous['name']}",
        )

    def _roll_back(self, ctx: TaskContext) -> TaskResult:
        cfg: DeployConfig = ctx.config
        rb = dict(ctx.context["rollback"])
        new, prev = ctx.context["server_group"], ctx.context["previous"]
        try:
            progress = advance(
                self._provider(ctx),
                rb["progress"],
                lambda: (
                    [Action.from_dict(d) for d in [rb.get("finish")] if d]
                    + rollback_actions(cfg.options(), prev["name"], Capacity.from_dict(prev["capacity"]), new)
                ),
                ctx.now,
                cfg.poll_interval,
                ctx.log,
            )
        except DEPLOY_FAILURES as exc:
            rb["errors"] = int(rb.get("errors", 0)) + 1
            if rb["errors"] >= MAX_ROLLBACK_ATTEMPTS:
                rb["result"] = "failed"
                self._release(ctx, self._provider(ctx), new)
                return TaskResult.failed(
                    f"{rb['reason']}; rollback to {prev['name']} failed too: {exc}",
                    outputs=self._outputs(ctx),
                    context={"rollback": rb},
                )
            ctx.log(f"rollback step failed ({exc}); retrying")
            return TaskResult.running(after=cfg.poll_interval, context={"rollback": rb})
        rb["progress"] = progress.context
        if not progress.done:
            return TaskResult.running(after=progress.poll_after, context={"rollback": rb}, message=progress.message)
        tail = "destroyed" if cfg.destroy_on_rollback else "disabled"
        rb["result"] = "completed"
        self._release(ctx, self._provider(ctx), new)
        return TaskResult.failed(
            f"{rb['reason']}; rolled back: {prev['name']} is serving again, {new} {tail}",
            outputs=self._outputs(ctx),
            context={"rollback": rb},
        )

    # --- cancel ---------------------------------------------------------------------------------
    def on_cancel(self, ctx: TaskContext) -> None:
        """Canceled, or the stage's ``timeout:`` expired: put the cluster back to exactly the previous
        group serving, at once (no health waits: the engine needs this to return within seconds).

        Everything here is read from AWS again and every action is idempotent, so a cancel delivered
        twice does the same thing twice. Only a group tagged with this execution is ever touched.
        """
        cfg: DeployConfig = ctx.config
        provider = self._provider(ctx)
        cluster = cfg.cluster(ctx.application)
        # A create cut short by the cancel has not saved its name yet: find it by our tags.
        new = ctx.context.get("server_group") or provider.find_created_by(cluster, ctx.execution_id, ctx.stage_id)
        if not new:
            ctx.log("cancel: this deploy had not created a server group yet; nothing to undo")
            return
        group = provider.get_server_group(new)
        if group is None:
            ctx.log(f"cancel: {new} does not exist (any more); nothing to undo")
            return
        owner = group.tags.get(TAG_EXECUTION)
        if owner != ctx.execution_id:
            ctx.log(f"cancel: {new} was created by execution {owner or '?'}, not this one; leaving it")
            return
        previous = ctx.context.get("previous")
        if previous is None and not ctx.context.get("server_group"):
            # Not saved yet: nothing of the strategy ran, so the cluster's serving group is the previous one.
            found = previous_server_group([g for g in provider.list_server_groups(cluster=cluster) if g.name != new])
            previous = _snapshot(found)
        if previous is None:
            ctx.log(f"cancel: {new} has no previous server group to go back to; leaving it as it is")
            self._release(ctx, provider, new)
            return
        if provider.get_server_group(previous["name"]) is None:
            ctx.log(f"cancel: previous server group {previous['name']} is gone; leaving {new} serving")
            self._release(ctx, provider, new)
            return
        actions = cancel_actions(cfg.options(), previous["name"], Capacity.from_dict(previous["capacity"]), new)
        for action in actions:
            run_action(provider, action, {}, ctx.now(), cfg.poll_interval)
            ctx.log(f"cancel: {action.describe()}")
        self._release(ctx, provider, new)
        ctx.log(f"cancel: {previous['name']} is serving again; {new} taken out")

    # --- tasks ---------------------------------------------------------------------------------
    def _settle_failed_create(self, ctx: TaskContext, reason: str, known: dict[str, Any]) -> TaskResult:
        """A create failed: roll back what it made, but only if it is ours.

        A name clash (another execution took the same vNNN first: its launch template or ASG is
        there, or CreateLaunchTemplate said AlreadyExists) means the group is someone else's,
        serving or being deployed; it must never be disabled or destroyed. Ownership is read from
        the tags; if AWS does not answer, ask again later rather than guess either way.
        """
        cfg: DeployConfig = ctx.config
        name = known["server_group"]
        tries = int((ctx.context.get("create_failed") or {}).get("tries", 0)) + 1
        try:
            owner = self._provider(ctx).server_group_owner(name)
        except GennakerError as exc:
            if tries >= MAX_ROLLBACK_ATTEMPTS:
                return TaskResult.failed(
                    f"{reason} (no rollback: could not tell whether {name} is ours: {exc})",
                    outputs=self._outputs(ctx),
                )
            ctx.log(f"create of {name} failed ({reason}); looking up its owner failed too ({exc}); retrying")
            pending = {"reason": reason, "known": known, "tries": tries}
            return TaskResult.running(after=cfg.poll_interval, context={"create_failed": pending})
        if owner == (ctx.execution_id, ctx.stage_id):
            return self._fail(ctx, reason, known=known)
        ctx.log(f"deploy failed: {reason}")
        whose = f"it belongs to execution {owner[0] or '?'}" if owner else "nothing of it exists"
        return TaskResult.failed(
            f"{reason} (no rollback: {name} was not created by this deploy; {whose})", outputs=self._outputs(ctx)
        )

    def create_server_group(self, ctx: TaskContext) -> TaskResult:
        cfg: DeployConfig = ctx.config
        if ctx.context.get("server_group"):
            return TaskResult.succeeded(outputs=self._outputs(ctx))
        pending = ctx.context.get("create_failed")
        if pending:
            return self._settle_failed_create(ctx, pending["reason"], pending["known"])
        provider = self._provider(ctx)
        cluster = cfg.cluster(ctx.application)
        groups = provider.list_server_groups(cluster=cluster, with_health=False)
        name = provider.find_created_by(cluster, ctx.execution_id, ctx.stage_id)
        if name:
            ctx.log(f"found {name} from an earlier attempt of this stage; reusing it")
        else:
            other = held_by_other(groups, ctx.execution_id, ctx.now())
            if other:
                return TaskResult.failed(
                    f"cluster {cluster} is being deployed by {other.describe()}; refusing to deploy to it "
                    "at the same time (each would disable the other's new server group). Run again when "
                    "that deploy has ended.",
                    outputs=self._outputs(ctx),
                )
            name = choose_name(provider, cluster, groups)
        previous = previous_server_group([g for g in groups if g.name != name])
        image_id = provider.resolve_image(cfg.image)
        capacity = initial_capacity(cfg.options(), cfg.capacity.to_capacity(), previous is not None)
        kind = registry.kind_of(ctx.services.config, cfg.account).name
        spec = provider.prepare_server_group(
            ServerGroupSpec(
                name=name,
                application=ctx.application,
                image=image_id,
                capacity=capacity,
                provider_options=cfg.provider_options(kind),
                tags={**cfg.tags, TAG_DEPLOYING: lease_value(ctx.execution_id, ctx.now() + cfg.lease_seconds())},
                execution_id=ctx.execution_id,
                stage_id=ctx.stage_id,
            )
        )
        context = {
            "server_group": name,
            "cluster": cluster,
            "image_id": image_id,
            "previous_server_group": previous.name if previous else None,
            "previous": _snapshot(previous),
            "initial_capacity": capacity.as_dict(),
        }
        try:
            provider.create_server_group(spec)
        except DEPLOY_FAILURES as exc:
            return self._settle_failed_create(ctx, str(exc), context)
        ctx.log(f"created {name} from {image_id} ({capacity}); previous: {previous.name if previous else 'none'}")
        return TaskResult.succeeded(outputs=self._outputs(ctx, context), context=context)

    def wait_for_healthy(self, ctx: TaskContext) -> TaskResult:
        cfg: DeployConfig = ctx.config
        desired = Capacity.from_dict(ctx.context["initial_capacity"]).desired
        if desired == 0:  # rolling red/black grows (and checks) the group step by step
            return TaskResult.succeeded()
        name = ctx.context["server_group"]
        progress = advance(
            self._provider(ctx),
            ctx.context.get("health"),
            lambda: [Action("wait_healthy", name, count=desired, seconds=cfg.health_timeout)],
            ctx.now,
            cfg.poll_interval,
            ctx.log,
        )
        if not progress.done:
            return TaskResult.running(
                after=progress.poll_after, context={"health": progress.context}, message=progress.message
            )
        return TaskResult.succeeded(context={"health": progress.context})

    def apply_strategy(self, ctx: TaskContext) -> TaskResult:
        cfg: DeployConfig = ctx.config
        provider = self._provider(ctx)
        name = ctx.context["server_group"]

        def make() -> list[Action]:
            others = [g for g in provider.list_server_groups(cluster=ctx.context["cluster"]) if g.name != name]
            actions = strategy_actions(cfg.options(), others, name, cfg.capacity.to_capacity())
            ctx.log(f"{cfg.strategy}: " + ("; ".join(a.describe() for a in actions) or "nothing to do"))
            return actions

        saved = ctx.context.get("strategy")
        extra: dict[str, Any] = {}
        answer = ctx.context.get("judgment")
        if answer:
            extra["judgment"] = None  # consumed: the next pause waits for an answer of its own
            at = _current(saved) if saved is not None else None
            if saved is not None and at is not None and at.kind == "judgment":
                saved = {**saved, "state": {**(saved.get("state") or {}), "judgment": answer}}
            else:
                ctx.log(f"ignoring a judgment ({answer.get('choice')}) that arrived while no pause was waiting")
        progress = advance(provider, saved, make, ctx.now, cfg.poll_interval, ctx.log)
        current = None if progress.done else _current(progress.context)
        extra["awaiting_judgment"] = None
        if current is not None and current.kind == "judgment":
            extra["awaiting_judgment"] = {
                "instructions": current.instructions,
                "roles": current.roles,
                "options": list(JUDGMENT_OPTIONS),
                "step": current.reason,
            }
            extra |= self._renew_lease(ctx, provider, name)
        if not progress.done:
            return TaskResult.running(
                after=progress.poll_after, context={"strategy": progress.context, **extra}, message=progress.message
            )
        if cfg.watch is not None:  # the watch holds the cluster until it ends
            return TaskResult.succeeded(context={"strategy": progress.context, **extra})
        self._release(ctx, provider, name)
        return TaskResult.succeeded(
            outputs=self._outputs(ctx),
            context={"strategy": progress.context, **extra},
            message=f"{name} deployed ({cfg.strategy})",
        )

    # --- the watch (see stages/watch.py) ---------------------------------------------------------
    def check_alarms(self, ctx: TaskContext) -> TaskResult:
        """Before anything is created: the watched alarms' states now. One in ALARM is reported and,
        by ``on_alarm_before``, deployed over (warn: the deploy may be its fix) or refused."""
        cfg: DeployConfig = ctx.config
        assert cfg.watch is not None
        if ctx.context.get("alarms_before") is not None:
            return TaskResult.succeeded()
        states: list[AlarmState] = []
        try:
            states = self._provider(ctx).alarm_states(cfg.watch.alarms)
        except NotSupported as exc:
            return TaskResult.failed(f"watch: {exc}; nothing was created")
        except GennakerError as exc:
            unreadable = [f"cannot read alarms {', '.join(cfg.watch.alarms)}: {exc}"]
        else:
            unreadable = [f"alarm {s.name} cannot be read: {s.reason}" for s in states if s.state == "MISSING"]
        if unreadable and not cfg.watch.ignore_poll_failure:
            return TaskResult.failed(
                f"watch: {'; '.join(unreadable)} (ignore_poll_failure is false); nothing was created"
            )
        for line in unreadable:
            ctx.log(f"warning: {line}; going on (ignore_poll_failure)")
        before = [s.as_dict() for s in states]
        firing = watching.alarm_firing_before(states)
        context = {"alarms_before": before, "alarms_firing_before": firing}
        if firing:
            told = "; ".join(f"{n} ({a['reason'] or 'no reason given'})" for n, a in firing.items())
            if cfg.on_alarm_before == "refuse":
                return TaskResult.failed(
                    f"watch: alarm already in ALARM before the deploy: {told}; on_alarm_before is refuse, "
                    "so nothing was created",
                    outputs=self._outputs(ctx, context),
                    context=context,
                )
            ctx.log(
                f"warning: alarm already in ALARM before the deploy: {told}; deploying anyway "
                "(on_alarm_before: warn): it rolls back only if the alarm fires again after cutover"
            )
        else:
            ctx.log("watched alarms before the deploy: " + ", ".join(f"{s['name']} {s['state']}" for s in before))
        return TaskResult.succeeded(outputs=self._outputs(ctx, context), context=context)

    def watch(self, ctx: TaskContext) -> TaskResult:
        """After cutover, until the stored deadline: poll the alarms and conditions; a breach (or,
        without ignore_poll_failure, anything unreadable) starts the strategy's rollback."""
        cfg: DeployConfig = ctx.config
        w = cfg.watch
        assert w is not None
        provider = self._provider(ctx)
        name = ctx.context["server_group"]
        now = ctx.now()
        saved = dict(ctx.context.get("watch") or {})
        if "deadline" not in saved:  # the first poll: the deadline is kept, never recomputed
            saved = {"started_at": now, "deadline": now + w.for_, "alarms": {}, "conditions": {}, "polls": 0}
            ctx.log(f"watching {w.describe()} for {format_duration(w.for_)} after cutover to {name}")
        firing_before = {
            n: {**a, "left": n in saved.get("left_alarm", [])}
            for n, a in (ctx.context.get("alarms_firing_before") or {}).items()
        }
        poll = watching.Poll()
        if w.alarms:
            watching.poll_alarms(provider, w.alarms, saved["alarms"], firing_before, poll)
        steps = [c.step for c in w.metrics]
        # Counter sources (haproxy) need a sample every step: after a gap (a lost worker, a slow
        # engine) a window reaching back over it has no points, so the conditions wait for a full
        # window of their own again rather than call the source unreadable.
        since = float(saved.get("sampling_since") or saved["started_at"])
        last = float(saved.get("last_poll") or now)
        if steps and now - last > 2 * min(steps):
            since = now
            poll.notes.append(f"nothing sampled for {now - last:.1f}s; the conditions wait for a full window")
        if w.metrics:
            kind = registry.kind_of(ctx.services.config, cfg.account).name
            sources = watching.sources_for(ctx.services, kind, provider)
            scope = Scope(name, provider.region, account=cfg.account)
            watching.poll_conditions(w.metrics, sources, scope, since, now, saved["conditions"], poll)
        evaluated = sorted(
            {*saved.get("evaluated", []), *(k for k, c in poll.conditions.items() if c["state"] != "PENDING")}
        )
        if now >= saved["deadline"]:  # a condition never judged is no pass
            poll.unreadable += [
                f"condition {c.label} was never evaluated (no complete {format_duration(c.window)} window)"
                for c in w.metrics
                if c.label not in evaluated
            ]
        for line in poll.notes:
            ctx.log(f"watch: {line}")
        state = {
            **saved,
            "alarms": poll.alarms,
            "conditions": poll.conditions,
            "polls": int(saved.get("polls", 0)) + 1,
            "left_alarm": sorted({*saved.get("left_alarm", []), *poll.left_alarm}),
            "last_poll": now,
            "sampling_since": since,
            "evaluated": evaluated,
        }
        if poll.breaches or (poll.unreadable and not w.ignore_poll_failure):
            why = poll.breaches or [f"{line} (ignore_poll_failure is false)" for line in poll.unreadable]
            state["result"] = "rolled back"
            state["reason"] = "; ".join(why)
            return self._fail(ctx, f"watch: {state['reason']}", known={"watch": state})
        if poll.unreadable and poll.unreadable != saved.get("unreadable"):
            ctx.log(f"watch: {'; '.join(poll.unreadable)}; going on (ignore_poll_failure)")
        state["unreadable"] = poll.unreadable
        if now >= state["deadline"]:
            state["result"] = "passed"
            self._release(ctx, provider, name)
            message = f"{name} deployed ({cfg.strategy}); watched {format_duration(w.for_)}: nothing fired"
            ctx.log(f"watch: {message}")
            return TaskResult.succeeded(
                outputs=self._outputs(ctx, {"watch": state}), context={"watch": state}, message=message
            )
        after = max(0.0, min([cfg.poll_interval, *steps, state["deadline"] - now]))
        left = format_duration(max(0.0, state["deadline"] - now))
        return TaskResult.running(
            after=after,
            context={"watch": state},
            outputs=self._outputs(ctx, {"watch": state}),
            message=f"watching {name}: {left} left",
        )
