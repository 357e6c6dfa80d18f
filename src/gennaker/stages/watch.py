"""The deploy stage's watch after cutover (CodeDeploy's alarm rollback): the ``watch:`` model, and
one poll of what it watches.

A poll reads the named alarms' states through the provider (``CloudProvider.alarm_states``) and
evaluates the metric conditions over the metric sources for the new server group's scope
(``metrics.conditions``). It says what breached (an alarm in ALARM, a condition BREACHED) and what
could not be read (a missing alarm, a cloud error, a condition UNKNOWN); the deploy stage decides
what that does (roll back, or log and go on with ``ignore_poll_failure``). Nothing here keeps state
between polls but what the caller passes in and persists: a poll may run on any worker.

An alarm already in ALARM before the deploy (``on_alarm_before: warn``) does not roll the deploy
back while it stays in that same ALARM: the deploy may be its fix. It counts once it has been seen
out of ALARM, or its state was updated since (it fired again).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gennaker.cloud.provider import AlarmState, CloudProvider
from gennaker.errors import GennakerError
from gennaker.metrics.conditions import Condition, evaluate_all
from gennaker.metrics.sources import MetricSource, Scope, SourceSettings, build_sources
from gennaker.spec.durations import Duration

MAX_ALARMS = 100
MAX_CONDITIONS = 50


class WatchConfig(BaseModel):
    """``watch: {alarms: [names], metrics: [conditions], for: 10m, ignore_poll_failure: false}``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    alarms: list[str] = Field(default_factory=list, max_length=MAX_ALARMS)
    metrics: list[Condition] = Field(default_factory=list, max_length=MAX_CONDITIONS)
    for_: Duration = Field(default=600.0, alias="for")
    # false (CodeDeploy's default): an alarm or condition that cannot be read stops and rolls back
    ignore_poll_failure: bool = False

    @field_validator("alarms")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not 1 <= len(name) <= 255:
                raise ValueError("an alarm name has 1 to 255 characters")
        if len(set(v)) != len(v):
            raise ValueError("an alarm is named twice")
        return v

    @field_validator("for_")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be longer than 0")
        return v

    @model_validator(mode="after")
    def _something(self) -> WatchConfig:
        if not self.alarms and not self.metrics:
            raise ValueError("needs alarms or metrics to watch")
        labels = [c.label for c in self.metrics]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"metric condition {twice[0]!r} is given twice (give one a name)")
        for c in self.metrics:
            if c.window > self.for_:
                raise ValueError(
                    f"metric condition {c.label!r} looks at {c.window:g}s, longer than the watch ({self.for_:g}s)"
                )
        return self

    def describe(self) -> str:
        parts = [f"alarm{'s' if len(self.alarms) != 1 else ''} {', '.join(self.alarms)}"] if self.alarms else []
        parts += [f"condition {c.label}" for c in self.metrics]
        return "; ".join(parts)


def sources_for(services: Any, kind: str, provider: CloudProvider) -> dict[str, MetricSource]:
    """The metric sources a watch reads: the host's own when it wired some in, else built from
    what this process has (the local provider's HAProxy, AWS for CloudWatch, a Prometheus URL)."""
    wired = getattr(services, "metric_sources", None)
    if wired is not None:
        return dict(wired)
    return build_sources(
        SourceSettings(
            prometheus_url=getattr(services, "prometheus_url", None),
            aws=services.aws if kind == "aws" else None,
            haproxy=provider if hasattr(provider, "server_stats") else None,
        )
    )


def alarm_firing_before(states: list[AlarmState]) -> dict[str, dict[str, Any]]:
    """The alarms in ALARM before the deploy, as the watch remembers them."""
    return {s.name: s.as_dict() for s in states if s.state == "ALARM"}


@dataclass
class Poll:
    breaches: list[str] = field(default_factory=list)  # what rolls the deploy back, one line each
    unreadable: list[str] = field(default_factory=list)  # what could not be read, one line each
    notes: list[str] = field(default_factory=list)  # state changes worth a log line
    alarms: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> last state
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> last result
    left_alarm: list[str] = field(default_factory=list)  # alarms firing before, now seen out of ALARM


def poll_alarms(
    provider: CloudProvider,
    names: list[str],
    previous: Mapping[str, dict[str, Any]],
    firing_before: Mapping[str, dict[str, Any]],
    out: Poll,
) -> None:
    try:
        states = provider.alarm_states(names)
    except GennakerError as exc:  # NotSupported, a cloud error: every alarm unreadable, with why
        out.unreadable.append(f"cannot read alarms {', '.join(names)}: {exc}")
        out.alarms = {n: {"state": "UNREADABLE", "reason": str(exc)} for n in names}
        return
    for s in states:
        was = (previous.get(s.name) or {}).get("state")
        out.alarms[s.name] = s.as_dict()
        if s.state != was:
            out.notes.append(f"alarm {s.name}: {s.state}" + (f" ({s.reason})" if s.reason else ""))
        if s.state == "MISSING":
            out.unreadable.append(f"alarm {s.name} cannot be read: {s.reason}")
            continue
        before = firing_before.get(s.name)
        if before is not None and s.state != "ALARM":
            out.left_alarm.append(s.name)
        if s.state != "ALARM":
            continue
        refired = (
            before is None
            or bool(before.get("left"))
            or (s.updated_at is not None and s.updated_at.isoformat() != before.get("updated_at"))
        )
        if refired:
            out.breaches.append(f"alarm {s.name} is in ALARM: {s.reason or 'no reason given'}")


def poll_conditions(
    conditions: list[Condition],
    sources: Mapping[str, MetricSource],
    scope: Scope,
    since: float,
    now: float,
    previous: Mapping[str, dict[str, Any]],
    out: Poll,
) -> None:
    """Conditions whose window lies after ``since`` (the cutover, or the end of a gap in sampling)
    are evaluated; the others wait (a window reaching back before the cutover would judge the old
    group's traffic, or nothing)."""
    for name in sorted({c.source for c in conditions}):
        sample = getattr(sources.get(name), "sample", None)
        if sample is None:
            continue
        try:
            sample()  # counter-only sources (haproxy) need a sample at least every step
        except Exception as exc:  # a missed sample is a gap; the evaluation says what it makes of it
            out.notes.append(f"could not sample {name}: {exc}")
    ready = [c for c in conditions if now >= since + c.window]
    for c in conditions:
        if c not in ready:
            out.conditions[c.label] = {"state": "PENDING", "value": None, "reason": "window not complete yet"}
    results = evaluate_all(ready, sources, scope, datetime.fromtimestamp(now, UTC)) if ready else []
    for r in results:
        was = (previous.get(r.label) or {}).get("state")
        out.conditions[r.label] = {"state": r.state, "value": r.value, "reason": r.reason}
        if r.state != was:
            out.notes.append(f"condition {r.label}: {r.state} ({r.reason})")
        if r.state == "BREACHED":
            out.breaches.append(f"condition {r.label} breached: {r.reason}")
        elif r.state == "UNKNOWN":
            out.unreadable.append(f"condition {r.label} cannot be evaluated: {r.reason}")


def summary(state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The watch as the stage's outputs show it: when it ends, how it ended, each alarm's and each
    condition's last state and reason."""
    if not state:
        return None
    deadline = state.get("deadline")
    return {
        "until": datetime.fromtimestamp(float(deadline), UTC).isoformat(timespec="seconds") if deadline else None,
        "result": state.get("result", "watching"),
        "reason": state.get("reason"),
        "polls": state.get("polls", 0),
        "alarms": {
            name: {k: a.get(k) for k in ("state", "reason", "updated_at")}
            for name, a in (state.get("alarms") or {}).items()
        },
        "conditions": dict(state.get("conditions") or {}),
        "unreadable": list(state.get("unreadable") or []),
    }
