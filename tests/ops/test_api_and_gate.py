"""The ops API router and the readiness_gate stage, against simulated AWS."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from gennaker.api.ops import router
from gennaker.cloud.aws.session import AwsSessions
from gennaker.errors import GennakerError, NotFound
from gennaker.spec.config import Config
from gennaker.stages.base import TaskContext
from gennaker.stages.readiness_gate import ReadinessGate
from gennaker.store.db import Database, open_database
from tests.ops.scene import run

Aws = Callable[..., Any]


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_database(f"sqlite:///{tmp_path / 'g.db'}")


@pytest.fixture
def api(db: Database, config: Config, sessions: AwsSessions) -> TestClient:
    app = FastAPI()
    app.state.db, app.state.config, app.state.aws = db, config, sessions

    @app.exception_handler(GennakerError)
    async def _err(_r: Request, exc: GennakerError) -> JSONResponse:  # the core app maps these the same way
        return JSONResponse({"message": str(exc)}, status_code=404 if isinstance(exc, NotFound) else 400)

    app.include_router(router)
    return TestClient(app)


def test_api_audit_inventory_and_diff(api: TestClient, aws: Aws) -> None:
    assert api.get("/api/audits/latest").status_code == 404
    ec2 = aws("ec2")
    ec2.allocate_address(Domain="vpc")
    report = api.post("/api/audits", json={"checks": ["ha.eip.*"]}).json()
    assert report["tool"] == "gennaker" and report["summary"]["by_status"]["FAIL"] == 1
    listed = api.get("/api/audits").json()
    assert [a["id"] for a in listed] == [report["audit_id"]]
    assert api.get(f"/api/audits/{report['audit_id']}").json()["findings"] == report["findings"]
    html = api.get("/api/audits/latest", params={"format": "html"})
    assert html.headers["content-type"].startswith("text/html") and 'id="score"' in html.text
    assert api.get("/api/audits/latest", params={"format": "sarif"}).json()["version"] == "2.1.0"

    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    snap = api.post("/api/inventory/snapshots", json={"types": ["ec2.address", "ec2.volume"]}).json()
    assert snap["resources"] == 3
    found = api.get("/api/inventory/resources", params={"type": "ec2.*", "q": vol}).json()
    assert [r["id"] for r in found] == [vol]
    d = api.get("/api/inventory/diff", params={"from": report["snapshot_id"], "to": snap["id"]}).json()
    # the audit's snapshot collected addresses only: the volume is not compared, not "added"
    assert [r["id"] for r in d["added"]] == [eip] and "ec2.volume/main/us-east-1" in d["not_compared"]
    assert len(api.get("/api/inventory/snapshots").json()) == 2


def _ctx(config: dict[str, Any], services: Any, application: str = "shop") -> TaskContext:
    gate = ReadinessGate()
    cfg = gate.Config.model_validate({"id": "gate", "type": "readiness_gate", **config})
    return TaskContext(
        "exec-1", "gate", "demo", application, {}, cfg, {}, {}, 1, time.time(), services, lambda _m: None
    )


def test_readiness_gate_fails_on_findings_and_scopes_to_application(
    db: Database, config: Config, sessions: AwsSessions, aws: Aws
) -> None:
    services = SimpleNamespace(config=config, aws=sessions, db=db)
    ec2 = aws("ec2")
    run(ec2, Application="shop")  # single instance, single AZ: ha.ec2.multi_az FAILs (high)
    run(ec2, Application="blog")
    gate = ReadinessGate()
    result = gate.audit(_ctx({"checks": ["ha.ec2.multi_az"], "fail_on": "high"}, services))
    assert result.status == "FAILED" and result.outputs["counts"]["FAIL"] == 2
    assert "ha.ec2.multi_az" in (result.message or "")
    scoped = gate.audit(_ctx({"checks": ["ha.ec2.multi_az"], "application_scoped": True, "fail_on": "high"}, services))
    assert scoped.outputs["counts"]["FAIL"] == 1  # only the shop workload
    lenient = gate.audit(_ctx({"checks": ["ha.ec2.multi_az"], "fail_on": "critical"}, services))
    assert lenient.status == "SUCCEEDED" and lenient.outputs["score"] == 0.0 and lenient.outputs["blocking"] == 0


def test_readiness_gate_fails_when_nothing_carries_the_application_tag(
    db: Database, config: Config, sessions: AwsSessions, aws: Aws
) -> None:
    services = SimpleNamespace(config=config, aws=sessions, db=db)
    run(aws("ec2"), Application="shop-web")  # close, but not the application's tag
    result = ReadinessGate().audit(
        _ctx({"checks": ["ha.ec2.multi_az"], "application_scoped": True, "fail_on": "critical"}, services)
    )
    assert result.status == "FAILED" and "tagged Application=shop" in (result.message or "")
    assert result.outputs["score"] is None and result.outputs["counts"]["FAIL"] == 0


def test_readiness_gate_scoping_keeps_account_level_findings(
    db: Database, config: Config, sessions: AwsSessions, aws: Aws
) -> None:
    services = SimpleNamespace(config=config, aws=sessions, db=db)
    run(aws("ec2"), Application="shop")
    checks = ["ha.ec2.multi_az", "golive.cost.budgets"]
    result = ReadinessGate().audit(
        _ctx({"checks": checks, "application_scoped": True, "fail_on": "critical"}, services)
    )
    # the shop workload and the account's missing budget both fail; the gate passes at critical
    assert result.status == "SUCCEEDED" and result.outputs["counts"]["FAIL"] == 2


def test_readiness_gate_score_na_fails_under_strict(
    db: Database, config: Config, sessions: AwsSessions, aws: Aws
) -> None:
    services = SimpleNamespace(config=config, aws=sessions, db=db)
    # Incident Manager is not simulated: every region UNKNOWN, nothing passes or fails
    lenient = ReadinessGate().audit(_ctx({"checks": ["mon.incident.response_plan"], "fail_on": "critical"}, services))
    assert lenient.status == "SUCCEEDED" and lenient.outputs["score"] is None and "n/a" in (lenient.message or "")
    strict = ReadinessGate().audit(
        _ctx({"checks": ["mon.incident.response_plan"], "fail_on": "critical", "strict": True}, services)
    )
    assert strict.status == "FAILED" and strict.outputs["score"] is None
