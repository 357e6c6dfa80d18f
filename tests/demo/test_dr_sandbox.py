"""The sandbox keeps a DR site for ``shop`` in us-west-2 (gennaker.sandbox.dr): ``gennaker dr drill
shop`` recovers it there. Each scenario runs through the dr_drill stage's in-process runner (the
CLI's path) against the sandbox's simulated AWS, and production is left as it was."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("moto", reason="the sandbox needs moto (gennaker[sandbox])")

from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops.dr.service import drill_config, run_in_process
from gennaker.sandbox import Sandbox, start_sandbox
from gennaker.sandbox.dr import DOMAIN
from gennaker.sandbox.server import ACCOUNT, DR_REGION, REGIONS
from gennaker.spec.config import config_from_text
from gennaker.store.db import open_database


@pytest.fixture
def box(moto_endpoint: str) -> Iterator[Sandbox]:
    sandbox = start_sandbox()  # moto keeps one state per process: moto_endpoint reset it first
    try:
        yield sandbox
    finally:
        sandbox.stop()


def drill(box: Sandbox, tmp_path: Path, scenario: str) -> dict[str, Any]:
    config = config_from_text(box.config_text)
    services = SimpleNamespace(
        config=config, aws=AwsSessions(config), db=open_database(f"sqlite:///{tmp_path / 'g.db'}")
    )
    cfg = drill_config(
        account=ACCOUNT,
        application="shop",
        from_region=REGIONS[0],
        to_region=DR_REGION,
        scenario=scenario,
        rto="30m",
        rpo="1h",
        dns_wait=1,
    )
    return run_in_process(services, cfg, sleep=lambda s: time.sleep(min(s, 0.2)))


def steps(row: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["status"] for s in row["report"]["steps"]}


def test_the_sandbox_config_names_the_dr_region(box: Sandbox) -> None:
    config = config_from_text(box.config_text)
    assert config.accounts[ACCOUNT].dr_region == DR_REGION
    assert box.dr is not None and box.dr.region == DR_REGION
    assert f"failover:       {DOMAIN}" in box.config_text
    # shop's volume with a snapshot has its copy; the copy names its source (the audit's EBS check)
    assert len(box.dr.snapshot_copies) == (1 if box.audit_seeded else 0)


def test_region_loss_drill_recovers_shop_in_the_sandbox(box: Sandbox, tmp_path: Path) -> None:
    sessions = AwsSessions(config_from_text(box.config_text))
    primary_groups = sessions.client(ACCOUNT, REGIONS[0], "autoscaling").describe_auto_scaling_groups()
    row = drill(box, tmp_path, "region_loss")
    assert row["status"] == "SUCCEEDED", row["report"]
    assert set(steps(row).values()) == {"PASS"}, steps(row)  # the sandbox's volume restores and attaches
    assert row["report"]["missing"] == []
    assert 0 < row["rto_s"] < 60 and row["rpo_s"] is not None and row["report"]["met_objectives"] is True
    dns = next(s for s in row["report"]["steps"] if s["name"] == "dns_secondary")
    assert box.dr is not None and box.dr.load_balancer_dns in dns["detail"]  # SECONDARY: the standing DR ALB
    after = sessions.client(ACCOUNT, REGIONS[0], "autoscaling").describe_auto_scaling_groups()
    names = lambda r: sorted(g["AutoScalingGroupName"] for g in r["AutoScalingGroups"])  # noqa: E731
    assert names(after) == names(primary_groups) == ["shop-web-v001"]  # production untouched
    left = sessions.client(ACCOUNT, DR_REGION, "autoscaling").describe_auto_scaling_groups()
    assert not [g for g in left["AutoScalingGroups"] if "drill" in g["AutoScalingGroupName"]]  # torn down


def test_failover_dns_drill_finds_the_sandbox_records(box: Sandbox, tmp_path: Path) -> None:
    row = drill(box, tmp_path, "failover_dns")
    assert row["status"] == "SUCCEEDED", row["report"]
    got = steps(row)
    assert got["dns_config"] == got["secondary_alive"] == got["invert_primary"] == "PASS"  # warm standby alive
    # simulated Route 53 evaluates no health check and answers no TestDNSAnswer: UNKNOWN, never PASS
    assert got["primary_unhealthy"] == got["dns_answer"] == "UNKNOWN"


def test_gennaker_dr_drill_shop_in_the_sandbox(box: Sandbox, tmp_path: Path) -> None:
    """The command as the issue writes it: no options, the sandbox config's one account and dr_region."""
    from typer.testing import CliRunner

    from gennaker.cli import app

    (tmp_path / "gennaker.yml").write_text(box.config_text)
    env = {"GENNAKER_CONFIG": str(tmp_path / "gennaker.yml"), "GENNAKER_DB": f"sqlite:///{tmp_path / 'cli.db'}"}
    r = CliRunner().invoke(app, ["dr", "drill", "shop", "--rto", "30m", "--rpo", "1h"], env=env)
    assert r.exit_code == 0, r.output
    assert "region_loss of shop, us-east-1 -> us-west-2" in r.output and "status SUCCEEDED" in r.output
    assert "missing:" not in r.output
    listed = CliRunner().invoke(app, ["dr", "drills", "shop"], env=env)
    assert listed.exit_code == 0 and "region_loss" in listed.output, listed.output
