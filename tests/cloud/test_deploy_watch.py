"""Alarm-watched deploys on simulated AWS: the alarms' states through the provider interface, and
the deploy stage watching them after cutover (moto stores alarms and SetAlarmState; it evaluates
nothing, so the tests drive the state)."""

from __future__ import annotations

from typing import Any

from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.aws.session import AwsSessions

from .conftest import ACCOUNT, REGION


def _cloudwatch(sessions: AwsSessions) -> Any:
    return sessions.client(ACCOUNT, REGION, "cloudwatch")


def _put_alarm(sessions: AwsSessions, name: str, asg: str = "shop-web-v000") -> None:
    _cloudwatch(sessions).put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/ApplicationELB",
        MetricName="HTTPCode_Target_5XX_Count",
        Dimensions=[{"Name": "AutoScalingGroupName", "Value": asg}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=5,
        ComparisonOperator="GreaterThanThreshold",
    )


def _set_state(sessions: AwsSessions, name: str, state: str, reason: str = "set by the test") -> None:
    _cloudwatch(sessions).set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason)


def test_alarm_states_reads_named_alarms_in_order_and_reports_missing(
    sessions: AwsSessions, provider: AwsProvider
) -> None:
    _put_alarm(sessions, "shop-5xx")
    _put_alarm(sessions, "shop-latency")
    _set_state(sessions, "shop-5xx", "ALARM", "Threshold Crossed: 7 > 5")

    states = provider.alarm_states(["shop-latency", "nope", "shop-5xx"])

    assert [(s.name, s.state) for s in states] == [("shop-latency", "OK"), ("nope", "MISSING"), ("shop-5xx", "ALARM")]
    assert states[2].reason == "Threshold Crossed: 7 > 5"
    assert states[2].metric == "HTTPCode_Target_5XX_Count"
    assert states[2].dimensions == {"AutoScalingGroupName": "shop-web-v000"}
    assert states[2].updated_at is not None
    assert "no CloudWatch alarm named 'nope'" in states[1].reason


def test_alarm_states_none_means_every_alarm_and_batches_of_100(sessions: AwsSessions, provider: AwsProvider) -> None:
    for i in range(3):
        _put_alarm(sessions, f"a{i}")
    assert [s.name for s in provider.alarm_states()] == ["a0", "a1", "a2"]
    assert provider.alarm_states([]) == []

    before = sessions.calls["cloudwatch.describe_alarms"]
    names = [f"a{i % 3}" if i < 3 else f"missing-{i}" for i in range(150)]
    states = provider.alarm_states(names)
    assert len(states) == 150 and states[0].state == "OK" and states[149].state == "MISSING"
    assert sessions.calls["cloudwatch.describe_alarms"] - before == 2  # 100 names a call
