"""The CloudWatch side of recommended alarms: which alarms are ours, and carrying out a plan.

The inventory is the audit's own collection (``ops.collect``): the resource types the
recommendations watch plus ``cloudwatch.alarm``. The one extra read is the tags of alarms named with
our prefix (DescribeAlarms carries no tags), to tell what Gennaker created from a user's alarm of
the same name. Every call goes through ``AwsSessions``: a failure is a ``CloudError`` with the AWS
code, recorded on its row or scope, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gennaker.cloud.aws.session import AwsSessions
from gennaker.errors import CloudError, ConfigError
from gennaker.ops.alarms.plan import PREFIX, TAG_MANAGED, AlarmPlan, Row
from gennaker.ops.alarms.recommendations import TYPES
from gennaker.ops.alarms.settings import TOPIC
from gennaker.ops.collect import Progress, collect
from gennaker.ops.model import Snapshot, tag_dict
from gennaker.ops.settings import OpsSettings

# the watched types, the alarms to diff against, and who hears the topic (a warning when nobody)
COLLECTED: tuple[str, ...] = (*TYPES, "cloudwatch.alarm", "sns.subscription")


def inventory(
    sessions: AwsSessions,
    settings: OpsSettings,
    *,
    accounts: list[str] | None = None,
    regions: list[str] | None = None,
    progress: Progress | None = None,
) -> Snapshot:
    return collect(sessions, settings, accounts=accounts, regions=regions, types=COLLECTED, progress=progress)


def managed_alarms(
    sessions: AwsSessions, snapshot: Snapshot
) -> tuple[dict[tuple[str, str, str], dict[str, str]], dict[tuple[str, str], str]]:
    """(account, region, name) -> tags of the alarms tagged ``gennaker:managed=true``, and the scopes
    where tags could not be read (planning there could delete or duplicate: it is skipped)."""
    managed: dict[tuple[str, str, str], dict[str, str]] = {}
    unreadable: dict[tuple[str, str], str] = {}
    for a in snapshot.by_type().get("cloudwatch.alarm", []):
        if not a.id.startswith(PREFIX) or not a.arn or (a.account, a.region) in unreadable:
            continue
        try:
            raw = sessions.client(a.account, a.region, "cloudwatch").list_tags_for_resource(ResourceARN=a.arn)
        except CloudError as exc:
            unreadable[(a.account, a.region)] = f"tags of alarm {a.id} could not be read: {exc.code}: {exc}"
            continue
        tags = tag_dict(raw.get("Tags"))
        if tags.get(TAG_MANAGED) == "true":
            managed[(a.account, a.region, a.id)] = tags
    return managed, unreadable


def topics_valid(topic: str | None) -> str:
    if not topic:
        raise ConfigError("no SNS topic for alarm actions: pass --topic ARN or set alarms.topic in gennaker.yml")
    if len(topic) > 400 or not TOPIC.fullmatch(topic):
        raise ConfigError(f"topic {topic[:400]!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")
    return topic


def topics(snapshot: Snapshot, topic: str | None) -> dict[tuple[str, str], str]:
    """The topic for each (account, region): ``topic`` with {region} and {account_id} filled in.
    CloudWatch notifies only topics of the alarm's own region, so a fixed topic in another region
    is refused rather than creating alarms that tell nobody."""
    topic = topics_valid(topic)
    out: dict[tuple[str, str], str] = {}
    for name, info in snapshot.accounts.items():
        for region in info.regions:
            arn = topic.replace("{region}", region).replace("{account_id}", info.account_id or "")
            topic_region = arn.split(":")[3]
            if topic_region != region:
                continue  # reported by the planner as a scope without a topic
            out[(name, region)] = arn
    return out


@dataclass
class Outcome:
    row: Row
    ok: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.row.to_dict(), "ok": self.ok, "message": self.message}


def _carry_out(sessions: AwsSessions, row: Row) -> str:
    if row.action == "enable-metrics":
        assert row.spec is not None
        sessions.client(row.account, row.region, "autoscaling").enable_metrics_collection(**row.spec)
        return f"group metrics enabled on {row.alarm}"
    cw = sessions.client(row.account, row.region, "cloudwatch")
    if row.action == "stale":
        cw.delete_alarms(AlarmNames=[row.alarm])
        return f"deleted {row.alarm}"
    assert row.spec is not None
    tags = [{"Key": k, "Value": v} for k, v in row.tags.items()]
    if row.action == "create":
        cw.put_metric_alarm(**row.spec, Tags=tags)
        return f"created {row.alarm}"
    cw.put_metric_alarm(**row.spec)  # an update: PutMetricAlarm ignores Tags on existing alarms
    if row.arn:
        cw.tag_resource(ResourceARN=row.arn, Tags=tags)
    return f"updated {row.alarm}"


def apply(sessions: AwsSessions, plan: AlarmPlan) -> list[Outcome]:
    """Carry out the plan's changes, each on its own: one refused call fails its row only."""
    outcomes = []
    for row in plan.changes:
        try:
            outcomes.append(Outcome(row, True, _carry_out(sessions, row)))
        except CloudError as exc:
            outcomes.append(Outcome(row, False, str(exc)))
    return outcomes
