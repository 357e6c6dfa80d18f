"""What the incident tests share: a gennaker.yml for simulated AWS with webhook channels on a real
local receiver, a runtime on it, a job runner driven by the test, and waiting for a condition.

(Helpers, not a conftest: the diagnosis tests in this directory bring fixtures of their own names.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from gennaker.engine.jobs import JobRunner
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import config_from_text
from tests.core.conftest import FAST

ACCOUNT, REGION = "sandbox", "us-east-1"
# Long enough that a test acts on a new incident before level 2 is due, even on a busy machine (one
# run_due keeps polling while poll slots come due).
LEVEL_1_DELAY = 1.5


def config_yaml(
    endpoint: str,
    receiver_url: str,
    extra: str = "",
    *,
    more_channels: str = "",
    incident_channels: str = "[ops]",
    incidents_extra: str = "",
) -> str:
    """``more_channels``: lines under notifications.channels (4-space indent); ``incidents_extra``:
    lines under incidents (2-space indent)."""
    return f"""\
accounts:
  {ACCOUNT}:
    endpoint_url: "{endpoint}"
    regions: [{REGION}]
    aws_access_key_id: testing
    aws_secret_access_key: testing
    max_attempts: 2
notifications:
  max_attempts: 2
  backoff: 0.1
  channels:
    ops: {{type: webhook, url: "{receiver_url}/ops"}}
    pager: {{type: webhook, url: "{receiver_url}/pager"}}
    second: {{type: webhook, url: "{receiver_url}/second"}}
{more_channels}incidents:
  quiet_period: 0.5
  channels: {incident_channels}
{incidents_extra}  escalation: oncall
  rules:
    - {{name: high, match: {{criticality: [high]}}, priority: P1}}
    - {{name: low, match: {{criticality: [low]}}, priority: P5}}
  escalation_policies:
    oncall:
      levels:
        - {{targets: {{users: [alice], channels: [pager]}}, delay: {LEVEL_1_DELAY}}}
        - {{targets: {{users: [bob], roles: [shop:operator], channels: [second]}}, delay: 60}}
      priorities: [P1, P2, P3]
  poll: {{accounts: [{ACCOUNT}], every: 0.2}}
{extra}"""


def runtime(endpoint: str, receiver_url: str, tmp: Path, extra: str = "", db_url: str | None = None) -> Runtime:
    cfg = config_from_text(config_yaml(endpoint, receiver_url, extra))
    return build_runtime(db_url or f"sqlite:///{tmp / 'g.db'}", config=cfg, settings=FAST)


def runner(rt: Runtime, worker: str = "test-worker") -> JobRunner:
    return JobRunner(rt.db, rt.job_handlers, worker)


def wait_for(what: str, check: Callable[[], Any], runners: list[JobRunner] = (), timeout: float = 10.0) -> Any:  # type: ignore[assignment]
    """Run due jobs and check until ``check`` returns something truthy (returned), or fail."""
    deadline = time.monotonic() + timeout
    while True:
        for r in runners:
            r.run_due()
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def cloudwatch(endpoint: str) -> Any:
    return boto3.client(
        "cloudwatch",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def put_alarm(endpoint: str, name: str, tags: dict[str, str]) -> None:
    cloudwatch(endpoint).put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/ApplicationELB",
        MetricName="HTTPCode_Target_5XX_Count",
        Dimensions=[{"Name": "LoadBalancer", "Value": "app/shop/123"}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=10,
        ComparisonOperator="GreaterThanThreshold",
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )


def set_state(endpoint: str, name: str, state: str, reason: str = "test") -> None:
    cloudwatch(endpoint).set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason)


def events(received: list[Any], path: str) -> list[str]:
    return [r.json["event"] for r in received if r.path == path]
