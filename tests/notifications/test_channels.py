"""Each channel type against a real receiver: a signed webhook, a Slack-shaped receiver, SMTP with
STARTTLS and AUTH (aiosmtpd), SNS on simulated AWS (read back through an SQS subscription). Failures
are retried with backoff and recorded attempt by attempt; permanent ones stop at once."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from gennaker.engine import jobs
from gennaker.engine.jobs import JobRunner
from gennaker.errors import ValidationFailed
from gennaker.ops.notifications import Notice, enqueue, get_delivery, list_deliveries
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import config_from_text
from tests.conftest import free_port
from tests.core.conftest import FAST
from tests.notifications.conftest import Mailbox, Receiver

SECRET = "webhook-shared-secret"


def _runtime(tmp_path: Path, channels: str, extra: str = "") -> Runtime:
    text = f"notifications:\n  backoff: 50ms\n  max_attempts: 3\n  channels:\n{channels}\n{extra}"
    return build_runtime(f"sqlite:///{tmp_path / 'n.db'}", config=config_from_text(text), settings=FAST)


@pytest.fixture
def rt_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Runtime] = []

    def make(channels: str, extra: str = "") -> Runtime:
        made.append(_runtime(tmp_path, channels, extra))
        return made[-1]

    yield make
    for rt in made:
        rt.db.dispose()


def _run(rt: Runtime) -> int:
    return JobRunner(rt.db, rt.job_handlers, "test-worker").run_due()


def _delivery(rt: Runtime, delivery_id: str) -> dict[str, Any]:
    with rt.db.read() as conn:
        d = get_delivery(conn, delivery_id)
        assert d is not None
        job = jobs.get(conn, d["job_key"]) if d["job_key"] else None
        d["job"] = job
        d["job_attempts"] = jobs.attempts_of(conn, job["id"]) if job else []
    return d


def test_webhook_is_signed_and_carries_its_delivery_id(
    rt_factory: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    rt = rt_factory(f"    hook: {{type: webhook, url: '{receiver.url}/in', secret_env: HOOK_SECRET}}")
    delivery_id = rt.notifications.send_test("hook", "alice")
    assert _run(rt) == 1
    [req] = receiver.requests
    expected = "sha256=" + hmac.new(SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["x-gennaker-signature"], expected)
    assert req.headers["x-gennaker-delivery"] == delivery_id and req.headers["x-gennaker-event"] == "test"
    body = req.json
    assert body["delivery_id"] == delivery_id and body["event"] == "test" and "alice" in body["text"]
    d = _delivery(rt, delivery_id)
    assert d["status"] == "sent" and d["attempts"] == 1 and d["job"]["note"] == "HTTP 200"
    # a forged body does not match the signature (what a receiver checks)
    forged = req.body.replace(b"alice", b"mallory")
    assert not hmac.compare_digest(expected, "sha256=" + hmac.new(SECRET.encode(), forged, hashlib.sha256).hexdigest())


def test_a_failing_receiver_is_retried_with_backoff_and_every_attempt_recorded(
    rt_factory: Any, receiver: Receiver
) -> None:
    receiver.script = [500, 503]
    rt = rt_factory(f"    hook: {{type: webhook, url: '{receiver.url}'}}")
    delivery_id = rt.notifications.send_test("hook", "alice")
    assert _run(rt) == 1
    d = _delivery(rt, delivery_id)
    assert d["status"] == "pending" and d["attempts"] == 1 and d["last_error"] == "webhook: HTTP 500: ok"
    assert d["job"]["due_at"] > time.time()  # backing off
    deadline = time.time() + 5
    while _delivery(rt, delivery_id)["status"] == "pending" and time.time() < deadline:
        _run(rt)
        time.sleep(0.02)
    d = _delivery(rt, delivery_id)
    assert d["status"] == "sent" and d["attempts"] == 3 and d["last_error"] is None
    assert [a["outcome"] for a in d["job_attempts"]] == ["retry", "retry", "done"]
    assert [a["error"] for a in d["job_attempts"]][:2] == ["webhook: HTTP 500: ok", "webhook: HTTP 503: ok"]
    ids = {r.headers["x-gennaker-delivery"] for r in receiver.requests}
    assert len(receiver.requests) == 3 and ids == {delivery_id}  # every try carries the same id


def test_a_refused_connection_gives_up_after_max_attempts_and_stays_visible(rt_factory: Any) -> None:
    rt = rt_factory(f"    hook: {{type: webhook, url: 'http://127.0.0.1:{free_port()}/', timeout: 2s}}")
    delivery_id = rt.notifications.send_test("hook", "alice")
    deadline = time.time() + 10
    while _delivery(rt, delivery_id)["status"] == "pending" and time.time() < deadline:
        _run(rt)
        time.sleep(0.05)
    d = _delivery(rt, delivery_id)
    assert d["status"] == "failed" and d["attempts"] == 3 and "ConnectError" in d["last_error"]
    assert d["job"]["status"] == "failed" and d["job"]["last_error"].startswith("gave up after 3 attempts")
    assert [a["outcome"] for a in d["job_attempts"]] == ["retry", "retry", "failed"]


def test_a_permanent_refusal_is_not_retried(rt_factory: Any, receiver: Receiver) -> None:
    receiver.script = [404]
    receiver.answer = b"no_service"
    rt = rt_factory(f"    hook: {{type: webhook, url: '{receiver.url}'}}")
    delivery_id = rt.notifications.send_test("hook", "alice")
    _run(rt)
    d = _delivery(rt, delivery_id)
    assert d["status"] == "failed" and d["last_error"] == "webhook: HTTP 404: no_service"
    assert [a["outcome"] for a in d["job_attempts"]] == ["failed"] and len(receiver.requests) == 1


def test_a_missing_secret_fails_the_delivery_naming_the_variable_not_a_value(
    rt_factory: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOOK_SECRET", raising=False)
    rt = rt_factory(f"    hook: {{type: webhook, url: '{receiver.url}', secret_env: HOOK_SECRET}}")
    delivery_id = rt.notifications.send_test("hook", "alice")
    _run(rt)
    d = _delivery(rt, delivery_id)
    assert d["status"] == "failed" and "HOOK_SECRET, which is not set" in d["last_error"]
    assert receiver.requests == []  # nothing unsigned was sent


def test_slack_gets_blocks_with_a_link(rt_factory: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_URL", f"{receiver.url}/services/T000/B000/XXXX")
    rt = rt_factory(
        "    team: {type: slack, url_env: SLACK_URL}", extra="server: {public_url: 'https://cd.example.com/'}"
    )
    delivery_id = rt.notifications.send_test("team", "alice")
    _run(rt)
    [req] = receiver.requests
    assert req.path == "/services/T000/B000/XXXX"
    msg = req.json
    types = [b["type"] for b in msg["blocks"]]
    assert types == ["header", "section", "section", "actions", "context"]
    assert msg["blocks"][0]["text"]["text"] == "Test notification from Gennaker (team)"
    assert msg["blocks"][3]["elements"][0]["url"] == "https://cd.example.com/"
    assert delivery_id in msg["blocks"][4]["elements"][0]["text"] and "alice" in msg["text"]
    assert _delivery(rt, delivery_id)["status"] == "sent"


def _email_channel(box: Mailbox, **over: str) -> str:
    fields = {
        "type": "email",
        "host": box.host,
        "port": str(box.port),
        "sender": "gennaker@example.com",
        "to": "[ops@example.com, oncall@example.com]",
        "username": box.user,
        "password_env": "SMTP_PASSWORD",
        "ca_file": box.ca_file,
        "timeout": "5s",
        **over,
    }
    return "    ops-mail: {" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"


def test_email_over_starttls_with_auth(rt_factory: Any, smtp_server: Mailbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", smtp_server.password)
    rt = rt_factory(_email_channel(smtp_server))
    delivery_id = rt.notifications.send_test("ops-mail", "alice")
    _run(rt)
    d = _delivery(rt, delivery_id)
    assert d["status"] == "sent", d["last_error"]
    assert d["job"]["note"] == "sent to 2 recipient(s) over STARTTLS"
    [msg] = smtp_server.messages
    assert msg["Subject"] == "[gennaker] Test notification from Gennaker (ops-mail)"
    assert msg["X-Gennaker-Delivery"] == delivery_id and delivery_id in msg["Message-ID"]
    assert smtp_server.envelopes == [
        {"from": "gennaker@example.com", "to": ["ops@example.com", "oncall@example.com"], "tls": True}
    ]
    assert smtp_server.logins == [smtp_server.user]


def test_email_with_a_wrong_password_fails_without_retrying(
    rt_factory: Any, smtp_server: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "wrong")
    rt = rt_factory(_email_channel(smtp_server))
    delivery_id = rt.notifications.send_test("ops-mail", "alice")
    _run(rt)
    d = _delivery(rt, delivery_id)
    assert d["status"] == "failed" and d["last_error"] == "SMTP login refused: 535", d["last_error"]
    assert "wrong" not in json.dumps(d, default=str) and smtp_server.messages == []


def test_email_refuses_an_unverified_certificate(
    rt_factory: Any, smtp_server: Mailbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.notifications.conftest import _certificate

    (tmp_path / "other").mkdir()
    other_ca, _ = _certificate(tmp_path / "other")
    monkeypatch.setenv("SMTP_PASSWORD", smtp_server.password)
    rt = rt_factory(_email_channel(smtp_server, ca_file=str(other_ca)))
    delivery_id = rt.notifications.send_test("ops-mail", "alice")
    _run(rt)
    d = _delivery(rt, delivery_id)
    assert d["status"] == "failed" and d["last_error"].startswith("STARTTLS with 127.0.0.1")
    assert smtp_server.logins == [] and smtp_server.messages == []


def test_sns_publishes_to_the_topic(rt_factory: Any, moto_endpoint: str) -> None:
    kw: dict[str, Any] = {"endpoint_url": moto_endpoint, "region_name": "us-east-1"}
    sns, sqs = boto3.client("sns", **kw), boto3.client("sqs", **kw)
    topic = sns.create_topic(Name="ops-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts-readback")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    rt = rt_factory(
        f"    pager: {{type: sns, topic_arn: '{topic}', account: sim}}",
        extra=f"accounts:\n  sim: {{endpoint_url: '{moto_endpoint}', account_id: '123456789012'}}",
    )
    delivery_id = rt.notifications.send_test("pager", "alice")
    _run(rt)
    d = _delivery(rt, delivery_id)
    assert d["status"] == "sent", d["last_error"]
    assert d["job"]["note"].startswith("published as ")
    [m] = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    envelope = json.loads(m["Body"])
    assert envelope["Subject"] == "Test notification from Gennaker (pager)"
    assert envelope["MessageAttributes"]["gennaker.delivery"]["Value"] == delivery_id
    assert "alice asked for a test" in envelope["Message"]


def test_sns_to_a_missing_topic_fails_naming_the_error(rt_factory: Any, moto_endpoint: str) -> None:
    rt = rt_factory(
        "    pager: {type: sns, topic_arn: 'arn:aws:sns:us-east-1:123456789012:nope', account: sim}",
        extra=f"accounts:\n  sim: {{endpoint_url: '{moto_endpoint}'}}",
    )
    delivery_id = rt.notifications.send_test("pager", "alice")
    _run(rt)
    d = _delivery(rt, delivery_id)
    assert d["status"] == "failed" and d["last_error"].startswith("SNS Publish: NotFound")


def test_enqueue_is_idempotent_and_an_unknown_channel_is_a_recorded_failure(
    rt_factory: Any, receiver: Receiver
) -> None:
    rt = rt_factory(f"    hook: {{type: webhook, url: '{receiver.url}'}}")
    notice = Notice(event="incident.triggered", title="t", text="x", application="shop", fields={"p": "P1"})
    known = rt.config.notifications.channels
    with rt.db.begin() as conn:
        first = enqueue(conn, ["hook", "nowhere"], notice, "incident:42", known_channels=known)
        again = enqueue(conn, ["hook", "nowhere"], notice, "incident:42", known_channels=known)
    assert first == again and len(first) == 2
    assert _run(rt) == 1 and len(receiver.requests) == 1  # one job: the unknown channel has none
    with rt.db.read() as conn:
        rows = {d["channel"]: d for d in list_deliveries(conn, ["shop"], key="incident:42")}
        assert list_deliveries(conn, ["other-app"]) == []  # scoped to the caller's applications
    assert rows["hook"]["status"] == "sent"
    assert (
        rows["nowhere"]["status"] == "failed"
        and rows["nowhere"]["last_error"] == "unknown notification channel 'nowhere'"
    )


def test_config_and_pipelines_are_validated_with_their_position(rt_factory: Any, receiver: Receiver) -> None:
    with pytest.raises(ValidationFailed) as bad_config:
        config_from_text(
            "notifications:\n  channels:\n    s: {type: slack}\n    e: {type: email, host: h, sender: x}\n"
        )
    text = str(bad_config.value)
    assert "<config>:3:" in text and "exactly one of url or url_env" in text and "<config>:4:" in text
    with pytest.raises(ValidationFailed, match="channel 'p' publishes with unknown account 'nope'"):
        config_from_text(
            "notifications:\n  channels:\n    p: {type: sns, topic_arn: 'arn:aws:sns:us-east-1:1:t', account: nope}\n"
        )
    rt = rt_factory(f"    hook: {{type: webhook, url: '{receiver.url}'}}")
    doc = """name: p
application: shop
notifications:
  - {channel: hook, when: [pipeline.complete]}
  - {channel: ops-mail, when: [pipeline.failed]}
  - {channel: hook, when: [stage.*, pipeline.exploded]}
stages:
  - {id: a, type: wait, duration: 0}
"""
    with pytest.raises(ValidationFailed) as bad_event:
        rt.pipeline_from_text(doc, "p.yml")
    assert "p.yml:6:" in str(bad_event.value) and "unknown event(s) ['pipeline.exploded']" in str(bad_event.value)
    with pytest.raises(ValidationFailed) as bad_channel:
        rt.pipeline_from_text(doc.replace(", pipeline.exploded", ""), "p.yml")
    assert str(bad_channel.value).strip() == "p.yml:5:6: unknown notification channel 'ops-mail' (known: hook)"


def test_a_delivery_whose_workers_all_died_reads_failed_with_the_reason(rt_factory: Any, receiver: Receiver) -> None:
    rt = rt_factory(f"    hook: {{type: webhook, url: '{receiver.url}'}}")
    delivery_id = rt.notifications.send_test("hook", "alice")
    now = time.time()
    for n in range(3):  # max_attempts: 3 claims, none finished (each worker killed mid-send)
        assert len(jobs.claim(rt.db, f"dead{n}", ["notification.deliver"], now, 1.0, 10)) == 1
        now += 2.0
    assert jobs.claim(rt.db, "late", ["notification.deliver"], now, 1.0, 10) == []
    d = _delivery(rt, delivery_id)
    assert d["status"] == "failed" and d["last_error"] == "gave up: 3 attempt(s) started and none finished"
    assert [a["outcome"] for a in d["job_attempts"]] == ["abandoned"] * 3 and receiver.requests == []
