"""``ops.views.latest_for_application``: findings narrowed by the snapshot's tags, or the whole
audit (said so) when nothing carries the application's tags."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from gennaker.ops import store
from gennaker.ops.model import Resource, Snapshot
from gennaker.ops.views import latest_for_application
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import Config


def finding(check: str, status: str, ref: str, pillar: str = "ha", severity: str = "high") -> dict[str, Any]:
    return {
        "check_id": check,
        "status": status,
        "severity": severity,
        "pillar": pillar,
        "account": "prod",
        "region": "us-east-1",
        "resource_type": "x",
        "resource_id": ref,
        "message": f"{check} {status}",
        "remediation": {"text": "fix it", "cli": ""},
    }


def store_audit(rt: Runtime, resources: list[Resource], findings: list[dict[str, Any]]) -> None:
    now = dt.datetime.now(dt.UTC)
    snap = Snapshot("snap-1", now, {}, resources, [], ["x"], {})
    store.save_snapshot(rt.db, snap)
    store.save_audit(
        rt.db,
        {
            "audit_id": "audit-1",
            "generated_at": now.isoformat(),
            "snapshot_id": snap.id,
            "scope": {"accounts": ["prod"]},
            "summary": {"score": 42.0},
            "findings": findings,
        },
    )


def test_narrowed_to_the_application_tags(tmp_path: Path) -> None:
    rt = build_runtime(str(tmp_path / "g.db"), config=Config())
    assert latest_for_application(rt, "shop") is None
    store_audit(
        rt,
        [
            Resource(
                "autoscaling.group",
                "prod",
                "us-east-1",
                "shop-web-v003",
                "arn:asg/shop-web-v003",
                tags={"gennaker:application": "shop"},
            ),
            Resource("ec2.instance", "prod", "us-east-1", "i-1", tags={"Application": "shop-batch"}),
            Resource("ec2.instance", "prod", "us-east-1", "i-2", tags={"Application": "shopping"}),
        ],
        [
            finding("a", "FAIL", "arn:asg/shop-web-v003"),
            finding("b", "PASS", "i-1"),
            finding("c", "FAIL", "Application=shop-batch", severity="critical"),
            finding("d", "FAIL", "i-2"),  # another application ("shopping" is not "shop")
            finding("e", "PASS", "arn:asg/shop-web-v003", pillar="dr"),
        ],
    )
    view = latest_for_application(rt, "shop")
    assert view is not None and view["narrowed"] is True
    assert [f["check_id"] for f in view["failing"]] == ["c", "a"]  # most severe first
    assert view["total"] == 4 and "2 resources tagged with shop" in view["note"]
    pillars = {p["pillar"]: p for p in view["pillars"]}
    assert pillars["dr"]["score"] == 100.0 and pillars["ha"]["FAIL"] == 2 and pillars["ha"]["PASS"] == 1
    # Severity-weighted PASS share of the four: b, e pass (high 5 + 5); a fails (high 5), c (critical 10).
    assert view["score"] == 40.0 and view["audit_score"] == 42.0


def test_whole_audit_when_nothing_is_tagged(tmp_path: Path) -> None:
    rt = build_runtime(str(tmp_path / "g.db"), config=Config())
    store_audit(
        rt,
        [Resource("ec2.instance", "prod", "us-east-1", "i-9", tags={"Owner": "ops"})],
        [finding("a", "FAIL", "i-9"), finding("b", "PASS", "i-8")],
    )
    view = latest_for_application(rt, "shop")
    assert view is not None and view["narrowed"] is False
    assert "whole audit" in view["note"] and view["total"] == 2
    assert [f["check_id"] for f in view["failing"]] == ["a"]


def test_an_application_viewer_is_not_shown_the_whole_audit(tmp_path: Path) -> None:
    """When nothing can be narrowed, the whole audit (other applications' findings) is for global viewers."""
    from fastapi.testclient import TestClient

    from gennaker.api.app import create_app
    from gennaker.web import store as web_store

    from .conftest import auth_config

    rt = build_runtime(str(tmp_path / "g.db"), config=auth_config())
    store_audit(
        rt,
        [Resource("ec2.instance", "prod", "us-east-1", "i-9", tags={"Owner": "ops"})],
        [finding("a", "FAIL", "i-9"), finding("b", "PASS", "i-8")],
    )
    vic = {"Authorization": "Bearer " + web_store.create_token(rt.db, "v", "vic", ["shop:viewer"], "t")["token"]}
    alice = {"Authorization": "Bearer " + web_store.create_token(rt.db, "a", "alice", ["admin"], "t")["token"]}
    with TestClient(create_app(rt), base_url="http://127.0.0.1") as client:
        page = client.get("/applications/shop/readiness", headers=vic)
        assert page.status_code == 200 and "only viewers of every application" in page.text
        assert "a FAIL" not in page.text and "audit-1" in page.text
        assert client.get("/api/applications/shop/readiness", headers=vic).status_code == 403
        whole = client.get("/applications/shop/readiness", headers=alice)
        assert "a FAIL" in whole.text and "whole audit" in whole.text
        assert client.get("/api/applications/shop/readiness", headers=alice).json()["audit"]["total"] == 2
    rt.db.dispose()
