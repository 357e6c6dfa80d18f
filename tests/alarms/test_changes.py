"""Updates, stale alarms, scoping and refusals: a tier change updates our alarm in place, a deleted
database's alarms are deleted (ours only), --application narrows, and an AWS refusal is one line
and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gennaker.cli import run as gennaker
from tests.alarms.conftest import Shop


def cli(shop: Shop, capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = gennaker(["--config", str(shop.config_path), *args])
    captured = capfd.readouterr()
    return code, captured.out, captured.err


def rows(out: str) -> dict[str, str]:
    return {r["alarm"]: r["action"] for r in json.loads(out)["rows"]}


def test_tier_change_updates_and_a_gone_resource_is_stale(
    shop: Shop, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    assert cli(shop, capfd, "alarms", "apply")[0] == 0
    rds, cw = shop.aws("rds"), shop.aws("cloudwatch")
    arn = rds.describe_db_instances(DBInstanceIdentifier="shop-db")["DBInstances"][0]["DBInstanceArn"]
    rds.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "criticality", "Value": "low"}])
    rds.delete_db_instance(DBInstanceIdentifier="shop-db-replica", SkipFinalSnapshot=True)
    # a user's alarm named like ours is never ours: no tag, so never deleted or changed
    cw.put_metric_alarm(
        AlarmName="gennaker:rds.cpu:someone-elses-db",
        Namespace="AWS/RDS",
        MetricName="CPUUtilization",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=50,
        ComparisonOperator="GreaterThanThreshold",
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": "someone-elses-db"}],
    )

    code, out, err = cli(shop, capfd, "alarms", "plan", "--json")
    assert code == 0, err
    planned = rows(out)
    assert planned["gennaker:rds.cpu:shop-db"] == "update"
    assert planned["gennaker:rds.free_storage:shop-db"] == "update"
    assert planned["gennaker:rds.replica_lag:shop-db-replica"] == "stale"
    assert planned["gennaker:rds.cpu:shop-db-replica"] == "stale"
    assert "gennaker:rds.cpu:someone-elses-db" not in planned
    detail = next(r["detail"] for r in json.loads(out)["rows"] if r["alarm"] == "gennaker:rds.cpu:shop-db")
    assert "Threshold 80.0 -> 90.0" in detail and "tier high -> low" in detail

    code, out, err = cli(shop, capfd, "alarms", "plan")  # the Rich table says the same
    assert code == 0 and "stale" in out and "update" in out and "gennaker:rds.cpu:shop-db" in out

    assert cli(shop, capfd, "alarms", "apply")[0] == 0
    names = {a["AlarmName"]: a for a in cw.describe_alarms()["MetricAlarms"]}
    assert names["gennaker:rds.cpu:shop-db"]["Threshold"] == 90.0
    assert "gennaker:rds.replica_lag:shop-db-replica" not in names
    assert names["gennaker:rds.cpu:someone-elses-db"]["Threshold"] == 50.0
    tags = cw.list_tags_for_resource(ResourceARN=names["gennaker:rds.cpu:shop-db"]["AlarmArn"])["Tags"]
    assert {"Key": "gennaker:tier", "Value": "low"} in tags
    code, out, _ = cli(shop, capfd, "alarms", "plan", "--json")
    assert set(json.loads(out)["counts"]) <= {"unchanged", "covered"}


def test_application_scope(shop: Shop, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(shop, capfd, "alarms", "plan", "--application", "reports", "--json")
    assert code == 0 and json.loads(out)["rows"] == []
    code, out, _ = cli(shop, capfd, "alarms", "plan", "--application", "shop", "--json")
    assert code == 0 and {r["application"] for r in json.loads(out)["rows"]} == {"shop"}


def refuse(shop: Shop, operation: str) -> None:
    """CloudWatch answers AccessDenied to one operation (as an IAM policy without it would)."""

    class Denied:
        status_code = 403
        headers: dict[str, str] = {}

    def deny(**_: Any) -> tuple[Any, dict[str, Any]]:
        return Denied(), {"Error": {"Code": "AccessDenied", "Message": f"not allowed: cloudwatch:{operation}"}}

    def hook(raw: Any) -> None:
        if raw.meta.service_model.service_name == "cloudwatch":
            raw.meta.events.register(f"before-call.cloudwatch.{operation}", deny)

    shop.sessions.add_client_hook(hook)


def test_access_denied_is_one_line_and_non_zero(
    shop: Shop, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gennaker.cloud.aws import session

    made = []
    original = session.AwsSessions.__init__

    def spy(self: Any, *a: Any, **kw: Any) -> None:
        original(self, *a, **kw)
        made.append(self)
        shop.sessions = self
        refuse(shop, denied["op"])

    denied = {"op": "DescribeAlarms"}
    monkeypatch.setattr(session.AwsSessions, "__init__", spy)
    code, out, err = cli(shop, capfd, "alarms", "apply")
    assert code == 1
    assert "Traceback" not in out + err
    assert "nothing planned in main/us-east-1" in err and "AccessDenied" in err
    assert shop.aws("cloudwatch").describe_alarms()["MetricAlarms"] == []  # nothing done blind

    denied["op"] = "PutMetricAlarm"
    code, out, err = cli(shop, capfd, "alarms", "apply")
    assert code == 1 and "Traceback" not in out + err
    assert "failed create gennaker:" in err and "AccessDenied" in err
    assert made


def test_bad_settings_refused_before_any_call(shop: Shop, capfd: pytest.CaptureFixture[str]) -> None:
    good = shop.config_path.read_text()
    shop.config_path.write_text(good.replace("alarms:\n", "alarms:\n  tiers: {high: {rds_cpu: 80}}\n"))
    code, _, err = cli(shop, capfd, "alarms", "plan")
    assert code == 2 and "unknown threshold(s) ['rds_cpu']" in err and "Traceback" not in err
    shop.config_path.write_text(good)
    code, _, err = cli(shop, capfd, "alarms", "plan", "--topic", "arn:aws:sqs:us-east-1:123456789012:q")
    assert code == 2 and "is not an SNS topic ARN" in err


def test_a_topic_nobody_hears_is_a_warning(shop: Shop, capfd: pytest.CaptureFixture[str]) -> None:
    silent = shop.aws("sns").create_topic(Name="nobody-listens")["TopicArn"]
    code, out, err = cli(shop, capfd, "alarms", "plan", "--topic", silent, "--json")
    assert code == 0, err  # planned all the same: the warning says what the audit will say
    assert json.loads(out)["warnings"] == [
        f"{silent} has no confirmed email, SMS or HTTPS subscription: its alarms notify nobody"
    ]
    assert f"warning {silent} has no confirmed" in err
