"""Plan and apply recommended alarms: what the CLI and the API share."""

from __future__ import annotations

from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops.alarms import aws
from gennaker.ops.alarms.aws import Outcome
from gennaker.ops.alarms.plan import AlarmPlan, Inputs, plan
from gennaker.ops.alarms.settings import AlarmSettings
from gennaker.ops.collect import Progress
from gennaker.ops.settings import OpsSettings


def plan_alarms(
    sessions: AwsSessions,
    ops: OpsSettings,
    settings: AlarmSettings,
    *,
    topic: str | None = None,
    application: str | None = None,
    accounts: list[str] | None = None,
    regions: list[str] | None = None,
    readable: frozenset[str] | None = None,
    progress: Progress | None = None,
) -> AlarmPlan:
    """Collect the inventory the recommendations watch (fresh: a plan acted on must see CloudWatch
    as it is now) and diff it against the recommendations."""
    chosen = topic or settings.topic
    aws.topics_valid(chosen)  # before collecting: a typo should not cost a collection
    snapshot = aws.inventory(sessions, ops, accounts=accounts, regions=regions, progress=progress)
    managed, unreadable = aws.managed_alarms(sessions, snapshot)
    inputs = Inputs(
        settings=settings,
        workload_tags=ops.workload_tags,
        topics=aws.topics(snapshot, chosen),
        managed=managed,
        unreadable=unreadable,
        application=application,
        readable=readable,
    )
    return plan(snapshot, inputs)


def apply_plan(sessions: AwsSessions, alarm_plan: AlarmPlan) -> list[Outcome]:
    return aws.apply(sessions, alarm_plan)
