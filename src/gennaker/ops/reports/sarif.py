"""SARIF 2.1.0 for code-scanning tools: one rule per check, one result per FAIL or UNKNOWN finding.

Cloud resources have no file, so results carry logical locations (the resource ARN or id). UNKNOWN
becomes a ``review`` result (level none); suppressed findings carry an external suppression.
"""

from __future__ import annotations

from typing import Any

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}


def _rule(check: dict[str, Any]) -> dict[str, Any]:
    rem = check["remediation"]
    return {
        "id": check["id"],
        "name": check["id"].replace(".", "_"),
        "shortDescription": {"text": check["title"]},
        "fullDescription": {"text": check["rationale"]},
        "help": {"text": f"{rem['text']}\nAWS CLI: {rem['cli']}", "markdown": f"{rem['text']}\n\n`{rem['cli']}`"},
        "defaultConfiguration": {"level": LEVEL[check["severity"]]},
        "properties": {
            "pillar": check["pillar"],
            "severity": check["severity"],
            "source": check["source"],
            "tags": [check["pillar"], "operations-readiness"],
        },
    }


def _result(f: dict[str, Any], index: dict[str, int]) -> dict[str, Any]:
    failed = f["status"] == "FAIL"
    out: dict[str, Any] = {
        "ruleId": f["check_id"],
        "kind": "fail" if failed else "review",
        "level": LEVEL[f["severity"]] if failed else "none",
        "message": {"text": f"{f['resource_id']}: {f['message']}"},
        "locations": [
            {
                "logicalLocations": [
                    {
                        "name": f["resource_id"].rsplit("/", 1)[-1],
                        "kind": "resource",
                        "fullyQualifiedName": f["resource_id"],
                    }
                ]
            }
        ],
        "partialFingerprints": {"gennakerFinding/v1": f"{f['check_id']}|{f['resource_id']}"},
        "properties": {
            "account": f["account"],
            "region": f["region"],
            "resourceType": f["resource_type"],
            "status": f["status"],
        },
    }
    if f["check_id"] in index:
        out["ruleIndex"] = index[f["check_id"]]
    if f.get("suppressed"):
        out["suppressions"] = [{"kind": "external", "justification": f["suppressed"]["reason"]}]
    return out


def render_sarif(report: dict[str, Any]) -> dict[str, Any]:
    checks = report.get("checks", [])
    index = {c["id"]: i for i, c in enumerate(checks)}
    results = [_result(f, index) for f in report["findings"] if f["status"] in {"FAIL", "UNKNOWN"}]
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "gennaker",
                        "version": report["version"],
                        "informationUri": "https://github.com/gennaker/gennaker",
                        "rules": [_rule(c) for c in checks],
                    }
                },
                "invocations": [{"executionSuccessful": True, "endTimeUtc": report["generated_at"]}],
                "results": results,
                "properties": {"score": report["summary"]["score"], "scope": report["scope"]},
            }
        ],
    }
