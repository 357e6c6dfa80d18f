"""The organization-wide audit across workers: a simulated organization (moto over HTTP: a management
account and member accounts reached by assume role), its collection fanned out as durable jobs.

The report (findings, score) equals a single-process audit of the same accounts: in-process on
SQLite, and on PostgreSQL with two ``gennaker worker`` processes, one of them SIGKILLed mid-audit."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from sqlalchemy import select

from gennaker.cloud.aws.session import AwsSessions
from gennaker.engine.job_tables import job_attempts
from gennaker.ops.audit import AuditResult
from gennaker.ops.fanout import audit_organization, finish_run, run_state, start_run, wait_run
from gennaker.ops.fanout_tables import ops_audit_parts
from gennaker.ops.service import audit_and_store
from gennaker.ops.settings import OpsSettings, ops_settings
from gennaker.spec.config import Config
from gennaker.store.db import Database, open_database
from gennaker.store.tables import workers
from tests.core.conftest import wait_for
from tests.ha.conftest import pg_url  # noqa: F401  (fixture)

MEMBERS = 2
CHECKS = ["ha.eip.unassociated", "dr.s3.versioning", "golive.account.organization"]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1"]
PARTS = (MEMBERS + 1) * (len(REGIONS) + 1)  # per account: each region and the global types


def _org(endpoint: str) -> list[str]:
    """An organization of MEMBERS accounts, each with an idle EIP, a volume and a bucket of its own."""
    org = boto3.client("organizations", region_name="us-east-1", endpoint_url=endpoint)
    org.create_organization(FeatureSet="ALL")
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=endpoint)
    members = []
    for i in range(MEMBERS):
        aid = org.create_account(Email=f"m{i}@example.com", AccountName=f"m{i}")["CreateAccountStatus"]["AccountId"]
        creds = sts.assume_role(
            RoleArn=f"arn:aws:iam::{aid}:role/OrganizationAccountAccessRole", RoleSessionName="setup"
        )["Credentials"]
        keys = {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        }
        ec2 = boto3.client("ec2", region_name="us-west-2", endpoint_url=endpoint, **keys)
        ec2.allocate_address(Domain="vpc")
        boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint, **keys).create_bucket(Bucket=f"b-{aid}")
        members.append(aid)
    boto3.client("ec2", region_name="us-east-1", endpoint_url=endpoint).allocate_address(Domain="vpc")
    return members


def _config(endpoint: str) -> dict[str, Any]:
    return {
        "accounts": {
            "main": {
                "regions": REGIONS,
                "endpoint_url": endpoint,
                "environment": "prod",
                "max_attempts": 2,
                "aws_access_key_id": "testing",
                "aws_secret_access_key": "testing",
            }
        },
        "ops": {"organization": {"management_account": "main"}},
    }


@pytest.fixture
def org_config(moto_endpoint: str, tmp_path: Path) -> tuple[Path, Callable[[], tuple[AwsSessions, OpsSettings]]]:
    _org(moto_endpoint)
    raw = _config(moto_endpoint)
    path = tmp_path / "gennaker.yml"
    path.write_text(yaml.safe_dump(raw))

    def fresh() -> tuple[AwsSessions, OpsSettings]:  # discovery adds accounts to the config: one each
        cfg = Config.model_validate(raw)
        return AwsSessions(cfg), ops_settings(cfg.ops)

    return path, fresh


def _same(a: AuditResult, b: AuditResult) -> None:
    assert [f.to_dict() for f in a.findings] == [f.to_dict() for f in b.findings]
    assert a.summary == b.summary
    assert sorted(a.snapshot.accounts) == sorted(b.snapshot.accounts)
    assert [r.key for r in a.snapshot.resources] == [r.key for r in b.snapshot.resources]
    assert len({r.key for r in b.snapshot.resources}) == len(b.snapshot.resources)  # no duplicates


def _single(db: Database, fresh: Callable[[], tuple[AwsSessions, OpsSettings]]) -> AuditResult:
    sessions, settings = fresh()
    result = audit_and_store(db, sessions, settings, checks=CHECKS)
    assert len(result.snapshot.accounts) == MEMBERS + 1
    assert any(f.status == "FAIL" for f in result.findings)
    return result


def test_in_process_on_sqlite_matches_a_single_process_audit(org_config: Any, tmp_path: Path) -> None:
    _, fresh = org_config
    db = open_database(f"sqlite:///{tmp_path / 'g.db'}")
    single = _single(db, fresh)
    sessions, settings = fresh()
    seen: list[tuple[int, int]] = []
    fanned = audit_organization(
        db, sessions, settings, checks=CHECKS, workers=2, progress=lambda d, t: seen.append((d, t))
    )
    _same(single, fanned)
    assert seen[-1] == (PARTS, PARTS)
    assert fanned.snapshot.stats["parts"] == PARTS
    db.dispose()


def _spawn(db_url: str, config: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GENNAKER_DB": db_url,
        "GENNAKER_CONFIG": str(config),
        "GENNAKER_JOB_LEASE_SECONDS": "3",
        "GENNAKER_JOB_POLL_SECONDS": "0.1",
        "GENNAKER_JOB_THREADS": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "gennaker.cli", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _attempts(db: Database) -> list[Any]:
    with db.read() as conn:
        return list(conn.execute(select(job_attempts)).all())


def _workers(db: Database) -> list[Any]:
    with db.read() as conn:
        return list(conn.execute(select(workers)).all())


def _pid(worker_id: str) -> int:
    return int(worker_id.split("-")[-2])  # host-pid-suffix (engine/worker.py)


def test_two_workers_on_postgres_one_killed_mid_audit(org_config: Any, pg_url: str) -> None:  # noqa: F811
    path, fresh = org_config
    db = open_database(pg_url)
    single = _single(db, fresh)
    sessions, settings = fresh()
    procs = [_spawn(pg_url, path) for _ in range(2)]
    try:
        wait_for(lambda: len(_workers(db)) == 2, timeout=30)
        run_id = start_run(db, sessions, settings, checks=CHECKS, source="test")
        # both workers take parts; then the one holding a part (an attempt open) is SIGKILLed
        wait_for(lambda: len({a.worker_id for a in _attempts(db)}) == 2, timeout=30)
        by_pid = {p.pid: p for p in procs}
        holding = wait_for(
            lambda: [a.worker_id for a in _attempts(db) if a.finished_at is None and _pid(a.worker_id) in by_pid],
            timeout=30,
        )
        doomed = holding[0]
        by_pid[_pid(doomed)].kill()
        by_pid[_pid(doomed)].wait(10)
        assert not run_state(db, run_id).complete
        wait_run(db, run_id, timeout=60)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(20)
    fanned = finish_run(db, settings, run_id)
    _same(single, fanned)
    attempts = _attempts(db)
    assert any(a.worker_id == doomed and a.outcome == "abandoned" for a in attempts)  # re-run after its lease
    with db.read() as conn:
        parts = conn.execute(select(ops_audit_parts.c.part_key, ops_audit_parts.c.worker_id)).all()
    assert len(parts) == len({p.part_key for p in parts}) == PARTS
    # finishing again evaluates the same parts and stores nothing twice
    again = finish_run(db, settings, run_id)
    assert again.id == fanned.id and [f.to_dict() for f in again.findings] == [f.to_dict() for f in fanned.findings]
    db.dispose()


def test_readiness_gate_with_organization_polls_the_run_its_workers_collect(org_config: Any, tmp_path: Path) -> None:
    from gennaker.engine.jobs import JobRunner
    from gennaker.ops.fanout import job_handlers
    from gennaker.stages.base import TaskContext
    from gennaker.stages.readiness_gate import ReadinessGate, ReadinessGateConfig
    from gennaker.stages.services import Services

    _, fresh = org_config
    db = open_database(f"sqlite:///{tmp_path / 'g.db'}")
    single = _single(db, fresh)
    sessions, _ = fresh()
    services = Services(config=sessions.config, db=db)
    gate = ReadinessGate()

    def poll() -> Any:
        ctx = TaskContext(
            "exec-1",
            "gate",
            "p",
            "shop",
            {},
            ReadinessGateConfig(id="gate", type="readiness_gate", organization=True, checks=CHECKS, fail_on="critical"),
            {},
            {},
            1,
            0.0,
            services,
            lambda _: None,
        )
        return gate.audit(ctx)

    first = poll()
    assert first.status == "RUNNING" and f"0/{PARTS} parts" in (first.message or "")
    assert JobRunner(db, job_handlers(sessions.config), "w").run_due() == PARTS
    done = poll()
    assert done.status == "SUCCEEDED", done.message
    assert done.outputs["score"] == single.summary["score"]
    assert poll().outputs["audit_id"] == done.outputs["audit_id"]  # the same run, stored once
    db.dispose()


def test_cli_audit_organization_reports_like_the_single_process_audit(org_config: Any, tmp_path: Path) -> None:
    import json

    import typer
    from typer.testing import CliRunner

    from gennaker.cli.ops import register

    path, _ = org_config
    app = typer.Typer()
    register(app)
    common = ["--config", str(path), "--db", str(tmp_path / "cli.db"), "--format", "json"]
    checks = ["--checks", ",".join(CHECKS)]
    single = CliRunner().invoke(app, ["audit", *checks, *common], catch_exceptions=False)
    fanned = CliRunner().invoke(app, ["audit", "--organization", "--workers", "3", *checks, *common])
    assert single.exit_code == 0 and fanned.exit_code == 0, fanned.output
    a, b = json.loads(single.stdout), json.loads(fanned.stdout)
    assert a["findings"] == b["findings"] and a["summary"] == b["summary"]
    assert f"audit: {PARTS}/{PARTS} parts collected" in fanned.stderr  # progress when not on a terminal
