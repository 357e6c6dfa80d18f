"""Report formats: JSON against the shipped schema, SARIF against a 2.1.0 subset schema, JUnit parsed,
HTML opened in Chromium. One audit over a small mixed scene feeds all of them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gennaker.ops.reports import audit_schema, render
from gennaker.ops.reports.sarif import render_sarif
from tests.ops.scene import run

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def report(aws: Callable[..., Any], audit: Callable[..., Any]) -> dict[str, Any]:
    ec2 = aws("ec2")
    run(ec2, Owner="ops", Environment="prod", Application="shop")
    ec2.allocate_address(Domain="vpc")
    aws("s3").create_bucket(Bucket="report-bucket")
    return dict(audit("ha.eip.*", "dr.s3.versioning", "golive.assets.required_tags", "ha.quota.headroom").to_json())


def test_json_matches_shipped_schema(report: dict[str, Any]) -> None:
    schema = audit_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(report, schema, format_checker=jsonschema.FormatChecker())
    parsed = json.loads(render(report, "json"))
    assert parsed["tool"] == "gennaker" and parsed["scope"] == {
        "accounts": ["main"],
        "regions": ["us-east-1", "us-west-2"],
    }
    eip = next(f for f in parsed["findings"] if f["check_id"] == "ha.eip.unassociated")
    assert eip["resource_id"].startswith("arn:aws:ec2:us-east-1:123456789012:elastic-ip/eipalloc-")
    assert eip["status"] == "FAIL" and eip["remediation"]["cli"].startswith("aws ec2 release-address")
    assert parsed["summary"]["by_status"]["UNKNOWN"] == 2  # quotas: one per region


def test_json_schema_rejects_a_broken_report(report: dict[str, Any]) -> None:
    report["findings"][0]["status"] = "MAYBE"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(report, audit_schema())


def test_sarif_matches_schema_subset(report: dict[str, Any]) -> None:
    """No network at test time: validated against tests/ops/data/sarif-2.1.0-subset.schema.json, the
    constraints of the OASIS schema for every SARIF object Gennaker emits."""
    schema = json.loads((Path(__file__).parent / "data" / "sarif-2.1.0-subset.schema.json").read_text())
    sarif = json.loads(render(report, "sarif"))
    jsonschema.validate(sarif, schema, format_checker=jsonschema.FormatChecker())
    run0 = sarif["runs"][0]
    rules = [r["id"] for r in run0["tool"]["driver"]["rules"]]
    for res in run0["results"]:
        assert rules[res["ruleIndex"]] == res["ruleId"]
    levels = {(r["ruleId"], r["kind"], r["level"]) for r in run0["results"]}
    assert ("ha.eip.unassociated", "fail", "note") in levels  # severity low -> note
    assert ("ha.quota.headroom", "review", "none") in levels  # UNKNOWN -> review
    assert not any(r["properties"]["status"] == "PASS" for r in run0["results"])
    assert render_sarif(report)["version"] == "2.1.0"


def test_junit_parses_with_counts(report: dict[str, Any]) -> None:
    root = ET.fromstring(render(report, "junit"))
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == len(report["findings"]) == int(root.get("tests", "0"))
    failures = [c for c in cases if c.find("failure") is not None]
    assert int(root.get("failures", "0")) == len(failures) == report["summary"]["by_status"]["FAIL"]
    assert {c.get("classname") for c in failures} >= {"ha.eip.unassociated", "dr.s3.versioning"}
    assert int(root.get("errors", "0")) == report["summary"]["by_status"]["UNKNOWN"]


@pytest.mark.browser
def test_html_in_chromium_shows_score_and_filters(report: dict[str, Any], tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed")
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "audit.html"
    page_file.write_text(render(report, "html"))
    assert "http://" not in page_file.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")
    failing = next(f for f in report["findings"] if f["check_id"] == "dr.s3.versioning")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            assert page.inner_text("#score") == f"{report['summary']['score']:g}"
            assert page.locator("#pillar-chart rect").count() == 8  # a track and a bar per pillar
            row = page.locator("#findings tbody tr", has_text=failing["resource_id"]).first
            assert row.is_visible() and "versioning Disabled" in row.inner_text()
            page.select_option("select[name=status]", "PASS")
            visible = page.locator("#findings tbody tr:not([hidden])")
            assert visible.count() == report["summary"]["by_status"]["PASS"]
            assert not row.is_visible()
        finally:
            browser.close()


def test_score_na_renders_and_validates(report: dict[str, Any]) -> None:
    import copy
    import io

    from rich.console import Console

    from gennaker.ops.reports.html import render_html
    from gennaker.ops.reports.table import print_table

    na = copy.deepcopy(report)
    na["summary"]["score"] = None
    for p in na["summary"]["by_pillar"].values():
        p["score"] = None
    jsonschema.validate(na, audit_schema())  # null is the schema's "nothing to score"
    buf = io.StringIO()
    print_table(na, Console(file=buf, width=200))
    assert "score n/a/100" in buf.getvalue()
    assert 'id="score" style="color:#5b6775">n/a</span>' in render_html(na)
