"""Alarm-watched deploys on simulated AWS: the alarms' states through the provider interface, and
the deploy stage watching them after cutover (moto stores alarms and SetAlarmState; it evaluates
nothing, so the tests drive the state)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gennaker.api.app import create_app
from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.aws.session import AwsSessions
from gennaker.cloud.provider import TAG_DEPLOYING
from gennaker.engine import operations as ops
from gennaker.engine.runner import EngineSettings
from gennaker.metrics.sources import Series
from gennaker.runtime import build_runtime
from gennaker.sandbox.seed import ShopWorld
from gennaker.spec.config import Config
from gennaker.stages.base import TaskContext
from gennaker.stages.deploy import Deploy, DeployConfig
from tests.cloud.conftest import (
    ACCOUNT,
    REGION,
    Clock,
    WorkerKilled,
    cluster_state,
    deploy_raw,
    launch_templates,
    run_stage,
    serving_groups,
)
from tests.conftest import admin_client
from tests.core.conftest import finished, wait_for


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


# --- the deploy stage's watch ----------------------------------------------------------------------


def watched(world: ShopWorld, alarms: list[str], **watch: Any) -> dict[str, Any]:
    return deploy_raw(world, watch={"alarms": alarms, "for": "5s", **watch})


def fire_at(sessions: AwsSessions, alarm: str, poll: int, reason: str = "Threshold Crossed: 9 > 5") -> Any:
    """An on_call hook: set ``alarm`` to ALARM before the watch's ``poll``-th call."""
    seen = {"n": 0}

    def on_call(task: str, _n: int, _context: dict[str, Any]) -> None:
        if task == "watch":
            seen["n"] += 1
            if seen["n"] == poll:
                _set_state(sessions, alarm, "ALARM", reason)

    return on_call


def _tg_targets(provider: AwsProvider, world: ShopWorld) -> set[str]:
    health = provider.elb.describe_target_health(TargetGroupArn=world.target_group_arn)["TargetHealthDescriptions"]
    return {d["Target"]["Id"] for d in health if d["TargetHealth"]["State"] != "unused"}


def _instances_of(provider: AwsProvider, name: str) -> set[str]:
    group = provider.get_server_group(name)
    assert group is not None
    return {i.id for i in group.instances}


def test_an_alarm_fired_mid_watch_rolls_back_to_the_previous_group(
    world: ShopWorld, provider: AwsProvider, sessions: AwsSessions, services: SimpleNamespace
) -> None:
    _put_alarm(sessions, "shop-5xx")
    clock = Clock()
    run = run_stage(
        Deploy(), watched(world, ["shop-5xx"]), services, clock=clock, on_call=fire_at(sessions, "shop-5xx", 3)
    )
    assert run.status == "FAILED"
    assert "alarm shop-5xx is in ALARM: Threshold Crossed: 9 > 5" in (run.message or "")
    assert "rolled back: shop-web-v001 is serving again, shop-web-v002 disabled" in (run.message or "")
    state = cluster_state(provider)
    assert serving_groups(provider) == ["shop-web-v001"]
    assert state["shop-web-v001"]["enabled"] and not state["shop-web-v001"]["suspended"]
    assert not state["shop-web-v002"]["enabled"]
    assert {"Launch", "Terminate", "AddToLoadBalancer"} <= state["shop-web-v002"]["suspended"]
    # the target group has exactly the previous group's instances
    assert _tg_targets(provider, world) == _instances_of(provider, "shop-web-v001")
    assert TAG_DEPLOYING not in state["shop-web-v002"]["tags"]  # the lease is released
    watch = run.outputs["watch"]
    assert watch["result"] == "rolled back" and watch["alarms"]["shop-5xx"]["state"] == "ALARM"
    assert watch["polls"] == 3
    assert any("watch: alarm shop-5xx: ALARM (Threshold Crossed: 9 > 5)" in line for line in run.logs)
    assert run.tasks_run.count("check_alarms") == 1


def test_no_alarm_succeeds_after_the_watch_with_the_new_group_serving(
    world: ShopWorld, provider: AwsProvider, sessions: AwsSessions, services: SimpleNamespace
) -> None:
    _put_alarm(sessions, "shop-5xx")
    clock = Clock()
    run = run_stage(Deploy(), watched(world, ["shop-5xx"]), services, clock=clock)
    assert run.status == "SUCCEEDED", run.message
    watch_polls = [t for t in run.tasks_run if t == "watch"]
    assert len(watch_polls) == 6  # every second for 5 s, and one at the deadline
    assert serving_groups(provider) == ["shop-web-v002"]
    state = cluster_state(provider)
    assert TAG_DEPLOYING not in state["shop-web-v002"]["tags"]
    assert run.outputs["watch"]["result"] == "passed"
    assert run.outputs["watch"]["alarms"]["shop-5xx"]["state"] == "OK"
    assert run.outputs["alarms_before"][0]["state"] == "OK"


def _kill_after(sessions: AwsSessions, service: str, event: str, which: set[int]) -> Any:
    """Kill the worker right after the n-th successful ``event`` call for n in ``which``."""
    calls = {"n": 0}

    def after_call(**_kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] in which:
            raise WorkerKilled(f"killed after {event} #{calls['n']}")

    sessions.client(ACCOUNT, REGION, service).raw.meta.events.register(f"after-call.{event}", after_call)
    return after_call


def test_the_deadline_is_stored_not_recomputed_after_a_restart(
    world: ShopWorld, provider: AwsProvider, sessions: AwsSessions, services: SimpleNamespace
) -> None:
    """Workers killed on watch polls (their results lost) do not move the watch's end: it ends at
    the deadline its first saved poll stored."""
    _put_alarm(sessions, "shop-5xx")
    clock = Clock()
    deadlines: list[float] = []

    def on_call(task: str, _n: int, context: dict[str, Any]) -> None:
        if task == "watch" and "watch" in context:
            deadlines.append(context["watch"]["deadline"])

    # DescribeAlarms #1 is check_alarms; #3, #5, #6 are watch polls
    hook = _kill_after(sessions, "cloudwatch", "monitoring.DescribeAlarms", {3, 5, 6})
    try:
        run = run_stage(Deploy(), watched(world, ["shop-5xx"]), services, clock=clock, on_call=on_call)
    finally:
        _cloudwatch(sessions).raw.meta.events.unregister("after-call.monitoring.DescribeAlarms", hook)
    assert run.status == "SUCCEEDED", run.message
    assert run.kills == 3
    assert len(set(deadlines)) == 1  # every poll after the first saved one saw the same deadline
    assert clock.t >= deadlines[0] and clock.t - deadlines[0] < 1.01
    assert run.outputs["watch"]["until"] == datetime.fromtimestamp(deadlines[0], UTC).isoformat(timespec="seconds")


def test_a_worker_killed_mid_watch_and_mid_rollback_rolls_back_once(
    world: ShopWorld, provider: AwsProvider, sessions: AwsSessions, services: SimpleNamespace
) -> None:
    _put_alarm(sessions, "shop-5xx")
    clock = Clock()
    # the poll that first sees ALARM dies (DescribeAlarms #4: check_alarms, 2 OK polls, then it),
    # and so does the rollback right after it re-enabled the previous group
    hooks = [
        (
            "cloudwatch",
            "monitoring.DescribeAlarms",
            _kill_after(sessions, "cloudwatch", "monitoring.DescribeAlarms", {4}),
        ),
        (
            "autoscaling",
            "autoscaling.ResumeProcesses",
            _kill_after(sessions, "autoscaling", "autoscaling.ResumeProcesses", {1}),
        ),
    ]
    try:
        run = run_stage(
            Deploy(), watched(world, ["shop-5xx"]), services, clock=clock, on_call=fire_at(sessions, "shop-5xx", 4)
        )
    finally:
        for service, event, hook in hooks:
            sessions.client(ACCOUNT, REGION, service).raw.meta.events.unregister(f"after-call.{event}", hook)
    assert run.kills == 2
    assert run.status == "FAILED" and "alarm shop-5xx is in ALARM" in (run.message or "")
    assert sum("rolling back to shop-web-v001" in line for line in run.logs) == 1
    assert serving_groups(provider) == ["shop-web-v001"]
    assert not cluster_state(provider)["shop-web-v002"]["enabled"]

    # The same task delivered once more after the stage ended (a late message): nothing is redone.
    before = sessions.calls.copy()
    ctx = TaskContext(
        execution_id="ex-1",
        stage_id="deploy",
        pipeline="p",
        application="shop",
        trigger={},
        config=DeployConfig.model_validate({"id": "deploy", "type": "deploy", **watched(world, ["shop-5xx"])}),
        context=dict(run.context),
        outputs=dict(run.outputs),
        attempt=1,
        stage_started_at=0.0,
        services=services,
        log=run.logs.append,
        now=clock.now,
    )
    task = next(t for t in Deploy().tasks(ctx.config) if t.name == "watch")
    again = task.run(ctx)
    assert again.status == "FAILED" and "rolled back" in (again.message or "")
    changed = {k: v - before[k] for k, v in sessions.calls.items() if v != before[k]}
    mutations = {k for k in changed if not k.split(".")[1].startswith(("describe", "get", "list"))}
    assert mutations <= {"autoscaling.delete_tags"}, changed  # clearing the lease again is all it does


def test_an_unreadable_alarm_rolls_back_unless_poll_failures_are_ignored(
    world: ShopWorld, provider: AwsProvider, sessions: AwsSessions, services: SimpleNamespace
) -> None:
    _put_alarm(sessions, "shop-5xx")

    def delete_at(poll: int) -> Any:
        seen = {"n": 0}

        def on_call(task: str, _n: int, _context: dict[str, Any]) -> None:
            if task == "watch":
                seen["n"] += 1
                if seen["n"] == poll:
                    _cloudwatch(sessions).delete_alarms(AlarmNames=["shop-5xx"])

        return on_call

    run = run_stage(Deploy(), watched(world, ["shop-5xx"]), services, on_call=delete_at(2))
    assert run.status == "FAILED"
    assert "alarm shop-5xx cannot be read: no CloudWatch alarm named 'shop-5xx'" in (run.message or "")
    assert "ignore_poll_failure is false" in (run.message or "") and "rolled back" in (run.message or "")
    assert serving_groups(provider) == ["shop-web-v001"]

    _put_alarm(sessions, "shop-5xx")
    run = run_stage(
        Deploy(),
        watched(world, ["shop-5xx"], ignore_poll_failure=True),
        services,
        on_call=delete_at(2),
        execution_id="ex-2",
    )
    assert run.status == "SUCCEEDED", run.message
    assert serving_groups(provider) == ["shop-web-v003"]
    assert run.outputs["watch"]["alarms"]["shop-5xx"]["state"] == "MISSING"
    assert sum("going on (ignore_poll_failure)" in line for line in run.logs) == 1  # said once, not every poll


def test_access_denied_reading_alarms_is_unreadable_too(
    world: ShopWorld, provider: AwsProvider, sessions: AwsSessions, services: SimpleNamespace
) -> None:
    """An error answer from CloudWatch (here AccessDenied, injected into botocore) mid-watch."""
    from botocore.exceptions import ClientError

    _put_alarm(sessions, "shop-5xx")
    calls = {"n": 0}

    def deny(**_kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] >= 3:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "DescribeAlarms")

    cloudwatch = _cloudwatch(sessions)
    cloudwatch.raw.meta.events.register("before-call.monitoring.DescribeAlarms", deny)
    try:
        run = run_stage(Deploy(), watched(world, ["shop-5xx"]), services)
    finally:
        cloudwatch.raw.meta.events.unregister("before-call.monitoring.DescribeAlarms", deny)
    assert run.status == "FAILED" and "AccessDenied" in (run.message or ""), run.message
    assert "rolled back" in (run.message or "")
    assert serving_groups(provider) == ["shop-web-v001"]


def test_an_alarm_in_alarm_before_warns_and_deploys_the_fix(
    world: ShopWorld, provider: AwsProvider, sessions: AwsSessions, services: SimpleNamespace
) -> None:
    _put_alarm(sessions, "shop-5xx")
    _set_state(sessions, "shop-5xx", "ALARM", "Threshold Crossed: 50 > 5")
    run = run_stage(Deploy(), watched(world, ["shop-5xx"]), services)
    assert run.status == "SUCCEEDED", run.message  # still in that same ALARM: the deploy may be its fix
    warning = next(line for line in run.logs if line.startswith("warning: alarm already in ALARM"))
    assert "shop-5xx (Threshold Crossed: 50 > 5)" in warning and "deploying anyway" in warning
    assert run.outputs["alarms_before"][0]["state"] == "ALARM"
    assert serving_groups(provider) == ["shop-web-v002"]


def test_an_alarm_in_alarm_before_that_recovers_and_fires_again_rolls_back(
    world: ShopWorld, provider: AwsProvider, sessions: AwsSessions, services: SimpleNamespace
) -> None:
    _put_alarm(sessions, "shop-5xx")
    _set_state(sessions, "shop-5xx", "ALARM", "before")
    seen = {"n": 0}

    def on_call(task: str, _n: int, _context: dict[str, Any]) -> None:
        if task == "watch":
            seen["n"] += 1
            if seen["n"] == 2:
                _set_state(sessions, "shop-5xx", "OK", "recovered")
            if seen["n"] == 3:
                _set_state(sessions, "shop-5xx", "ALARM", "again")

    run = run_stage(Deploy(), watched(world, ["shop-5xx"]), services, on_call=on_call)
    assert run.status == "FAILED" and "alarm shop-5xx is in ALARM: again" in (run.message or "")
    assert serving_groups(provider) == ["shop-web-v001"]


def test_an_alarm_in_alarm_before_with_refuse_creates_nothing(
    world: ShopWorld, provider: AwsProvider, sessions: AwsSessions, services: SimpleNamespace
) -> None:
    _put_alarm(sessions, "shop-5xx")
    _set_state(sessions, "shop-5xx", "ALARM", "Threshold Crossed: 50 > 5")
    before = cluster_state(provider)
    run = run_stage(Deploy(), {**watched(world, ["shop-5xx"]), "on_alarm_before": "refuse"}, services)
    assert run.status == "FAILED"
    assert run.message == (
        "watch: alarm already in ALARM before the deploy: shop-5xx (Threshold Crossed: 50 > 5); "
        "on_alarm_before is refuse, so nothing was created"
    )
    assert run.tasks_run == ["check_alarms"]
    assert cluster_state(provider) == before and launch_templates(provider) == ["shop-web-v001"]


def test_a_missing_alarm_before_the_deploy_creates_nothing(
    world: ShopWorld, provider: AwsProvider, services: SimpleNamespace
) -> None:
    run = run_stage(Deploy(), watched(world, ["nope"]), services)
    assert run.status == "FAILED" and "alarm nope cannot be read" in (run.message or "")
    assert "nothing was created" in (run.message or "") and launch_templates(provider) == ["shop-web-v001"]


# --- validation ------------------------------------------------------------------------------------

CONFIG = """
accounts:
  prod: {regions: [us-east-1]}
  laptop:
    kind: local
    load_balancers:
      shop-web: {listen: "127.0.0.1:8088", health: {path: /up, interval: 1s, timeout: 5s}}
"""

DOCUMENT = """name: p
application: shop
stages:
  - id: deploy
    type: deploy
    account: {account}
    stack: web
    image: ami-1
    capacity: {{min: 1, max: 1, desired: 1}}
{extra}"""

AWS = "    instance_type: t3.small\n"
LOCAL = "    command: python3 app.py\n    load_balancers: [shop-web]\n"


def _problems(account: str, extra: str) -> list[str]:
    from gennaker.cloud.tasks import bind_schemas
    from gennaker.errors import ValidationFailed
    from gennaker.spec.config import config_from_text
    from gennaker.spec.pipeline import pipeline_from_text
    from gennaker.stages import default_registry, stage_schemas

    schemas = bind_schemas(stage_schemas(default_registry()), config_from_text(CONFIG))
    try:
        pipeline_from_text(DOCUMENT.format(account=account, extra=extra), schemas, "p.yml")
    except ValidationFailed as err:
        return [str(p) for p in err.problems]
    return []


HAPROXY_5XX = "{source: haproxy, query: http_5xx_rate, op: '>', threshold: 0.02}"


@pytest.mark.parametrize(
    ("account", "extra", "problem"),
    [
        ("prod", AWS + "    watch: {alarms: [a], for: 5s}\n", None),
        ("laptop", LOCAL + f"    watch: {{metrics: [{HAPROXY_5XX}]}}\n", None),
        (
            "prod",
            AWS + "    watch: {alarms: [a], for: soon}\n",
            "p.yml:11:26: for: not a duration: 'soon' (use e.g. 30s, 10m, 4h, 3d, 1h30m)",
        ),
        ("prod", AWS + "    watch: {alarms: [a], alarm: b}\n", "p.yml:11:26: unknown field 'alarm'"),
        ("prod", AWS + "    watch: {alarms: [a, a]}\n", "p.yml:11:13: alarms: an alarm is named twice"),
        ("prod", AWS + "    watch: {for: 5s}\n", "p.yml:11:5: watch: needs alarms or metrics to watch"),
        (
            "prod",
            AWS + "    on_alarm_before: block\n",
            "p.yml:11:5: on_alarm_before: Input should be 'warn' or 'refuse'",
        ),
        (
            "laptop",
            LOCAL + "    watch:\n      metrics:\n        - {source: haproxy, query: errors, op: '>', threshold: 1}\n",
            "p.yml:14:29: query: haproxy has no measure 'errors' (one of: request_rate, http_5xx_rate, response_time)",
        ),
        (
            "laptop",
            LOCAL + "    watch:\n      metrics:\n        - {source: datadog, query: x, op: '>', threshold: 1}\n",
            "p.yml:14:12: source: unknown metric source 'datadog' (one of: cloudwatch, haproxy, prometheus)",
        ),
        (
            "laptop",
            LOCAL + "    watch:\n      metrics:\n        - {source: haproxy, query: request_rate, op: '>',"
            " threshold: 1, window: 5s}\n",
            "p.yml:14:73: unknown field 'window'",
        ),
        (
            "laptop",
            LOCAL + "    watch: {alarms: [shop-5xx]}\n",
            "p.yml:12:5: watch: alarms: account laptop is of kind local, which has no alarms; "
            "watch metric conditions instead",
        ),
        (
            "prod",
            AWS + f"    watch: {{metrics: [{HAPROXY_5XX}]}}\n",
            "p.yml:11:5: watch: metrics: source 'haproxy' cannot see server groups of account prod "
            "(kind aws: cloudwatch, prometheus)",
        ),
        (
            "prod",
            AWS + "    strategy: highlander\n    watch: {alarms: [a]}\n",
            "p.yml:12:5: watch: it rolls back to the previous server group, which highlander or "
            "max_remaining_server_groups: 1 destroys at cutover",
        ),
    ],
)
def test_watch_validation_is_one_located_line(account: str, extra: str, problem: str | None) -> None:
    assert _problems(account, extra) == ([problem] if problem else [])


def test_gennaker_validate_names_a_bad_watch_with_its_position(tmp_path: Any) -> None:
    (tmp_path / "gennaker.yml").write_text(CONFIG)
    (tmp_path / "p.yml").write_text(DOCUMENT.format(account="laptop", extra=LOCAL + "    watch: {alarms: [x]}\n"))
    proc = subprocess.run(
        [sys.executable, "-m", "gennaker", "--config", str(tmp_path / "gennaker.yml"), "validate", "p.yml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert (
        "p.yml:12:5: watch: alarms: account laptop is of kind local, which has no alarms" in proc.stdout + proc.stderr
    )
    assert "Traceback" not in proc.stderr


# --- through the engine, read back over HTTP ---------------------------------------------------------


def test_the_api_and_console_show_the_watch_and_its_alarms(
    world: ShopWorld, config: Config, sessions: AwsSessions, provider: AwsProvider, tmp_path: Path
) -> None:
    """A real worker runs the watched deploy; the test fires the alarm mid-watch; the API's stage, its
    log and the console's stage page show the alarm's last state and the rollback."""
    _put_alarm(sessions, "shop-5xx")
    stage = {
        "id": "deploy",
        "type": "deploy",
        **deploy_raw(world, poll_interval=0.2, watch={"alarms": ["shop-5xx"], "for": "30s"}),
    }
    runtime = build_runtime(f"sqlite:///{tmp_path / 'api.db'}", config=config, settings=EngineSettings(poll=0.02))
    runtime.services._aws = sessions
    app = create_app(runtime, with_worker=True)
    with admin_client(app) as api:
        pipeline = runtime.pipeline_from_text(json.dumps({"name": "watched", "application": "shop", "stages": [stage]}))
        eid = ops.start_execution(runtime.db, pipeline, {}, "tester")

        def watching() -> bool:
            out = api.get(f"/api/executions/{eid}/stages/deploy").json().get("outputs") or {}
            return bool((out.get("watch") or {}).get("polls"))

        wait_for(watching, timeout=60)
        shown = api.get(f"/api/executions/{eid}/stages/deploy").json()
        assert shown["outputs"]["watch"]["alarms"]["shop-5xx"]["state"] == "OK"
        assert shown["outputs"]["watch"]["result"] == "watching"
        _set_state(sessions, "shop-5xx", "ALARM", "Threshold Crossed: 9 > 5")
        detail = finished(runtime, eid, timeout=60)
        assert detail["status"] == "FAILED"
        shown = api.get(f"/api/executions/{eid}/stages/deploy").json()
        assert "alarm shop-5xx is in ALARM: Threshold Crossed: 9 > 5" in shown["message"]
        watch = shown["outputs"]["watch"]
        assert watch["result"] == "rolled back"
        assert watch["alarms"]["shop-5xx"] == {
            "state": "ALARM",
            "reason": "Threshold Crossed: 9 > 5",
            "updated_at": watch["alarms"]["shop-5xx"]["updated_at"],
        }
        lines = [r["line"] for r in api.get(f"/api/executions/{eid}/stages/deploy/logs").json()]
        assert any(line.startswith("watching alarm shop-5xx for 30s after cutover to shop-web-v002") for line in lines)
        assert "watch: alarm shop-5xx: ALARM (Threshold Crossed: 9 > 5)" in lines
        page = api.get(f"/executions/{eid}/stages/deploy")
        assert page.status_code == 200
        assert "shop-5xx" in page.text and "Threshold Crossed: 9 &gt; 5" in page.text
    assert serving_groups(provider) == ["shop-web-v001"]


def test_a_cloudwatch_condition_on_the_new_group_rolls_back(
    world: ShopWorld, provider: AwsProvider, sessions: AwsSessions, services: SimpleNamespace
) -> None:
    """Gennaker evaluates the condition itself over GetMetricData for the new group's ASG (moto stores
    the data the test publishes; it evaluates nothing). No data at first is NO_DATA, not a breach."""
    clock = Clock(t=float(int(time.time())) - 600)
    condition = {
        "name": "errors",
        "source": "cloudwatch",
        "query": "namespace=Shop metric=Errors stat=Sum",
        "op": ">",
        "threshold": 5,
        "for": "10s",
        "step": "10s",
    }
    seen = {"n": 0}

    def publish(task: str, _n: int, _context: dict[str, Any]) -> None:
        if task != "watch":
            return
        seen["n"] += 1
        if seen["n"] >= 12:  # from 11 s into the watch (its first window is complete at 10 s), it errs
            _cloudwatch(sessions).put_metric_data(
                Namespace="Shop",
                MetricData=[
                    {
                        "MetricName": "Errors",
                        "Dimensions": [{"Name": "AutoScalingGroupName", "Value": "shop-web-v002"}],
                        "Timestamp": datetime.fromtimestamp(clock.t - 1, UTC),
                        "Value": 9.0,
                    }
                ],
            )

    raw = deploy_raw(world, watch={"metrics": [condition], "for": "20s"})
    run = run_stage(Deploy(), raw, services, clock=clock, on_call=publish)
    assert run.status == "FAILED", [line for line in run.logs if "watch" in line]
    assert "watch: condition errors breached: 9 > 5" in (run.message or ""), run.message
    assert serving_groups(provider) == ["shop-web-v001"]
    assert any(line.startswith("watch: condition errors: NO_DATA") for line in run.logs), run.logs
    assert run.tasks_run.count("check_alarms") == 0  # no alarms named: nothing to read before


def test_the_plan_says_what_the_deploy_watches(
    world: ShopWorld, provider: AwsProvider, services: SimpleNamespace
) -> None:
    from gennaker.cloud.plan import plan_pipeline, render
    from gennaker.spec.pipeline import pipeline_from_text

    stage = {"id": "deploy", "type": "deploy", **watched(world, ["shop-5xx"])}
    pipeline = pipeline_from_text(
        json.dumps({"name": "p", "application": "shop", "stages": [stage]}), {"deploy": Deploy.Config}
    )
    text = render(plan_pipeline(pipeline, {"deploy": Deploy()}, services, {}))
    assert (
        "note: after cutover, watches alarm shop-5xx for 5s and rolls back to the previous server group if one fires"
        in text
    ), text


class Steady:
    """A metric source (wired in as the host's ``cloudwatch``) answering one value per step of the
    window asked, as a healthy group's metric would."""

    name = "cloudwatch"

    def __init__(self, value: float):
        self.value = value
        self.windows: list[tuple[float, float]] = []

    def check(self, query: str) -> str | None:
        return None

    def fetch(self, queries: Any, scopes: Any, start: datetime, end: datetime, step: float) -> Any:
        self.windows.append((start.timestamp(), end.timestamp()))
        n = max(1, int((end - start).total_seconds() // step))
        points = Series(tuple(end.timestamp() - i * step for i in range(n)), (self.value,) * n)
        return {s.server_group: {q.name: points for q in queries} for s in scopes}


def test_after_a_gap_in_polling_conditions_wait_and_one_never_judged_is_no_pass(
    world: ShopWorld, provider: AwsProvider, services: SimpleNamespace
) -> None:
    source = Steady(0.0)
    wired = SimpleNamespace(**vars(services), metric_sources={"cloudwatch": source})
    condition = {"name": "errors", "source": "cloudwatch", "query": "namespace=Shop metric=Errors", "op": ">",
                 "threshold": 5, "for": "3s", "step": "1s"}  # fmt: skip
    clock = Clock()
    polls = {"n": 0}

    def stall(task: str, _n: int, _context: dict[str, Any]) -> None:
        if task == "watch":
            polls["n"] += 1
            if polls["n"] == 2:
                clock.t += 2.5  # nobody polled (or sampled) for 3.5 s: the window restarts after it

    raw = deploy_raw(world, watch={"metrics": [condition], "for": "4s"})
    run = run_stage(Deploy(), raw, wired, clock=clock, on_call=stall)
    assert run.status == "FAILED"
    assert "condition errors was never evaluated (no complete 3s window)" in (run.message or ""), run.message
    assert "rolled back" in (run.message or "") and serving_groups(provider) == ["shop-web-v001"]
    assert any("nothing sampled for 3.5s; the conditions wait for a full window" in line for line in run.logs)
    assert source.windows == []  # never asked for a window reaching over the gap

    # with ignore_poll_failure the same watch passes, saying so once; a longer watch judges it after the gap
    raw = deploy_raw(world, watch={"metrics": [condition], "for": "4s", "ignore_poll_failure": True})
    polls["n"] = 0
    run = run_stage(Deploy(), raw, wired, clock=clock, on_call=stall, execution_id="ex-2")
    assert run.status == "SUCCEEDED", run.message
    assert sum("was never evaluated" in line for line in run.logs) == 1
    polls["n"] = 0
    raw = deploy_raw(world, watch={"metrics": [condition], "for": "8s"})
    run = run_stage(Deploy(), raw, wired, clock=clock, on_call=stall, execution_id="ex-3")
    assert run.status == "SUCCEEDED", run.message
    assert run.outputs["watch"]["conditions"]["errors"]["state"] == "OK"
    assert source.windows and all(end - start == 3.0 for start, end in source.windows)


def test_a_condition_longer_than_the_watch_is_refused() -> None:
    problems = _problems(
        "prod",
        AWS + "    watch:\n      for: 10s\n      metrics:\n"
        "        - {source: cloudwatch, query: 'namespace=A metric=B', op: '>', threshold: 1, for: 30s}\n",
    )
    assert problems == [
        "p.yml:11:5: watch: metric condition 'cloudwatch namespace=A metric=B > 1' looks at 30s, "
        "longer than the watch (10s)"
    ]
