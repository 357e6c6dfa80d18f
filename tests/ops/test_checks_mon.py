"""Monitoring checks: alarm coverage, alarm notification, incident response plans."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gennaker.cloud.aws.session import AwsSessions
from tests.ops.conftest import ACCOUNT_ID, statuses
from tests.ops.scene import run, stub

Audit = Callable[..., Any]
Aws = Callable[..., Any]


def alarm(cw: Any, name: str, dim: str, value: str, actions: list[str], enabled: bool = True) -> str:
    cw.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/EC2",
        MetricName="CPUUtilization",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=90,
        ComparisonOperator="GreaterThanThreshold",
        Dimensions=[{"Name": dim, "Value": value}],
        AlarmActions=actions,
        ActionsEnabled=enabled,
    )
    return f"arn:aws:cloudwatch:us-east-1:{ACCOUNT_ID}:alarm:{name}"


def test_alarm_coverage(aws: Aws, audit: Audit) -> None:
    ec2, cw, sns = aws("ec2"), aws("cloudwatch"), aws("sns")
    topic = sns.create_topic(Name="ops")["TopicArn"]
    watched, silent, muted = run(ec2)[0], run(ec2)[0], run(ec2)[0]
    alarm(cw, "cpu-watched", "InstanceId", watched, [topic])
    alarm(cw, "cpu-muted", "InstanceId", muted, [topic], enabled=False)  # actions disabled do not count
    arn = f"arn:aws:ec2:us-east-1:{ACCOUNT_ID}:instance/"
    assert statuses(audit("mon.alarms.coverage"), "mon.alarms.coverage") == {
        arn + watched: "PASS",
        arn + silent: "FAIL",
        arn + muted: "FAIL",
    }


def test_alarm_notify(aws: Aws, audit: Audit) -> None:
    cw, sns = aws("cloudwatch"), aws("sns")
    staffed = sns.create_topic(Name="staffed")["TopicArn"]
    empty = sns.create_topic(Name="empty")["TopicArn"]
    sns.subscribe(TopicArn=staffed, Protocol="email", Endpoint="ops@example.com")
    a = alarm(cw, "reaches-people", "InstanceId", "i-1", [staffed])
    b = alarm(cw, "reaches-nobody", "InstanceId", "i-2", [empty])
    c = alarm(cw, "no-action", "InstanceId", "i-3", [])
    assert statuses(audit("mon.alarms.notify"), "mon.alarms.notify") == {a: "PASS", b: "FAIL", c: "FAIL"}


def plans(names: list[str]) -> Callable[[str], list[tuple[str, Any]]]:
    def answer(region: str) -> list[tuple[str, Any]]:
        items = [{"arn": f"arn:aws:ssm-incidents::{ACCOUNT_ID}:response-plan/{n}", "name": n} for n in names]
        return [("list_response_plans", {"responsePlanSummaries": items if region == "us-east-1" else []})]

    return answer


def test_incident_response_plan_stubbed(sessions: AwsSessions, audit: Audit) -> None:
    """Simulated AWS has no Incident Manager: the answers are stubbed."""
    stub(sessions, "ssm-incidents", plans(["page-oncall"]))
    found = audit("mon.incident.response_plan").findings
    assert [(f.resource_id, f.status) for f in found] == [(ACCOUNT_ID, "PASS")]
    assert "page-oncall" in found[0].message


def test_incident_response_plan_missing_stubbed(sessions: AwsSessions, audit: Audit) -> None:
    stub(sessions, "ssm-incidents", plans([]))
    assert statuses(audit("mon.incident.response_plan"), "mon.incident.response_plan") == {ACCOUNT_ID: "FAIL"}


def test_incident_response_plan_unknown_without_api(audit: Audit) -> None:
    found = audit("mon.incident.response_plan").findings
    assert {f.status for f in found} == {"UNKNOWN"}
    # one per failed region, and the account's verdict: UNKNOWN, not a FAIL nobody could check
    assert {f.region for f in found} == {"us-east-1", "us-west-2", "global"}
