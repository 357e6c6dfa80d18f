"""Pipelines' notifications through the engine and real workers: started/succeeded mail and webhook
posts, a failing receiver retried while the pipeline succeeds, a judgment re-notified until it is
answered, and a worker killed mid-delivery whose delivery another worker completes."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gennaker.engine import jobs
from gennaker.engine import operations as ops
from gennaker.engine.jobs import JobRunner, JobSettings
from gennaker.ops.notifications import list_deliveries
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import config_from_text
from tests.conftest import free_port
from tests.core.conftest import FAST, finished, start, wait_for
from tests.notifications.conftest import Mailbox, Receiver

FAST_JOBS = JobSettings(lease=2.0, poll=0.02, threads=2, extend_every=0.5)


def _config(channels: str) -> str:
    return (
        "server: {public_url: 'http://cd.example.test:8080'}\n"
        "notifications:\n  backoff: 50ms\n  max_attempts: 3\n  channels:\n" + channels
    )


@pytest.fixture
def make_rt(tmp_path: Path) -> Iterator[Any]:
    made: list[Runtime] = []

    def make(channels: str) -> Runtime:
        (tmp_path / "gennaker.yml").write_text(_config(channels))
        rt = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=config_from_text(_config(channels)), settings=FAST)
        rt.job_settings = FAST_JOBS
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.db.dispose()


def _deliveries(rt: Runtime) -> list[dict[str, Any]]:
    with rt.db.read() as conn:
        return list_deliveries(conn, None, limit=1000)


def _settled(rt: Runtime) -> bool:
    return all(d["status"] != "pending" for d in _deliveries(rt))


def test_a_pipeline_sends_mail_and_webhooks_and_a_failing_channel_does_not_hold_it(
    make_rt: Any,
    tmp_path: Path,
    receiver: Receiver,
    other_receiver: Receiver,
    smtp_server: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", smtp_server.password)
    monkeypatch.setenv("HOOK_SECRET", "s3")
    other_receiver.script = [500, 500]  # fails twice, then takes it
    rt = make_rt(
        f"""    ops-mail: {{type: email, host: 127.0.0.1, port: {smtp_server.port}, sender: cd@example.com,
                to: [ops@example.com], username: {smtp_server.user}, password_env: SMTP_PASSWORD,
                ca_file: '{smtp_server.ca_file}', timeout: 5s}}
    hook: {{type: webhook, url: '{receiver.url}/hook', secret_env: HOOK_SECRET}}
    flaky: {{type: webhook, url: '{other_receiver.url}/flaky'}}
    gone: {{type: webhook, url: 'http://127.0.0.1:{free_port()}/', timeout: 1s}}
"""
    )
    worker = rt.worker(threads=2)
    worker.start()
    try:
        eid = start(
            rt,
            tmp_path,
            """name: notify-demo
application: shop
notifications:
  - {channel: ops-mail, when: [pipeline.starting, pipeline.complete, pipeline.failed]}
  - {channel: hook, when: [pipeline.*, stage.failed]}
  - {channel: flaky, when: [pipeline.complete]}
  - {channel: gone, when: [pipeline.complete]}
stages:
  - {id: build, type: run, command: "true"}
  - {id: test, type: run, requires: [build], command: "exit 3", continue_on_failure: true}
""",
        )
        assert finished(rt, eid)["status"] == "SUCCEEDED"
        wait_for(lambda: _settled(rt) and len(_deliveries(rt)) == 7, timeout=20)
    finally:
        worker.stop()
    subjects = sorted(m["Subject"] for m in smtp_server.messages)
    assert subjects == ["[gennaker] notify-demo started", "[gennaker] notify-demo succeeded"]
    assert all(f"http://cd.example.test:8080/executions/{eid}" in m.get_payload() for m in smtp_server.messages)
    events = sorted(r.json["event"] for r in receiver.requests)
    assert events == ["pipeline.complete", "pipeline.starting", "stage.failed"]  # FAILED_CONTINUE is a failure
    for r in receiver.requests:
        expected = "sha256=" + hmac.new(b"s3", r.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(r.headers["x-gennaker-signature"], expected)
    failed_stage = next(r.json for r in receiver.requests if r.json["event"] == "stage.failed")
    assert failed_stage["fields"]["stage"] == "test" and failed_stage["link"].endswith(f"/executions/{eid}/stages/test")
    by_channel = {d["channel"]: d for d in _deliveries(rt) if d["event"] == "pipeline.complete"}
    assert by_channel["flaky"]["status"] == "sent" and by_channel["flaky"]["attempts"] == 3
    assert len(other_receiver.requests) == 3
    assert by_channel["gone"]["status"] == "failed" and "ConnectError" in by_channel["gone"]["last_error"]
    with rt.db.read() as conn:
        gone_job = jobs.get(conn, by_channel["gone"]["job_key"])
        assert gone_job is not None
        assert [a["outcome"] for a in jobs.attempts_of(conn, gone_job["id"])] == ["retry", "retry", "failed"]


def test_a_waiting_judgment_is_re_notified_until_it_is_answered(
    make_rt: Any, tmp_path: Path, receiver: Receiver
) -> None:
    rt = make_rt(f"    hook: {{type: webhook, url: '{receiver.url}'}}\n")
    worker = rt.worker(threads=2)
    worker.start()
    try:
        eid = start(
            rt,
            tmp_path,
            """name: gated
application: shop
notifications:
  - {channel: hook, when: [judgment.*], remind_every: 1s}
stages:
  - {id: go, type: manual_judgment, name: Go/No-Go, instructions: "Check the canary."}
""",
        )

        def titles() -> list[str]:
            return [b["title"] for b in receiver.bodies()]

        wait_for(lambda: "gated: 'Go/No-Go' awaits a judgment (reminder 2)" in titles(), timeout=15)
        first = receiver.bodies()[0]
        assert first["event"] == "judgment.awaiting" and first["text"] == "Check the canary."
        assert first["link"] == f"http://cd.example.test:8080/executions/{eid}/stages/go"
        ops.judge(rt.db, eid, "go", "alice", "approve", None)
        assert finished(rt, eid)["status"] == "SUCCEEDED"
        wait_for(lambda: any(b["event"] == "judgment.continued" for b in receiver.bodies()), timeout=10)
        time.sleep(1.5)  # a reminder would have come by now
    finally:
        worker.stop()
    bodies = receiver.bodies()
    after = bodies[[b["event"] for b in bodies].index("judgment.continued") :]
    assert [b["event"] for b in after] == ["judgment.continued"]
    assert after[0]["fields"]["choice"] == "approve" and after[0]["fields"]["by"] == "alice"
    reminders = [b for b in bodies if "(reminder" in b["title"]]
    assert len(reminders) >= 2 and len({b["delivery_id"] for b in bodies}) == len(bodies)
    with rt.db.read() as conn:
        notes = [jobs.get(conn, k) for k in _reminder_keys(rt)]
    assert any(n and n["note"] == "answered (or no longer waiting): reminders stop" for n in notes)


def _reminder_keys(rt: Runtime) -> list[str]:
    from sqlalchemy import select

    from gennaker.engine.job_tables import jobs as jobs_table

    with rt.db.read() as conn:
        return list(conn.execute(select(jobs_table.c.key).where(jobs_table.c.kind == "notification.remind")).scalars())


def test_a_worker_killed_mid_delivery_leaves_it_to_another(make_rt: Any, tmp_path: Path, receiver: Receiver) -> None:
    rt = make_rt(f"    hook: {{type: webhook, url: '{receiver.url}', timeout: 30s}}\n")
    receiver.hang.set()  # the first post is taken and never answered
    delivery_id = rt.notifications.send_test("hook", "alice")
    env = {
        **os.environ,
        "GENNAKER_DB": str(rt.db.engine.url),
        "GENNAKER_CONFIG": str(tmp_path / "gennaker.yml"),
        "GENNAKER_JOB_LEASE_SECONDS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gennaker.cli", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for(lambda: receiver.requests, timeout=30)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    receiver.hang.clear()
    wait_for(lambda: JobRunner(rt.db, rt.job_handlers, "survivor").run_due() or _settled(rt), timeout=10, every=0.1)
    [d] = _deliveries(rt)
    assert d["status"] == "sent" and d["id"] == delivery_id
    assert len(receiver.requests) == 2
    assert {r.headers["x-gennaker-delivery"] for r in receiver.requests} == {delivery_id}  # a receiver can dedup
    with rt.db.read() as conn:
        job = jobs.get(conn, d["job_key"])
        assert job is not None
        outcomes = [(a["outcome"], a["worker_id"] == "survivor") for a in jobs.attempts_of(conn, job["id"])]
    assert outcomes == [("abandoned", False), ("done", True)]


def test_a_judgment_that_stops_the_pipeline_says_so(make_rt: Any, tmp_path: Path, receiver: Receiver) -> None:
    rt = make_rt(f"    hook: {{type: webhook, url: '{receiver.url}'}}\n")
    worker = rt.worker(threads=2)
    worker.start()
    try:
        eid = start(
            rt,
            tmp_path,
            """name: gated
application: shop
notifications:
  - {channel: hook, when: [judgment.stopped, pipeline.failed]}
stages:
  - {id: go, type: manual_judgment}
""",
        )
        wait_for(lambda: _waiting(rt, eid), timeout=10)
        ops.judge(rt.db, eid, "go", "bob", "reject", "not today")
        assert finished(rt, eid)["status"] == "TERMINAL"
        wait_for(lambda: len(receiver.requests) >= 2 and _settled(rt), timeout=10)
    finally:
        worker.stop()
    bodies = sorted(receiver.bodies(), key=lambda b: b["event"])
    assert [b["event"] for b in bodies] == ["judgment.stopped", "pipeline.failed"]
    assert bodies[0]["fields"]["choice"] == "reject" and bodies[0]["fields"]["by"] == "bob"
    assert bodies[1]["severity"] == "error" and "stage 'go' stopped" in bodies[1]["text"]


def _waiting(rt: Runtime, eid: str) -> bool:
    from gennaker.engine import views

    with rt.db.read() as conn:
        return any(s["awaiting_judgment"] for s in views.execution_detail(conn, eid)["stages"])
