"""The sandbox seed gives the audit both passing and failing findings, and is idempotent."""

from __future__ import annotations

from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops.audit import run_audit
from gennaker.ops.sandbox_seed import seed_audit_examples
from gennaker.ops.settings import OpsSettings


def test_seed_shows_good_and_bad(sessions: AwsSessions) -> None:
    seed_audit_examples(sessions, "main", "us-east-1")
    seed_audit_examples(sessions, "main", "us-east-1")  # second call: no duplicates
    checks = [
        "ha.ec2.multi_az",
        "ha.eip.unassociated",
        "dr.s3.versioning",
        "ha.ebs.recent_snapshot",
        "mon.alarms.notify",
        "golive.security.admin_ports_open",
    ]
    result = run_audit(sessions, OpsSettings(), checks=checks)
    got = {(f.check_id, f.status) for f in result.findings}
    for check in checks:
        assert (check, "FAIL") in got, check
    for check in ("ha.ec2.multi_az", "dr.s3.versioning", "ha.ebs.recent_snapshot", "mon.alarms.notify"):
        assert (check, "PASS") in got, check
    workloads = {f.resource_id: f.status for f in result.findings if f.check_id == "ha.ec2.multi_az"}
    assert workloads == {"Application=shop": "PASS", "Application=reports": "FAIL"}
    # the demo application carries findings of its own for the readiness gate
    shop_volumes = {f.status for f in result.findings if f.check_id == "ha.ebs.recent_snapshot"}
    assert shop_volumes == {"PASS", "FAIL"}
