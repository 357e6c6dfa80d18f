"""Secret parameters (``secret: true``): the command gets the real value; no API response, log line,
output, console page or operations record holds it, stored or shown."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gennaker.api.app import create_app
from gennaker.engine import views
from gennaker.engine.secrets import MASK
from gennaker.errors import ValidationFailed
from gennaker.runtime import Runtime, build_runtime
from gennaker.store.tables import executions, logs, operations, stages
from gennaker.web import store
from tests.web.conftest import auth_config

SECRET = "s3cr3t-Pa55-q8v"
PIPELINE = """\
name: with-secret
application: shop
parameters:
  - {name: token, secret: true, required: true}
  - {name: version, default: "1.0"}
  - {name: out, default: token.sha256}
stages:
  - id: use
    type: run
    env: {TOKEN: "${trigger.params.token}", OUT: "${trigger.params.out}"}
    command: >-
      echo "token is $TOKEN";
      echo "::output copy=$TOKEN";
      echo "::output wrapped=before-$TOKEN-after";
      printf %s "$TOKEN" | sha256sum | cut -d' ' -f1 > "$OUT";
      echo inline ${trigger.params.token}
  - {id: after, type: run, requires: [use], command: "echo got ${stages.use.outputs.copy}"}
"""


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[TestClient, Runtime, dict[str, str]]]:
    rt = build_runtime(str(tmp_path / "g.db"), config=auth_config())
    token = store.create_token(rt.db, "alice", "alice", ["admin"], "test")["token"]
    with TestClient(create_app(rt, with_worker=True, worker_threads=2), base_url="http://127.0.0.1") as client:
        yield client, rt, {"Authorization": f"Bearer {token}"}
    rt.db.dispose()


def wait_done(client: TestClient, headers: dict[str, str], execution_id: str) -> dict[str, Any]:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        ex: dict[str, Any] = client.get(f"/api/executions/{execution_id}", headers=headers).json()
        if views.is_done(ex["status"]):
            return ex
        time.sleep(0.1)
    raise AssertionError(f"execution {execution_id} did not finish")


def test_secret_reaches_the_command_and_nothing_else(env: Any, tmp_path: Path) -> None:
    client, rt, admin = env
    r = client.post("/api/pipelines", json={"yaml": PIPELINE}, headers=admin)
    assert r.status_code == 201, r.text
    r = client.post(
        "/api/pipelines/with-secret/executions", json={"params": {"token": SECRET, "out": "/dev/null"}}, headers=admin
    )  # a registered pipeline runs in the server's directory: write nothing there
    assert r.status_code == 201, r.text
    eid = r.json()["id"]
    # Run again as an unregistered document in a directory of ours, to read what the command wrote.
    run = client.post(
        "/api/executions",
        json={"yaml": PIPELINE, "base_dir": str(tmp_path), "params": {"token": SECRET}},
        headers=admin,
    )
    assert run.status_code == 201, run.text
    ex = wait_done(client, admin, eid)
    wait_done(client, admin, run.json()["id"])
    assert ex["status"] == "SUCCEEDED", ex

    # The command had the real value.
    assert (tmp_path / "token.sha256").read_text().strip() == hashlib.sha256(SECRET.encode()).hexdigest()

    responses = []
    for path in (
        "/api/executions",
        f"/api/executions/{eid}",
        f"/api/executions/{eid}/stages/use",
        f"/api/executions/{eid}/stages/use/logs",
        f"/api/executions/{eid}/stages/after/logs",
        f"/api/executions/{eid}/operations",
        "/api/pipelines/with-secret",
        f"/executions/{eid}",
        f"/executions/{eid}/stages/use",
        f"/executions/{eid}/stages/after",
        "/applications/shop/pipelines",
        "/applications/shop/tasks",
        "/api/audit?application=shop",
    ):
        r = client.get(path, headers=admin)
        assert r.status_code == 200, (path, r.status_code)
        responses.append((path, r.text))
    with client.stream("GET", f"/api/executions/{eid}/stages/use/logs", params={"follow": "true"}, headers=admin) as r:
        responses.append(("follow", "".join(r.iter_text())))
    for path, text in responses:
        assert SECRET not in text, path

    # Masked, not dropped: what the secret was part of still shows, with the mask in its place.
    use = next(s for s in ex["stages"] if s["stage_id"] == "use")
    assert use["outputs"]["copy"] == MASK and use["outputs"]["wrapped"] == f"before-{MASK}-after"
    assert ex["trigger"]["params"] == {"token": MASK, "version": "1.0", "out": "/dev/null"}
    log_lines = [x["line"] for x in client.get(f"/api/executions/{eid}/stages/use/logs", headers=admin).json()]
    assert f"token is {MASK}" in log_lines and f"inline {MASK}" in log_lines
    page = dict(responses)[f"/executions/{eid}/stages/use"]
    assert f"token is {MASK}" in page

    # Stored masked everywhere but the trigger (the engine needs it to resolve commands).
    with rt.db.read() as conn:
        stored_logs = [r.line for r in conn.execute(select(logs.c.line))]
        stored_outputs = json.dumps([r.outputs for r in conn.execute(select(stages.c.outputs))], ensure_ascii=False)
        stored_ops = json.dumps([r.details for r in conn.execute(select(operations.c.details))])
        stored_contexts = json.dumps([r.context for r in conn.execute(select(stages.c.context))])
        trigger = conn.execute(select(executions.c.trigger).where(executions.c.id == eid)).scalar()
    assert stored_logs and not any(SECRET in line for line in stored_logs)
    assert SECRET not in stored_outputs and MASK in stored_outputs
    assert SECRET not in stored_ops
    assert SECRET not in stored_contexts  # the resolved config (command, env) too
    assert trigger["params"]["token"] == SECRET and trigger["secrets"] == ["token"]


def test_a_secret_parameter_cannot_have_a_default(env: Any) -> None:
    client, rt, admin = env
    text = (
        "name: x\napplication: shop\nparameters:\n  - {name: pw, secret: true, default: hunter2}\n"
        "stages:\n  - {id: a, type: run, command: 'true'}\n"
    )
    r = client.post("/api/pipelines", json={"yaml": text}, headers=admin)
    assert r.status_code == 422
    assert "secret parameter 'pw' cannot have a default" in r.text and "hunter2" not in r.json()["message"]
    with pytest.raises(ValidationFailed):
        rt.pipeline_from_text(text, "x.yml")


def test_masking_catches_the_quoted_and_escaped_forms() -> None:
    """A value with quotes shows up shell-quoted on a logged command line and escaped in JSON."""
    import shlex

    from gennaker.engine.secrets import mask, mask_text, public_trigger, secret_values

    value = "p'w\"d$1"
    trigger = {"params": {"pw": value, "n": 5, "empty": ""}, "secrets": ["pw", "empty"], "base_dir": "/x"}
    hidden = secret_values(trigger)
    for text in (f"echo {shlex.quote(value)}", json.dumps({"line": value}), f"got {value}!"):
        assert value not in mask_text(text, hidden) and "p'w" not in mask_text(text, hidden)
    assert public_trigger(trigger) == {"params": {"pw": MASK, "n": 5, "empty": ""}, "secrets": ["pw", "empty"]}
    assert mask({"a": [value, 7], value: "k"}, hidden) == {"a": [MASK, 7], MASK: "k"}
    assert mask_text("nothing to hide", secret_values({"params": {"pw": ""}, "secrets": ["pw"]})) == "nothing to hide"
