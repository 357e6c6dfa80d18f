"""The alarm plan: a pure function from an inventory snapshot to the rows a diff shows.

For every (recommendation, resource, dimension set) in scope there is one desired alarm, named
``gennaker:<recommendation>:<dimension values>`` (so a second run finds it again). Against what
CloudWatch holds it is:

- ``create``: nothing watches that metric yet;
- ``update`` / ``unchanged``: our alarm exists (tag ``gennaker:managed=true``), with other or the
  same settings;
- ``covered``: a user's alarm watches the same metric of the same resource: left alone;
- ``conflict``: an alarm we did not create already has our name: left alone.

Our alarms that no desired alarm matches any more (the resource is gone, its tier disables the
alarm) are ``stale``; an Auto Scaling group whose group metrics are off gets ``enable-metrics``
(its alarm would otherwise wait for data forever). Scopes whose alarms or resources could not be
read plan nothing there and say why (``problems``): a partial view must not delete or duplicate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from gennaker.cloud import naming
from gennaker.cloud.provider import TAG_APPLICATION
from gennaker.ops.alarms.recommendations import BY_ID, RECOMMENDATIONS, TYPES, Context, Dims, Recommendation
from gennaker.ops.alarms.settings import AlarmSettings
from gennaker.ops.checks.mon import NOTIFY_PROTOCOLS
from gennaker.ops.model import Resource, Snapshot

Action = Literal["create", "update", "unchanged", "covered", "conflict", "stale", "enable-metrics"]
CHANGES: frozenset[str] = frozenset({"create", "update", "stale", "enable-metrics"})

PREFIX = "gennaker:"
TAG_MANAGED = "gennaker:managed"
TAG_RECOMMENDATION = "gennaker:recommendation"
TAG_RESOURCE = "gennaker:resource"
TAG_TIER = "gennaker:tier"
COMPARISON = {
    ">": "GreaterThanThreshold",
    ">=": "GreaterThanOrEqualToThreshold",
    "<": "LessThanThreshold",
    "<=": "LessThanOrEqualToThreshold",
}
# What decides whether our alarm is up to date (the rest of DescribeAlarms is CloudWatch's state).
COMPARED = (
    "AlarmDescription",
    "ActionsEnabled",
    "AlarmActions",
    "OKActions",
    "Namespace",
    "MetricName",
    "Statistic",
    "Dimensions",
    "Period",
    "Metrics",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
)
MetricKey = tuple[str, str, frozenset[tuple[str, str]]]


@dataclass
class Row:
    action: Action
    account: str
    region: str
    alarm: str  # the alarm's name (enable-metrics: the group's name)
    recommendation: str | None = None
    resource: str | None = None  # ARN or id
    application: str | None = None
    tier: str | None = None
    detail: str = ""
    spec: dict[str, Any] | None = None  # PutMetricAlarm arguments (create, update)
    tags: dict[str, str] = field(default_factory=dict)
    arn: str | None = None  # the existing alarm's ARN (update, stale)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AlarmPlan:
    rows: list[Row]
    problems: list[str]  # scopes planned partly or not at all, with the reason
    snapshot_id: str
    warnings: list[str] = field(default_factory=list)  # planned, but worth knowing (a topic nobody hears)

    @property
    def changes(self) -> list[Row]:
        return [r for r in self.rows if r.action in CHANGES]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.action] = out.get(r.action, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "counts": self.counts(),
            "problems": self.problems,
            "warnings": self.warnings,
            "rows": [r.to_dict() for r in self.rows],
        }


def application_of(tags: dict[str, str], workload_tags: Iterable[str]) -> str | None:
    """Gennaker's own tag, else the first workload tag (``Application``, ``Name``) read as a name."""
    if tags.get(TAG_APPLICATION):
        return tags[TAG_APPLICATION]
    for t in workload_tags:
        if tags.get(t):
            try:
                return naming.parse(tags[t]).application
            except ValueError:
                return tags[t]
    return None


def alarm_name(rec: Recommendation, dims: Dims) -> str:
    return f"{PREFIX}{rec.id}:{'|'.join(d['Value'] for d in dims)}"[:255]


def metric_keys(alarm: dict[str, Any]) -> set[MetricKey]:
    """Every (namespace, metric, dimensions) an alarm reads: its metric, or those of its math."""
    keys: set[MetricKey] = set()
    if alarm.get("MetricName"):
        dims = frozenset((d["Name"], d["Value"]) for d in alarm.get("Dimensions", []))
        keys.add((alarm.get("Namespace", ""), alarm["MetricName"], dims))
    for m in alarm.get("Metrics") or []:
        metric = (m.get("MetricStat") or {}).get("Metric")
        if metric:
            dims = frozenset((d["Name"], d["Value"]) for d in metric.get("Dimensions", []))
            keys.add((metric.get("Namespace", ""), metric.get("MetricName", ""), dims))
    return keys


def desired_spec(rec: Recommendation, dims: Dims, threshold: float, topic: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "AlarmName": name,
        "AlarmDescription": f"{rec.title} (Gennaker recommendation {rec.id})",
        "ActionsEnabled": True,
        "AlarmActions": [topic],
        "OKActions": [topic],
        "EvaluationPeriods": rec.evaluation_periods,
        "DatapointsToAlarm": rec.datapoints,
        "Threshold": float(threshold),
        "ComparisonOperator": COMPARISON[rec.comparison],
        "TreatMissingData": rec.treat_missing,
    }
    if rec.expression is None:
        m = rec.metrics[0]
        spec |= {
            "Namespace": m.namespace,
            "MetricName": m.name,
            "Statistic": m.stat,
            "Dimensions": dims,
            "Period": rec.period,
        }
    else:
        spec["Metrics"] = [{"Id": "e1", "Expression": rec.expression, "Label": rec.id, "ReturnData": True}] + [
            {
                "Id": f"m{i}",
                "MetricStat": {
                    "Metric": {"Namespace": m.namespace, "MetricName": m.name, "Dimensions": dims},
                    "Period": rec.period,
                    "Stat": m.stat,
                },
                "ReturnData": False,
            }
            for i, m in enumerate(rec.metrics, start=1)
        ]
    return spec


def _norm(key: str, value: Any) -> Any:
    if value is None or value == []:
        return None
    if key in ("AlarmActions", "OKActions"):
        return sorted(value)
    if key == "Dimensions":
        return sorted((d["Name"], d["Value"]) for d in value)
    if key == "Metrics":
        return sorted(
            (
                m.get("Id"),
                m.get("Expression"),
                bool(m.get("ReturnData", True)),
                repr(sorted(metric_keys({"Metrics": [m]}))),
                (m.get("MetricStat") or {}).get("Stat"),
                (m.get("MetricStat") or {}).get("Period"),
            )
            for m in value
        )
    if key == "Threshold":
        return float(value)
    return value


def differences(existing: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    out = []
    for key in COMPARED:
        have, want = _norm(key, existing.get(key)), _norm(key, spec.get(key))
        if key == "DatapointsToAlarm" and have is None:  # unset means "all evaluation periods"
            have = _norm(key, existing.get("EvaluationPeriods"))
        if have != want:
            shown = (
                f"{key} {existing.get(key)} -> {spec.get(key)}"
                if key in ("Threshold", "EvaluationPeriods", "DatapointsToAlarm", "Period", "TreatMissingData")
                else key
            )
            out.append(shown)
    return out


@dataclass
class Inputs:
    """What the planner reads besides the snapshot (all looked up beforehand, no calls here)."""

    settings: AlarmSettings
    workload_tags: list[str]
    topics: dict[tuple[str, str], str]  # (account, region) -> topic ARN for the alarm actions
    managed: dict[tuple[str, str, str], dict[str, str]]  # (account, region, alarm name) -> its tags (ours only)
    unreadable: dict[tuple[str, str], str] = field(default_factory=dict)  # scopes whose alarm tags failed
    application: str | None = None
    readable: frozenset[str] | None = None  # None: every application (and resources of none)


def _in_scope(app: str | None, inputs: Inputs) -> bool:
    if inputs.application is not None and app != inputs.application:
        return False
    return inputs.readable is None or (app is not None and app in inputs.readable)


def _failed(snapshot: Snapshot) -> dict[tuple[str, str, str], str]:
    return {(f.account, f.region, f.type): f.reason() for f in snapshot.failures}


class _Existing:
    """CloudWatch's alarms of the snapshot, split into ours and the users' (indexed by the metrics
    they read, so matching thousands of resources against thousands of alarms stays linear)."""

    def __init__(self, alarms: dict[tuple[str, str, str], Resource], managed: dict[tuple[str, str, str], Any]):
        self.alarms = alarms
        self.managed = managed
        self._on: dict[tuple[str, str, MetricKey], list[str]] = {}
        for (acct, reg, name), a in sorted(alarms.items()):
            if (acct, reg, name) not in managed:
                for metric in metric_keys(a.attrs):
                    self._on.setdefault((acct, reg, metric), []).append(name)

    def user_alarms_on(self, scope: tuple[str, str], metric: MetricKey) -> list[str]:
        return self._on.get((*scope, metric), [])

    def foreign(self, key: tuple[str, str, str]) -> bool:
        return key in self.alarms and key not in self.managed


def _desired(rec: Recommendation, r: Resource, dims: Dims, inputs: Inputs, seen: _Existing) -> Row | None:
    """The row of one desired alarm; None when the resource's tier disables it."""
    app = application_of(r.tags, inputs.workload_tags)
    tier, note = inputs.settings.tier_of(r.tags)
    value = inputs.settings.thresholds(tier).get(rec.threshold)
    if value is None:
        return None
    name = alarm_name(rec, dims)
    key = (r.account, r.region, name)
    row = Row("create", r.account, r.region, name, rec.id, r.ref, app, tier, note or "")
    first = rec.metrics[0]
    covering = seen.user_alarms_on((r.account, r.region), (first.namespace, first.name, _dimset(dims)))
    if key in seen.managed and key in seen.alarms:
        row.spec = desired_spec(
            rec, dims, rec.scale(r, value) if rec.scale else value, inputs.topics[r.account, r.region], name
        )
        diff = differences(seen.alarms[key].attrs, row.spec)
        if seen.managed[key].get(TAG_TIER) != tier:
            diff.append(f"tier {seen.managed[key].get(TAG_TIER)} -> {tier}")
        row.action = "update" if diff else "unchanged"
        row.detail = "; ".join(filter(None, [", ".join(diff), note]))
        row.arn = seen.alarms[key].arn
    elif covering:
        row.action, row.detail = "covered", f"watched by {', '.join(covering)} (not ours: left alone)"
        return row
    elif seen.foreign(key):
        row.action, row.detail = "conflict", "an alarm of this name exists that Gennaker did not create: left alone"
        return row
    else:
        row.spec = desired_spec(
            rec, dims, rec.scale(r, value) if rec.scale else value, inputs.topics[r.account, r.region], name
        )
    row.tags = {
        TAG_MANAGED: "true",
        TAG_RECOMMENDATION: rec.id,
        TAG_RESOURCE: r.ref[:256],
        TAG_TIER: tier,
        **({TAG_APPLICATION: app} if app else {}),
    }
    return row


def _dimset(dims: Dims) -> frozenset[tuple[str, str]]:
    return frozenset((d["Name"], d["Value"]) for d in dims)


def _enable_metrics(rec: Recommendation, group: Resource, row: Row) -> Row | None:
    enabled = {m.get("Metric") for m in group.attrs.get("EnabledMetrics", [])}
    missing = [m for m in rec.group_metrics if m not in enabled]
    if not missing or row.action not in ("create", "update", "unchanged"):
        return None
    return Row(
        "enable-metrics",
        group.account,
        group.region,
        group.id,
        rec.id,
        group.ref,
        row.application,
        row.tier,
        f"group metrics {', '.join(missing)} are not collected: the alarm would wait for data forever",
        spec={"AutoScalingGroupName": group.id, "Metrics": missing, "Granularity": "1Minute"},
    )


def _blind_scopes(
    snapshot: Snapshot, inputs: Inputs, failed: dict[tuple[str, str, str], str]
) -> tuple[set[tuple[str, str]], list[str]]:
    """Scopes where nothing can be planned (alarms unreadable, no topic), and every reason."""
    blind: set[tuple[str, str]] = set()
    problems: list[str] = []
    for acct, info in sorted(snapshot.accounts.items()):
        for reg in info.regions:
            why = failed.get((acct, reg, "cloudwatch.alarm")) or inputs.unreadable.get((acct, reg))
            if why is None and (acct, reg) not in inputs.topics:
                why = (
                    "the alarm topic is in another region (CloudWatch notifies topics of its own region; use {region})"
                )
            if why:
                blind.add((acct, reg))
                problems.append(f"nothing planned in {acct}/{reg}: {why}")
    for f in snapshot.failures:
        if f.type in TYPES and (f.account, f.region) not in blind:
            problems.append(f"no alarms planned for {f.type} in {f.account}/{f.region}: {f.reason()}")
    return blind, problems


def _stale(
    inputs: Inputs,
    seen: _Existing,
    wanted: set[tuple[str, str, str]],
    blind: set[tuple[str, str]],
    failed: dict[tuple[str, str, str], str],
    problems: list[str],
) -> list[Row]:
    rows = []
    for key, tags in sorted(inputs.managed.items()):
        acct, reg, name = key
        if key in wanted or (acct, reg) in blind or key not in seen.alarms:
            continue
        if not _in_scope(tags.get(TAG_APPLICATION), inputs):
            continue
        rec_id = tags.get(TAG_RECOMMENDATION, "")
        rec_type = BY_ID[rec_id].resource if rec_id in BY_ID else None
        if rec_type and (why := failed.get((acct, reg, rec_type))):
            problems.append(f"kept {name} in {acct}/{reg}: whether its resource exists is unknown: {why}")
            continue
        rows.append(
            Row(
                "stale",
                acct,
                reg,
                name,
                rec_id or None,
                tags.get(TAG_RESOURCE),
                tags.get(TAG_APPLICATION),
                tags.get(TAG_TIER),
                "ours, and no longer recommended (resource gone, or its tier disables it): deleted on apply",
                arn=seen.alarms[key].arn,
            )
        )
    return rows


def _unheard_topics(snapshot: Snapshot, inputs: Inputs, failed: dict[tuple[str, str, str], str]) -> list[str]:
    """Topics without a confirmed email, SMS or HTTPS subscription, as the audit's mon.alarms.notify
    judges them: alarms wired to them notify nobody. Only topics of the account itself can be seen."""
    confirmed = {
        s.attrs.get("TopicArn")
        for s in snapshot.by_type().get("sns.subscription", [])
        if s.attrs.get("Protocol") in NOTIFY_PROTOCOLS and ":" in s.id  # not PendingConfirmation
    }
    out = []
    for (acct, reg), topic in sorted(inputs.topics.items()):
        own = topic.split(":")[4] == (snapshot.accounts[acct].account_id or "")
        if own and not failed.get((acct, reg, "sns.subscription")) and topic not in confirmed:
            out.append(f"{topic} has no confirmed email, SMS or HTTPS subscription: its alarms notify nobody")
    return sorted(set(out))


def plan(snapshot: Snapshot, inputs: Inputs) -> AlarmPlan:
    failed = _failed(snapshot)
    by_type = snapshot.by_type()
    seen = _Existing({(a.account, a.region, a.id): a for a in by_type.get("cloudwatch.alarm", [])}, inputs.managed)
    ctx = Context(
        frozenset(
            (g.account, g.region, i["InstanceId"])
            for g in by_type.get("autoscaling.group", [])
            for i in g.attrs.get("Instances", [])
        )
    )
    blind, problems = _blind_scopes(snapshot, inputs, failed)
    rows: list[Row] = []
    wanted: set[tuple[str, str, str]] = set()
    metric_rows: set[tuple[str, str, str, str]] = set()
    for rec in RECOMMENDATIONS:
        for r in sorted(by_type.get(rec.resource, []), key=lambda x: x.key):
            if (r.account, r.region) in blind or not _in_scope(application_of(r.tags, inputs.workload_tags), inputs):
                continue
            for dims in rec.dimensions(r, ctx):
                row = _desired(rec, r, dims, inputs, seen)
                if row is None:
                    continue  # disabled for its tier: an alarm of ours there is stale
                wanted.add((r.account, r.region, row.alarm))
                rows.append(row)
                extra = _enable_metrics(rec, r, row) if rec.group_metrics and r.key not in metric_rows else None
                if extra:
                    metric_rows.add(r.key)
                    rows.append(extra)
    rows += _stale(inputs, seen, wanted, blind, failed, problems)
    rows.sort(key=lambda r: (r.account, r.region, r.resource or "", r.alarm, r.action))
    return AlarmPlan(rows, problems, snapshot.id, _unheard_topics(snapshot, inputs, failed))
