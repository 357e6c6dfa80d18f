"""The canary stage: a baseline and a canary group side by side, judged by their metrics (Kayenta's way).

Tasks, each idempotent (state in the stage context; groups found again by their execution/stage tags):

1. ``weigh_production``: find the cluster's serving group and raise its traffic weight, so that the
   pair joins the load balancer with a small share from its first request;
2. ``deploy_pair``: the baseline (the serving group's image, or ``baseline_image``) and the canary
   (``image``) groups of ``capacity`` each, ``<app>-<stack>-baseline-vNNN`` / ``-canary-vNNN``;
3. ``wait_for_pair``: both healthy;
4. ``shift_traffic``: the pair's weights so that it takes ``traffic`` of the load balancer (HAProxy
   weights on local; on AWS the pair has target groups of its own in the listener's weighted
   forward, and their CloudWatch dimensions scope its metrics); the analysis is stored from here
   (its windows count from now);
5. ``analyze``: after the warm-up, one judgement per interval (one fetch per source), each stored;
   an interval at or below marginal ends the canary early, the last must reach pass. Meanwhile an
   operator may end it with a judgment (promote / abort);
6. ``clean_up``: destroy the pair, production's weight back to normal; outputs score, result, report.

Whatever ends the stage otherwise (a failed judgement, an abort, an error in any task, a cancel or
the stage's timeout) destroys the pair and gives production its traffic back before the stage
ends. A lost worker changes nothing: the next poll runs the same task again from the context.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import ConfigDict, Field, field_validator

from gennaker.cloud import naming, registry
from gennaker.cloud.actions import Action
from gennaker.cloud.provider import (
    DEFAULT_TRAFFIC_WEIGHT,
    MAX_TRAFFIC_WEIGHT,
    TAG_EXECUTION,
    Capacity,
    CloudProvider,
    ServerGroupSpec,
)
from gennaker.cloud.strategies import previous_server_group
from gennaker.cloud.tasks import CloudStageConfig, advance
from gennaker.errors import GennakerError, InvalidInput
from gennaker.metrics import store as canary_store
from gennaker.metrics.config import AnalysisConfig, OnMarginal
from gennaker.metrics.judge import Window, fetch_interval, judge, plan_windows, should_stop_early
from gennaker.metrics.sources import MetricSource, Scope, SourceSettings, build_sources
from gennaker.spec.durations import Duration
from gennaker.stages.base import Capabilities, StageType, Task, TaskContext, TaskResult

ROLES = ("baseline", "canary")
JUDGMENT_CHOICES = ["promote", "abort"]
PRODUCTION_WEIGHT = 100  # production's weight per instance while a canary runs (1: the default)
MIN_POLL = 0.2
REPORT_PATH = "/canary/{id}"


class CanaryConfig(CloudStageConfig):
    # Extras are the provider's deploy fields (local: command, env, load_balancers), as on deploy.
    model_config = ConfigDict(extra="allow")
    provider_stage: ClassVar[str | None] = "deploy"
    # metric queries may name the group being measured: ${scope}, ${location} (filled per group)
    template_fields: ClassVar[tuple[str, ...]] = ("analysis",)

    stack: str = ""
    detail: str = ""
    image: str = Field(min_length=1)
    baseline_image: str = Field(default="current", min_length=1)  # current: the serving group's image
    capacity: int = Field(default=1, ge=1, le=100)  # of each of the two groups
    traffic: float = 10.0  # percent of the load balancer's traffic to the pair
    analysis: AnalysisConfig
    health_timeout: Duration = 600.0

    @field_validator("traffic", mode="before")
    @classmethod
    def _percent(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().endswith("%"):
            v = v.strip()[:-1]
        try:
            share = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"traffic is a percentage such as 10%, not {v!r}") from None
        if not 0 < share < 100:
            raise ValueError(f"traffic must be more than 0% and less than 100%, not {share:g}%")
        return share

    def cluster(self, application: str, role: str | None = None) -> str:
        detail = "-".join(p for p in (self.detail, role) if p)
        return naming.cluster_name(application, self.stack, detail)


Ctx = TaskContext[CanaryConfig]  # what the canary's tasks see


def traffic_weights(share: float, pair_instances: int, production_instances: int) -> tuple[int, int]:
    """(production weight, pair weight) per instance so that the pair takes ``share`` percent.

    The pair gets ``w·pair ÷ (w·pair + P·production)``; of the integer weights HAProxy accepts the
    closest pair is chosen, production as high as possible (the finest steps).
    """
    target = share / 100
    best: tuple[float, int, int] | None = None
    for production in range(MAX_TRAFFIC_WEIGHT, 0, -1):
        exact = target * production_instances * production / (pair_instances * (1 - target))
        for pair in {max(1, min(MAX_TRAFFIC_WEIGHT, int(exact))), max(1, min(MAX_TRAFFIC_WEIGHT, int(exact) + 1))}:
            got = pair * pair_instances / (pair * pair_instances + production * production_instances)
            if best is None or abs(got - target) < best[0] - 1e-12:
                best = (abs(got - target), production, pair)
    assert best is not None
    return best[1], best[2]


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class Canary(StageType[CanaryConfig]):
    type = "canary"
    Config = CanaryConfig
    description = "Deploy a baseline and a canary side by side and judge the canary by its metrics"
    # Operators may end the analysis with a judgment (promote / abort); a marginal score asks for one.
    capabilities = Capabilities(judgeable=True)

    def tasks(self, config: Any) -> list[Task]:
        return [
            Task("weigh_production", self._guarded(self.weigh_production)),
            Task("deploy_pair", self._guarded(self.deploy_pair)),
            Task("wait_for_pair", self._guarded(self.wait_for_pair)),
            Task("shift_traffic", self._guarded(self.shift_traffic)),
            Task("analyze", self._guarded(self.analyze)),
            Task("clean_up", self._guarded(self.clean_up)),
        ]

    # --- what gennaker plan shows ----------------------------------------------------------------
    def plan(self, ctx: Any, provider: CloudProvider) -> tuple[list[Action], dict[str, Any]]:
        cfg: CanaryConfig = ctx.config
        capacity = Capacity(cfg.capacity, cfg.capacity, cfg.capacity)
        actions: list[Action] = []
        names = []
        for role in ROLES:
            cluster = cfg.cluster(ctx.application, role)
            groups = provider.list_server_groups(cluster=cluster, with_health=False)
            name = naming.next_server_group([g.name for g in groups] + provider.names_in_use(cluster), cluster)
            names.append(name)
            image = cfg.image if role == "canary" else cfg.baseline_image
            actions.append(Action("create", name, capacity, reason=f"{role}, image {image}"))
        actions += [Action("wait_healthy", n, count=cfg.capacity, seconds=cfg.health_timeout) for n in names]
        actions += [Action("destroy", n, reason="after the analysis") for n in names]
        return actions, {}

    def plan_notes(self, config: Any) -> list[str]:
        a = config.analysis
        return [f"{config.traffic:g}% of the traffic to the pair for {a.warmup + a.lifetime:g}s, then both destroyed"]

    # --- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _provider(ctx: Ctx) -> CloudProvider:
        cfg: CanaryConfig = ctx.config
        return registry.provider_for(ctx.services, cfg.account, cfg.region)

    @staticmethod
    def _location(ctx: Ctx, provider: CloudProvider) -> str:
        return provider.region

    def _sources(self, ctx: Ctx, provider: CloudProvider) -> dict[str, MetricSource]:
        """The metric sources: the host's own (``services.metric_sources``) when it wired some in,
        else built from what this process has: the local provider's HAProxy, AWS for CloudWatch."""
        wired = getattr(ctx.services, "metric_sources", None)  # services may be any host's (see Services)
        if wired is not None:
            return dict(wired)
        used = {m.source for m in ctx.config.analysis.metrics}
        return build_sources(
            SourceSettings(
                prometheus_url=getattr(ctx.services, "prometheus_url", None),
                prometheus_timeout=getattr(ctx.services, "prometheus_timeout", None) or 10.0,
                # CloudWatch reads in the scope's account; the sessions only when a metric reads it
                # (building them imports boto3, a second that a canary on HAProxy need not pay).
                aws=getattr(ctx.services, "aws", None) if "cloudwatch" in used else None,
                haproxy=provider if hasattr(provider, "server_stats") else None,
            )
        )

    def _outputs(self, ctx: Ctx, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        c = {**ctx.context, **(extra or {})}
        pair = c.get("pair") or {}
        out: dict[str, Any] = {
            "baseline_server_group": pair.get("baseline"),
            "canary_server_group": pair.get("canary"),
            "production_server_group": (c.get("production") or {}).get("name"),
            "judgements": int(c.get("judged", 0)),
        }
        if c.get("analysis_id"):
            out["report"] = {"id": c["analysis_id"], "path": REPORT_PATH.format(id=c["analysis_id"])}
        if c.get("last"):
            out["score"] = c["last"]["score"]
            out["result"] = c["last"]["result"]
        return out

    def _guarded(self, step: Callable[[Ctx], TaskResult]) -> Callable[[Ctx], TaskResult]:
        """Any error ends the stage the way a failed canary does: the pair destroyed first."""

        def run(ctx: Ctx) -> TaskResult:
            try:
                return step(ctx)
            except Exception as exc:  # the pair must not outlive the stage, whatever went wrong
                reason = str(exc) if isinstance(exc, GennakerError | ValueError) else f"{type(exc).__name__}: {exc}"
                return self._end_failed(ctx, reason)

        return run

    def _end_failed(self, ctx: Ctx, reason: str, context: dict[str, Any] | None = None) -> TaskResult:
        ctx.log(f"canary failed: {reason}")
        context = {**(context or {}), "awaiting_judgment": None, "paused": None}
        merged = {**ctx.context, **context}
        problems = self._tear_down(ctx, merged)
        self._finish(ctx, merged, "failed", reason)
        tail = "; the baseline and canary groups are destroyed and production has all the traffic"
        if problems:
            tail = f"; cleaning up failed too: {'; '.join(problems)}"
        return TaskResult.failed(f"{reason}{tail}", outputs=self._outputs(ctx, context), context=context)

    def _finish(self, ctx: Ctx, context: dict[str, Any], status: str, message: str | None) -> None:
        analysis_id = context.get("analysis_id")
        if not analysis_id:
            return
        last = context.get("last") or {}
        try:
            canary_store.finish_analysis(
                ctx.services.db, analysis_id, status, last.get("result"), last.get("score"), message
            )
        except GennakerError as exc:
            ctx.log(f"could not record the end of analysis {analysis_id}: {exc}")

    def _pair_names(self, ctx: Ctx, provider: CloudProvider, context: dict[str, Any]) -> list[str]:
        """The pair's groups: as saved, or found by this stage's tags (a create cut short)."""
        cfg: CanaryConfig = ctx.config
        saved = context.get("pair") or {}
        names = []
        for role in ROLES:
            name = saved.get(role) or provider.find_created_by(
                cfg.cluster(ctx.application, role), ctx.execution_id, ctx.stage_id
            )
            if name:
                names.append(name)
        return names

    def _tear_down(self, ctx: Ctx, context: dict[str, Any]) -> list[str]:
        """Pair out of the load balancer and destroyed, production back to its normal weight.
        Idempotent; every step is tried even when one fails, and what failed is returned."""
        problems: list[str] = []
        try:
            provider = self._provider(ctx)
        except GennakerError as exc:
            return [str(exc)]
        try:
            names = self._pair_names(ctx, provider, context)
        except GennakerError as exc:
            problems.append(f"finding the pair: {exc}")
            names = []
        ours, remnants = [], []
        for name in names:
            try:
                group = provider.get_server_group(name)
                # No group, but what a create cut short left of it (a launch template, a target group).
                owner = provider.server_group_owner(name) if group is None else None
            except GennakerError as exc:
                problems.append(f"reading {name}: {exc}")
                continue
            if group is None:
                if owner is not None and owner[0] == ctx.execution_id:
                    remnants.append(name)
                continue
            if group.tags.get(TAG_EXECUTION) != ctx.execution_id:
                problems.append(f"{name} was not created by this execution; left alone")
                continue
            ours.append(name)
        # Both out of the traffic first (production takes it all at once), then destroyed (drained).
        for name in ours:
            try:
                provider.set_traffic_weight(name, 0)
            except GennakerError as exc:  # the destroy below still drains it: said, not fatal
                ctx.log(f"could not take {name} out of the traffic before destroying it: {exc}")
        for name in ours + remnants:
            try:
                provider.destroy_server_group(name)
                ctx.log(f"destroyed {name}")
            except GennakerError as exc:
                problems.append(f"destroying {name}: {exc}")
        production = (context.get("production") or {}).get("name")
        if production and context.get("production_weighed"):
            try:
                if provider.get_server_group(production) is not None:
                    provider.set_traffic_weight(production, DEFAULT_TRAFFIC_WEIGHT)
            except GennakerError as exc:
                problems.append(f"restoring {production}'s traffic weight: {exc}")
        return problems

    # --- cancel ----------------------------------------------------------------------------------
    def on_cancel(self, ctx: Ctx) -> None:
        problems = self._tear_down(ctx, ctx.context)
        self._finish(ctx, ctx.context, "canceled", "canceled")
        for problem in problems:
            ctx.log(f"cancel: {problem}")
        if not problems:
            ctx.log("cancel: the baseline and canary groups are destroyed; production has all the traffic")

    # --- tasks -----------------------------------------------------------------------------------
    def weigh_production(self, ctx: Ctx) -> TaskResult:
        cfg: CanaryConfig = ctx.config
        if ctx.context.get("production_weighed"):
            return TaskResult.succeeded()
        provider = self._provider(ctx)
        cluster = cfg.cluster(ctx.application)
        serving = previous_server_group(provider.list_server_groups(cluster=cluster))
        if serving is None:
            raise InvalidInput(
                f"cluster {cluster} has no serving server group: a canary is judged beside production "
                "(deploy the cluster first)"
            )
        count = max(1, len(serving.instances))
        production_weight, pair_weight = traffic_weights(cfg.traffic, 2 * cfg.capacity, count)
        # Saved before the weight is set: a cleanup after a crash right here restores it.
        production = {"name": serving.name, "image": serving.image, "instances": count}
        weights = {"production": production_weight, "pair": pair_weight}
        provider.set_traffic_weight(serving.name, production_weight)
        ctx.log(
            f"{serving.name} serves; weights: production {production_weight} x {count}, "
            f"pair {pair_weight} x {2 * cfg.capacity} (≈ {cfg.traffic:g}% to the pair)"
        )
        return TaskResult.succeeded(
            context={"production": production, "weights": weights, "production_weighed": True},
            outputs=self._outputs(ctx, {"production": production}),
        )

    def deploy_pair(self, ctx: Ctx) -> TaskResult:
        cfg: CanaryConfig = ctx.config
        if ctx.context.get("pair"):
            return TaskResult.succeeded()
        provider = self._provider(ctx)
        kind = registry.kind_of(ctx.services.config, cfg.account).name
        production = ctx.context["production"]
        baseline_image = production["image"] if cfg.baseline_image == "current" else cfg.baseline_image
        if not baseline_image:
            raise InvalidInput(f"{production['name']} has no image to deploy the baseline from; give baseline_image")
        images = {"baseline": provider.resolve_image(baseline_image), "canary": provider.resolve_image(cfg.image)}
        capacity = Capacity(cfg.capacity, cfg.capacity, cfg.capacity)
        pair: dict[str, str] = {}
        for role in ROLES:
            cluster = cfg.cluster(ctx.application, role)
            name = provider.find_created_by(cluster, ctx.execution_id, ctx.stage_id)
            if name and provider.get_server_group(name) is not None:
                ctx.log(f"found the {role} {name} from an earlier attempt; reusing it")
            else:
                if name:  # a create cut short: its name is taken, create_server_group adopts what it made
                    ctx.log(f"found the {role} {name} from an earlier attempt cut short; completing it")
                else:
                    groups = provider.list_server_groups(cluster=cluster, with_health=False)
                    name = naming.next_server_group([g.name for g in groups] + provider.names_in_use(cluster), cluster)
                spec = provider.prepare_server_group(
                    ServerGroupSpec(
                        name=name,
                        application=ctx.application,
                        image=images[role],
                        capacity=capacity,
                        provider_options=cfg.provider_options(kind),
                        tags={"gennaker:canary-role": role},
                        execution_id=ctx.execution_id,
                        stage_id=ctx.stage_id,
                        separate_traffic=True,  # the pair's share is its weight alone (AWS: its own target groups)
                    )
                )
                provider.create_server_group(spec)
                ctx.log(f"created the {role} {name} from {images[role]} ({capacity})")
            pair[role] = name
        context = {"pair": pair, "images": images}
        return TaskResult.succeeded(context=context, outputs=self._outputs(ctx, context))

    def wait_for_pair(self, ctx: Ctx) -> TaskResult:
        cfg: CanaryConfig = ctx.config
        pair = ctx.context["pair"]
        progress = advance(
            self._provider(ctx),
            ctx.context.get("health"),
            lambda: [
                Action("wait_healthy", pair[role], count=cfg.capacity, seconds=cfg.health_timeout) for role in ROLES
            ],
            ctx.now,
            cfg.poll_interval,
            ctx.log,
        )
        if not progress.done:
            return TaskResult.running(
                after=progress.poll_after, context={"health": progress.context}, message=progress.message
            )
        return TaskResult.succeeded(context={"health": progress.context})

    def shift_traffic(self, ctx: Ctx) -> TaskResult:
        cfg: CanaryConfig = ctx.config
        provider = self._provider(ctx)
        pair, weight = ctx.context["pair"], int(ctx.context["weights"]["pair"])
        scopes: dict[str, dict[str, str]] = {}
        for role in ROLES:
            provider.set_traffic_weight(pair[role], weight)
            group = provider.get_server_group(pair[role])
            # What selects each group's own samples besides its name (AWS: its target group's dimensions).
            scopes[role] = dict(group.metric_scope) if group is not None else {}
        started = float(ctx.context.get("started_at") or ctx.now())
        analysis_id = canary_store.create_analysis(
            ctx.services.db,
            application=ctx.application,
            baseline=pair["baseline"],
            canary=pair["canary"],
            location=self._location(ctx, provider),
            config=cfg.analysis.model_dump(mode="json", by_alias=True),
            started_at=started,
            execution_id=ctx.execution_id,
            stage_id=ctx.stage_id,
            attempt=ctx.attempt,
        )
        ctx.log(f"the pair takes ≈ {cfg.traffic:g}% of the traffic; analysis {analysis_id} starts")
        context = {"started_at": started, "analysis_id": analysis_id, "judged": 0, "scopes": scopes}
        return TaskResult.succeeded(context=context, outputs=self._outputs(ctx, context))

    def analyze(self, ctx: Ctx) -> TaskResult:
        cfg: CanaryConfig = ctx.config
        analysis = cfg.analysis
        provider = self._provider(ctx)
        sources = self._sources(ctx, provider)
        windows = plan_windows(analysis, _at(float(ctx.context["started_at"])))
        judged = int(ctx.context.get("judged", 0))
        # A judgment first: a pause on the last judgement has judged them all, and waits for it.
        answer = ctx.context.get("judgment")
        if answer:
            return self._judged(ctx, answer)
        if judged >= len(windows) and not ctx.context.get("paused"):  # the last one passed just before a crash
            return TaskResult.succeeded(outputs=self._outputs(ctx))

        self._sample(ctx, sources, analysis.metrics)
        if ctx.context.get("paused"):
            return TaskResult.running(after=3600.0, message=ctx.context["paused"]["message"])
        window = windows[judged]
        now = ctx.now()
        if now < window.end.timestamp():
            wait = min(analysis.step, window.end.timestamp() - now)
            return TaskResult.running(
                after=max(MIN_POLL, wait),
                context={"awaiting_judgment": self._asking(ctx, None)},
                message=f"judgement {window.index} of {len(windows)} at {window.end.isoformat(timespec='seconds')}",
            )
        stored = self._judge(ctx, provider, sources, window)
        last = {"index": window.index, "score": stored["score"], "result": stored["result"]}
        context: dict[str, Any] = {"judged": window.index, "last": last}
        ctx.log(
            f"judgement {window.index} of {len(windows)}: score {stored['score']:g} ({stored['result']})"
            + (f"; {'; '.join(stored.get('reasons') or [])}" if stored.get("reasons") else "")
        )
        result = stored["result"]
        if result == "fail":
            return self._end_failed(ctx, f"canary score {stored['score']:g} fails (interval {window.index})", context)
        if result == "marginal" and (window.last or should_stop_early(stored["score"], analysis.thresholds)):
            if analysis.on_marginal is OnMarginal.FAIL:
                return self._end_failed(
                    ctx, f"canary score {stored['score']:g} is marginal (interval {window.index})", context
                )
            message = f"canary score {stored['score']:g} is marginal: promote or abort"
            context |= {
                "paused": {"message": message},
                "awaiting_judgment": self._asking(ctx, message),
            }
            return TaskResult.running(
                after=3600.0, context=context, message=message, outputs=self._outputs(ctx, context)
            )
        if window.last:
            context["awaiting_judgment"] = None
            return TaskResult.succeeded(context=context, outputs=self._outputs(ctx, context))
        return TaskResult.running(after=MIN_POLL, context=context, outputs=self._outputs(ctx, context))

    def _asking(self, ctx: Ctx, message: str | None) -> dict[str, Any]:
        return {
            "instructions": message or "The canary is being analysed. Promote ends it now as passed; abort fails it.",
            "options": list(JUDGMENT_CHOICES),
            "roles": [],
            "step": "canary analysis",
        }

    def _judged(self, ctx: Ctx, answer: dict[str, Any]) -> TaskResult:
        who = answer.get("by") or "someone"
        context: dict[str, Any] = {"awaiting_judgment": None, "paused": None}
        if answer.get("choice") == "promote":
            ctx.log(f"{who} promoted the canary")
            context["promoted_by"] = who
            return TaskResult.succeeded(context=context, outputs={**self._outputs(ctx), "promoted_by": who})
        return self._end_failed(ctx, f"{who} aborted the canary", context)

    def _sample(self, ctx: Ctx, sources: dict[str, MetricSource], metrics: list[Any]) -> None:
        """Sources that only have counters (haproxy) are sampled on every poll, at least once a step."""
        for name in sorted({m.source for m in metrics}):
            sample = getattr(sources.get(name), "sample", None)
            if sample is None:
                continue
            try:
                sample()
            except Exception as exc:  # a missed sample is a gap in the data, judged as such later
                ctx.log(f"could not sample {name}: {exc}")

    def _judge(
        self, ctx: Ctx, provider: CloudProvider, sources: dict[str, MetricSource], window: Window
    ) -> dict[str, Any]:
        cfg: CanaryConfig = ctx.config
        analysis_id = ctx.context["analysis_id"]
        stored = canary_store.get_judgement(ctx.services.db, analysis_id, window.index)
        if stored is not None:  # judged before a crash: that judgement stands
            return stored
        pair = ctx.context["pair"]
        location = self._location(ctx, provider)
        scopes = ctx.context.get("scopes") or {}

        def scope(role: str) -> Scope:
            extra = scopes.get(role) or {}
            return Scope(
                pair[role],
                location,
                account=cfg.account,
                target_group=extra.get("target_group"),
                load_balancer=extra.get("load_balancer"),
            )

        baseline, canary = fetch_interval(
            sources, cfg.analysis, scope("baseline"), scope("canary"), window.start, window.end
        )
        judgement = judge(cfg.analysis, baseline, canary)
        return canary_store.record_judgement(
            ctx.services.db, analysis_id, window, judgement, baseline, canary, judged_at=ctx.now()
        )

    def clean_up(self, ctx: Ctx) -> TaskResult:
        problems = self._tear_down(ctx, ctx.context)
        if problems:
            raise GennakerError("; ".join(problems))
        last = ctx.context.get("last") or {}
        promoted = ctx.context.get("promoted_by")
        message = (
            f"canary promoted by {promoted}"
            if promoted
            else f"canary passed with score {last.get('score', 0):g}; baseline and canary destroyed"
        )
        self._finish(ctx, ctx.context, "succeeded", message)
        return TaskResult.succeeded(outputs=self._outputs(ctx), message=message)
