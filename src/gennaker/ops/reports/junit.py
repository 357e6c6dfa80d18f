"""JUnit XML for CI test reports: a suite per pillar, a test case per finding.

FAIL -> <failure>, UNKNOWN -> <error> (could not evaluate), NOT_APPLICABLE and suppressed -> <skipped>.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from gennaker.ops.findings import PILLARS


def render_junit(report: dict[str, Any]) -> str:
    root = ET.Element("testsuites", name="gennaker audit", timestamp=report["generated_at"])
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for pillar, title in PILLARS.items():
        findings = [f for f in report["findings"] if f["pillar"] == pillar]
        suite = ET.SubElement(root, "testsuite", name=f"{pillar}: {title}")
        counts = {"tests": len(findings), "failures": 0, "errors": 0, "skipped": 0}
        for f in findings:
            case = ET.SubElement(suite, "testcase", classname=f["check_id"], name=f["resource_id"])
            case.set("file", f"{f['account']}/{f['region']}")
            if f.get("suppressed"):
                ET.SubElement(case, "skipped", message=f"suppressed: {f['suppressed']['reason']}")
                counts["skipped"] += 1
            elif f["status"] == "FAIL":
                node = ET.SubElement(case, "failure", message=f["message"], type=f["severity"])
                node.text = f"{f['remediation']['text']}\nAWS CLI: {f['remediation']['cli']}"
                counts["failures"] += 1
            elif f["status"] == "UNKNOWN":
                ET.SubElement(case, "error", message=f["message"], type="UNKNOWN")
                counts["errors"] += 1
            elif f["status"] == "NOT_APPLICABLE":
                ET.SubElement(case, "skipped", message=f["message"])
                counts["skipped"] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
