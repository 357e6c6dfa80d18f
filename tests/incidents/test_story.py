"""The whole story on simulated AWS (moto over HTTP), in one flow: the shop world seeded and its load
balancer marked criticality=high; a red/black deploy run by the engine, the inventory audited before
and after it; ``gennaker alarms apply`` creates the recommended alarms on the topic; the test sets the
load balancer's 5xx alarm to ALARM; the poller opens an incident with the rule's priority, its
recorded diagnosis names the deploy's execution, its channels deliver to a real local webhook
receiver and a real SMTP server (aiosmtpd, STARTTLS and AUTH); nobody acks, so level 2 is told after
the delay; a second alarm's incident, acknowledged through the CLI, escalates no further; both alarms
back to OK resolve their incidents after the quiet period."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from gennaker.cli import run as gennaker
from gennaker.cloud.aws.session import AwsSessions
from gennaker.engine import operations as ops
from gennaker.ops.alarms.plan import TAG_TIER
from gennaker.ops.incidents import ensure_polling, store
from gennaker.ops.incidents.diagnosis import DIAGNOSIS_EVENT
from gennaker.ops.service import audit_and_store
from gennaker.ops.settings import OpsSettings
from gennaker.runtime import Runtime, build_runtime
from gennaker.sandbox.seed import seed_shop
from gennaker.spec.config import config_from_text
from tests.cloud.conftest import deploy_raw
from tests.core.conftest import FAST, finished
from tests.incidents.support import ACCOUNT, LEVEL_1_DELAY, REGION, config_yaml, events, runner, set_state, wait_for
from tests.notifications.conftest import Mailbox, Receiver, serve_receiver, smtp_server

__all__ = ["smtp_server"]

LINK_BASE = "https://cd.example.com"
CHECKS = ["ha.asg.*"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as rec:
        yield rec


def _aws(endpoint: str, service: str) -> Any:
    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def _incidents(rt: Runtime, **kw: str) -> list[dict[str, Any]]:
    with rt.db.read() as conn:
        return store.list_incidents(conn, **kw)  # type: ignore[arg-type]


def _kinds(rt: Runtime, incident_id: str) -> list[str]:
    with rt.db.read() as conn:
        return [e["kind"] for e in store.timeline(conn, incident_id)]


def _cli(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capfd.readouterr()
    code = gennaker(list(args))
    captured = capfd.readouterr()
    return code, captured.out, captured.err


def test_alarm_to_incident_story(
    moto_endpoint: str,
    receiver: Receiver,
    smtp_server: Mailbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", smtp_server.password)
    sns = _aws(moto_endpoint, "sns")
    topic = sns.create_topic(Name="gennaker-alarms")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="oncall@example.com")
    mail = (
        f"    mail: {{type: email, host: {smtp_server.host}, port: {smtp_server.port}, sender: gennaker@example.com,"
        f" to: [oncall@example.com], username: {smtp_server.user}, password_env: SMTP_PASSWORD,"
        f" ca_file: {smtp_server.ca_file}, timeout: 5s}}\n"
    )
    text = config_yaml(
        moto_endpoint,
        receiver.url,
        more_channels=mail,
        incident_channels="[ops, mail]",
        incidents_extra=f"  link_base: {LINK_BASE}\n",
    )
    config_path = tmp_path / "gennaker.yml"
    config_path.write_text(text)
    db_url = f"sqlite:///{tmp_path / 'g.db'}"
    cfg = config_from_text(text, str(config_path))
    rt = build_runtime(db_url, config=cfg, settings=FAST)
    try:
        _story(rt, cfg, moto_endpoint, topic, receiver, smtp_server, config_path, db_url, capfd)
    finally:
        rt.db.dispose()


def _story(
    rt: Runtime,
    cfg: Any,
    endpoint: str,
    topic: str,
    receiver: Receiver,
    box: Mailbox,
    config_path: Path,
    db_url: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # ---- the world, its inventory, and a deploy through the engine -------------------------------------
    sessions = AwsSessions(cfg, max_attempts=3)
    world = seed_shop(sessions, ACCOUNT, REGION)
    elb = _aws(endpoint, "elbv2")
    # the business tier the alarms' thresholds and the incident's priority come from
    for arn in (world.load_balancer_arn, world.target_group_arn):
        elb.add_tags(ResourceArns=[arn], Tags=[{"Key": "criticality", "Value": "high"}])
    settings = OpsSettings()
    audit_and_store(rt.db, sessions, settings, checks=CHECKS)  # the inventory before the deploy
    worker = rt.worker(threads=2)
    worker.start()
    try:
        stage = {"id": "deploy-prod", "name": "Deploy To Prod", "type": "deploy"}
        stage |= deploy_raw(world, poll_interval=0.2)
        pipeline = json.dumps({"name": "release", "application": "shop", "stages": [stage]})
        execution_id = ops.start_execution(rt.db, rt.pipeline_from_text(pipeline), {}, "dana")
        deployed = finished(rt, execution_id, timeout=90)
    finally:
        worker.stop()
    assert deployed["status"] == "SUCCEEDED", deployed
    audit_and_store(rt.db, sessions, settings, checks=CHECKS)  # the inventory after it

    # ---- the recommended alarms, through the CLI --------------------------------------------------------
    code, out, err = _cli(capfd, "--config", str(config_path), "alarms", "apply", "--topic", topic, "--json")
    assert code == 0, err
    applied = json.loads(out)
    created = {o["alarm"] for o in applied["outcomes"] if o["action"] == "create"}
    lb_dim = world.load_balancer_arn.split(":loadbalancer/")[-1]
    elb_5xx = next(a for a in created if a.startswith("gennaker:alb.elb_5xx:"))
    unhealthy = next(a for a in created if a.startswith("gennaker:tg.unhealthy_hosts:"))
    cw = _aws(endpoint, "cloudwatch")
    alarm = cw.describe_alarms(AlarmNames=[elb_5xx])["MetricAlarms"][0]
    assert alarm["AlarmActions"] == alarm["OKActions"] == [topic]
    assert {"Name": "LoadBalancer", "Value": lb_dim} in alarm["Dimensions"]
    tags = {t["Key"]: t["Value"] for t in cw.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]}
    assert tags[TAG_TIER] == "high"

    # ---- the poller: alarms first seen OK open nothing --------------------------------------------------
    jobs_ = runner(rt)
    ensure_polling(rt.db, rt.incidents)
    jobs_.run_due()
    assert _incidents(rt) == []

    # ---- the load balancer's 5xx alarm fires -------------------------------------------------------------
    set_state(endpoint, elb_5xx, "ALARM", "Threshold Crossed: 42 > 10")
    inc = wait_for("the poller to open an incident", lambda: _incidents(rt), [jobs_])[0]
    incident_id = str(inc["id"])
    assert (inc["priority"], inc["rule"], inc["application"], inc["status"]) == ("P1", "high", "shop", "triggered")

    with rt.db.read() as conn:
        timeline = store.timeline(conn, incident_id)
    (diagnosis,) = [e for e in timeline if e["kind"] == DIAGNOSIS_EVENT]
    assert diagnosis["details"]["application"] == "shop"
    assert [d["execution_id"] for d in diagnosis["details"]["activity"]["deploys"]] == [deployed["id"]]
    assert deployed["id"] in diagnosis["text"], diagnosis["text"]
    found = [r for r in diagnosis["details"]["resources"] if r["found"]]
    assert found and found[0]["type"] == "elbv2.load_balancer" and found[0]["application"] == "shop", found

    # the incident's channels: the webhook and the email; level 1's channel
    link = f"{LINK_BASE}/incidents/{incident_id}"
    wait_for("the webhook and the email", lambda: events(receiver.requests, "/pager") and box.messages, [jobs_])
    assert events(receiver.requests, "/ops") == ["incident.triggered"]
    hook = next(r.json for r in receiver.requests if r.path == "/ops")
    assert hook["link"] == link and hook["fields"]["priority"] == "P1"
    (msg,) = box.messages
    assert " ".join(str(msg["Subject"]).split()) == f"[gennaker] [P1] {inc['title']}"  # unfolded
    assert link in msg.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert box.envelopes[0]["tls"] is True and box.logins == [box.user]

    # nobody acknowledges: level 2 after level 1's delay, once
    wait_for("escalation to level 2", lambda: events(receiver.requests, "/second"), [jobs_], timeout=10)
    time.sleep(0.3)
    jobs_.run_due()
    assert events(receiver.requests, "/second") == ["incident.escalated"]
    with rt.db.read() as conn:
        (escalated,) = [e for e in store.timeline(conn, incident_id) if e["kind"] == "escalated"]
        assert escalated["at"] - store.get(conn, incident_id)["created_at"] >= LEVEL_1_DELAY - 0.05  # not before

    # ---- a second alarm's incident, acknowledged through the CLI: no level 2 ----------------------------
    set_state(endpoint, unhealthy, "ALARM", "Threshold Crossed: 2 > 0")
    second = wait_for("a second incident", lambda: [i for i in _incidents(rt) if i["id"] != inc["id"]], [jobs_])[0]
    second_id = str(second["id"])
    assert second["priority"] == "P1"
    code, out, err = _cli(
        capfd, "--db", db_url, "--config", str(config_path), "--user", "alice", "incidents", "ack", second_id
    )
    assert code == 0, err
    assert _incidents(rt, status="acknowledged")[0]["id"] == second_id
    time.sleep(LEVEL_1_DELAY + 0.3)  # past level 1's delay
    wait_for("the second incident's level 1", lambda: len(events(receiver.requests, "/pager")) == 2, [jobs_])
    jobs_.run_due()
    assert events(receiver.requests, "/second") == ["incident.escalated"]  # still only the first's
    kinds = _kinds(rt, second_id)
    assert "acknowledged" in kinds and "escalated" not in kinds

    # ---- both alarms back to OK: resolved after the quiet period ----------------------------------------
    set_state(endpoint, elb_5xx, "OK", "back to normal")
    set_state(endpoint, unhealthy, "OK", "back to normal")
    resolved = wait_for(
        "the quiet period to resolve both", lambda: len(_incidents(rt, status="resolved")) == 2, [jobs_], timeout=10
    )
    assert resolved
    assert {i["resolved_by"] for i in _incidents(rt, status="resolved")} == {"auto"}
    wait_for("the resolved notices", lambda: events(receiver.requests, "/ops").count("incident.resolved") == 2, [jobs_])
    wait_for("the resolved emails", lambda: len(box.messages) == 4, [jobs_])
