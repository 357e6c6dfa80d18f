"""``gennaker dr drill|drills`` and ``/api/dr``: a drill run by the CLI (in-process, the stage's own
tasks), listed with its trend, read and started through the API; bad input is one line / a 4xx."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gennaker.api.app import create_app
from gennaker.cli import run as gennaker
from gennaker.runtime import build_runtime
from gennaker.spec.config import Config
from tests.conftest import admin_client
from tests.dr.seed import DrWorld


def _cli(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capfd.readouterr()
    code = gennaker(list(args))
    captured = capfd.readouterr()
    return code, captured.out, captured.err


def test_cli_drill_drills_and_the_api(
    world: DrWorld, config: Config, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cfg_file = tmp_path / "gennaker.yml"
    cfg_file.write_text(json.dumps(config.model_dump(exclude_none=True)))
    db = f"sqlite:///{tmp_path / 'g.db'}"
    base = ["--db", db, "--config", str(cfg_file), "dr"]
    code, out, err = _cli(capfd, *base, "drill", "shop", "--rto", "30m", "--rpo", "1h", "--format", "json")
    assert code == 0, err
    row: dict[str, Any] = json.loads(out)
    assert row["status"] == "SUCCEEDED" and row["from_region"] == "us-east-1" and row["to_region"] == "us-west-2"
    assert row["rto_s"] > 0

    code, out, err = _cli(capfd, *base, "drill", "shop", "--scenario", "restore_data")
    assert code == 0, err
    assert "verify_data" in out and "UNKNOWN" in out and "RTO " in out

    code, out, err = _cli(capfd, *base, "drills", "shop")
    assert code == 0, err
    assert "region_loss" in out and "restore_data" in out and "first" in out

    code, out, err = _cli(capfd, *base, "drill", "shop", "--keep", "--format", "json")
    assert code == 0, err
    kept = json.loads(out)
    assert kept["report"]["kept"] is True and kept["report"]["teardown"] == []
    code, out, err = _cli(capfd, *base, "teardown", kept["id"])
    assert code == 0, err
    assert "destroyed server group shop-drill" in out and "deleted volume" in out
    code, out, err = _cli(capfd, *base, "teardown", kept["id"])  # again: nothing left, no error
    assert code == 0 and "nothing tagged with this drill is left" in out, (out, err)

    code, out, err = _cli(capfd, *base, "drill", "shop", "--rto", "soon")
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err

    rt = build_runtime(db, config=config)
    client = admin_client(create_app(rt))
    listed = client.get("/api/dr/drills", params={"application": "shop"})
    assert listed.status_code == 200
    assert [d["scenario"] for d in listed.json()] == ["region_loss", "restore_data", "region_loss"]
    one = client.get(f"/api/dr/drills/{row['id']}")
    assert one.status_code == 200 and one.json()["report"]["steps"][0]["name"] == "discover"
    assert client.get("/api/dr/drills/nope").status_code == 404
    body = {"account": "sandbox", "from_region": "us-east-1", "to_region": "us-west-2", "scenario": "failover_dns"}
    started = client.post("/api/applications/shop/dr/drills", json=body)
    assert started.status_code == 202, started.text
    assert client.post("/api/applications/shop/dr/drills", json={**body, "scenario": "flood"}).status_code == 422
    bad = client.post("/api/applications/shop/dr/drills", json={**body, "rto": "soon"})
    assert bad.status_code == 422 and "objectives.rto" in bad.text
