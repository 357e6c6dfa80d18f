"""The CLI end to end against simulated AWS: inventory commands, audit formats, exit codes,
suppressions (active and expired) and snapshot reuse with --max-age."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from gennaker.cli.ops import register
from gennaker.errors import ConfigError

Aws = Callable[..., Any]


@pytest.fixture
def cli(moto_endpoint: str, tmp_path: Path) -> Callable[..., Any]:
    cfg = tmp_path / "gennaker.yml"
    cfg.write_text(
        f"accounts:\n  main:\n    regions: [us-east-1]\n    endpoint_url: {moto_endpoint}\n"
        "    environment: prod\nops:\n  max_workers: 4\n"
    )
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    db = ["--db", str(tmp_path / "ops.db")]

    def invoke(*args: str) -> Any:
        # --db/--config belong to each command (only collect and audit talk to AWS and need --config).
        needs_aws = args[0] == "audit" or args[:2] == ("inventory", "collect")
        extra = [*db, "--config", str(cfg)] if needs_aws else db
        return runner.invoke(app, [*args, *extra], catch_exceptions=True, env={"COLUMNS": "200"})

    return invoke


def test_inventory_collect_search_export_diff(cli: Callable[..., Any], aws: Aws) -> None:
    ec2 = aws("ec2")
    ec2.create_volume(
        AvailabilityZone="us-east-1a",
        Size=8,
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Owner", "Value": "ops"}]}],
    )
    first = cli("inventory", "collect", "--types", "ec2.volume,ec2.address", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["by_type"] == {"ec2.volume": 1}
    found = json.loads(cli("inventory", "search", "--tag", "Owner=ops", "--json").output)
    assert [r["type"] for r in found] == ["ec2.volume"]
    exported = cli("inventory", "export", "--format", "csv").output
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["tags"] for r in rows] == ["Owner=ops"]
    alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
    assert cli("inventory", "collect", "--types", "ec2.volume,ec2.address").exit_code == 0
    d = json.loads(cli("inventory", "diff", "--json").output)
    assert [r["id"] for r in d["added"]] == [alloc] and d["removed"] == [] and d["changed"] == []
    shown = json.loads(cli("inventory", "show", "--json").output)
    assert {c["type"]: c["count"] for c in shown["counts"]} == {"ec2.volume": 1, "ec2.address": 1}


def test_audit_exit_codes_and_formats(cli: Callable[..., Any], aws: Aws, tmp_path: Path) -> None:
    aws("ec2").allocate_address(Domain="vpc")  # ha.eip.unassociated FAILs, severity low
    ok = cli("audit", "--checks", "ha.eip.*", "--format", "json", "--fail-on", "medium")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["summary"]["by_status"]["FAIL"] == 1
    blocked = cli("audit", "--checks", "ha.eip.*", "--format", "json", "--fail-on", "low")
    assert blocked.exit_code == 3
    out = tmp_path / "r.sarif"
    assert cli("audit", "--checks", "ha.eip.*", "--format", "sarif", "--output", str(out)).exit_code == 0
    assert json.loads(out.read_text())["version"] == "2.1.0"
    table = cli("audit", "--checks", "ha.eip.*")
    assert table.exit_code == 0 and "ha.eip.unassociated" in table.output and "not associated" in table.output


def test_unknown_counts_only_with_strict(cli: Callable[..., Any]) -> None:
    # Quotas outside 'vpc' do not exist in simulated AWS: the check is UNKNOWN (severity medium).
    assert cli("audit", "--checks", "ha.quota.headroom", "--fail-on", "medium", "--format", "json").exit_code == 0
    strict = cli("audit", "--checks", "ha.quota.headroom", "--fail-on", "medium", "--strict", "--format", "json")
    assert strict.exit_code == 3


def test_suppressions_apply_until_they_expire(cli: Callable[..., Any], aws: Aws, tmp_path: Path) -> None:
    alloc = aws("ec2").allocate_address(Domain="vpc")["AllocationId"]
    future = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    past = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    sup = tmp_path / "sup.yml"
    sup.write_text(
        f"suppressions:\n  - check: ha.eip.*\n    resource: '*{alloc}'\n"
        f"    reason: kept for DNS cut-over\n    expires: {future}\n"
    )
    args = [
        "audit",
        "--checks",
        "ha.eip.unassociated",
        "--format",
        "json",
        "--fail-on",
        "low",
        "--suppressions",
        str(sup),
    ]
    active = cli(*args)
    assert active.exit_code == 0, active.output
    finding = json.loads(active.stdout)["findings"][0]
    assert finding["status"] == "FAIL" and finding["suppressed"]["reason"] == "kept for DNS cut-over"
    sup.write_text(sup.read_text().replace(future, past))
    expired = cli(*args)
    assert expired.exit_code == 3
    body = json.loads(expired.stdout)
    assert body["expired_suppressions"][0]["expires"] == past and "suppressed" not in body["findings"][0]


def test_max_age_reuses_snapshot(cli: Callable[..., Any], aws: Aws) -> None:
    first = json.loads(cli("audit", "--checks", "ha.eip.*", "--format", "json").stdout)
    aws("ec2").allocate_address(Domain="vpc")  # not seen by a reused snapshot
    reused = json.loads(cli("audit", "--checks", "ha.eip.*", "--format", "json", "--max-age", "10m").stdout)
    assert reused["snapshot_id"] == first["snapshot_id"]
    assert reused["summary"]["by_status"]["FAIL"] == 0
    fresh = json.loads(cli("audit", "--checks", "ha.eip.*", "--format", "json").stdout)
    assert fresh["snapshot_id"] != first["snapshot_id"] and fresh["summary"]["by_status"]["FAIL"] == 1


def test_max_age_does_not_reuse_a_snapshot_of_other_regions(cli: Callable[..., Any]) -> None:
    first = json.loads(cli("audit", "--checks", "ha.eip.*", "--format", "json").stdout)
    other = json.loads(
        cli("audit", "--checks", "ha.eip.*", "--format", "json", "--regions", "eu-west-1", "--max-age", "10m").stdout
    )
    assert other["snapshot_id"] != first["snapshot_id"]
    assert other["scope"]["regions"] == ["eu-west-1"]


def test_bad_input_raises_clear_errors(cli: Callable[..., Any], tmp_path: Path) -> None:
    res = cli("audit", "--checks", "nope.*")
    assert isinstance(res.exception, ConfigError) and "no check matches nope.*" in str(res.exception)
    res = cli("audit", "--fail-on", "urgent")
    assert isinstance(res.exception, ConfigError) and "--fail-on" in str(res.exception)
    bad = tmp_path / "bad.yml"
    bad.write_text("suppressions:\n  - check: x\n    expires: 2025-01-01\n")
    res = cli("audit", "--suppressions", str(bad))
    assert isinstance(res.exception, ConfigError) and "reason" in str(res.exception)
    # each of these used to end in a traceback (ValueError, IsADirectoryError, UnicodeDecodeError,
    # FileNotFoundError after the whole audit had run)
    for max_age in ("10x", "nan", "inf", "-1", "-5m"):  # a usage error, refused before collecting
        res = cli("audit", "--max-age", max_age)
        assert res.exit_code == 2 and "--max-age" in res.output, (max_age, res.output)
    cases = {
        ("audit", "--regions", "nope-1"): "is not a region",  # used to audit nothing there, and pass
        ("inventory", "collect", "--regions", "us east"): "is not a region",
        ("audit", "--suppressions", str(tmp_path)): "is not a file",
        ("audit", "--output", str(tmp_path / "missing" / "r.html"), "--format", "html"): "does not exist",
        ("audit", "--output", str(tmp_path)): "is a directory",
        ("inventory", "export", "--output", str(tmp_path / "missing" / "a.csv")): "does not exist",
    }
    latin = tmp_path / "latin1.yml"
    latin.write_bytes("suppressions: []  # caf\xe9\n".encode("latin-1"))
    cases[("audit", "--suppressions", str(latin))] = "not UTF-8"
    for args, says in cases.items():
        res = cli(*args)
        assert isinstance(res.exception, ConfigError) and says in str(res.exception), (args, res.exception)
    listed = cli("inventory", "snapshots", "--json")
    assert listed.exit_code != 0 or json.loads(listed.stdout) == []  # nothing was collected for nothing


def test_table_output_file_and_expired_suppression_once(cli: Callable[..., Any], tmp_path: Path) -> None:
    sup = tmp_path / "sup.yml"
    sup.write_text("suppressions:\n  - check: ha.eip.*\n    reason: old cut-over\n    expires: 2020-01-01\n")
    res = cli("audit", "--checks", "ha.eip.*", "--suppressions", str(sup))
    assert res.exit_code == 0 and res.output.count("old cut-over") == 1, res.output
    report = tmp_path / "r.txt"
    res = cli("audit", "--checks", "ha.eip.*", "--format", "table", "--output", str(report))
    assert res.exit_code == 0, res.output
    assert report.read_text().startswith("Operations readiness  score")  # the table, as text, not JSON


def test_markup_in_aws_names_is_printed_as_text(cli: Callable[..., Any], aws: Aws) -> None:
    """Anyone who may tag a resource chooses these strings: '[/red]' is text, not Rich markup."""
    aws("ec2").create_volume(
        AvailabilityZone="us-east-1a",
        Size=8,
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "[/red]"}]}],
    )
    assert cli("inventory", "collect", "--types", "ec2.volume").exit_code == 0
    for args in (("inventory", "search"), ("inventory", "show"), ("inventory", "snapshots")):
        res = cli(*args)
        assert res.exit_code == 0 and res.exception is None, (args, res.output, res.exception)
    assert "[/red]" in cli("inventory", "search").output
