"""Hostile or careless input to the drill's API and command: a 4xx or one line and a non-zero exit,
checked before any drill row is written (a region the account does not have, a bad name)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gennaker.api.app import create_app
from gennaker.cli import run as gennaker
from gennaker.ops.dr import store
from gennaker.runtime import build_runtime
from gennaker.sandbox.server import config_text
from gennaker.spec.config import config_from_text
from tests.conftest import admin_client

BODY = {"account": "sandbox", "from_region": "us-east-1", "to_region": "us-west-2"}


def test_api_refuses_regions_the_account_lacks(tmp_path: Path) -> None:
    rt = build_runtime(str(tmp_path / "g.db"), config=config_from_text(config_text("http://127.0.0.1:1")))
    client = admin_client(create_app(rt), raise_server_exceptions=False)
    for change in ({"to_region": "eu-north-1"}, {"from_region": "ap-south-1"}, {"to_region": "mars-1"}):
        r = client.post("/api/applications/shop/dr/drills", json={**BODY, **change})
        assert r.status_code == 422, r.text
        assert "region" in r.json()["message"], r.text
    with rt.db.read() as conn:
        assert store.recent_drills(conn) == []


def test_cli_refuses_a_region_the_account_lacks_in_one_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    cfg = config_from_text(config_text("http://127.0.0.1:1"))
    cfg_file = tmp_path / "gennaker.yml"
    cfg_file.write_text(json.dumps(cfg.model_dump(exclude_none=True)))
    db = f"sqlite:///{tmp_path / 'g.db'}"
    for args in (["--to-region", "eu-north-1"], ["--to-region", "mars-1"]):
        capfd.readouterr()
        code = gennaker(["--db", db, "--config", str(cfg_file), "dr", "drill", "shop", *args])
        err = capfd.readouterr().err
        assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert "region" in err
    rt = build_runtime(db, config=cfg)
    with rt.db.read() as conn:
        assert store.recent_drills(conn) == []  # nothing started, nothing recorded
