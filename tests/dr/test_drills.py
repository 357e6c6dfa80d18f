"""DR drills on simulated AWS (moto in server mode): the three scenarios pass on a seeded ``shop``
with copies in us-west-2, with measured figures; what is missing fails the drill and is named;
missed objectives fail it; what simulated AWS cannot evaluate is UNKNOWN with the reason; the
tear-down leaves nothing tagged with the drill id, and the primary region is unchanged."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from gennaker.cloud.aws.dr import AwsDrSite
from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops.collect import collect
from gennaker.ops.dr import store
from gennaker.ops.dr.service import drill_config, run_in_process
from gennaker.ops.settings import OpsSettings
from tests.dr.conftest import ACCOUNT
from tests.dr.seed import DR, PRIMARY, DrWorld, seed_dr, standby_serving

PRIMARY_TYPES = [
    "autoscaling.group", "ec2.instance", "ec2.volume", "ec2.snapshot", "ec2.image", "ec2.vpc", "ec2.subnet",
    "elbv2.load_balancer", "elbv2.target_group", "rds.instance", "route53.record", "route53.health_check",
]  # fmt: skip


def _drill(services: SimpleNamespace, scenario: str, **kw: Any) -> dict[str, Any]:
    kw.setdefault("rto", "30m")
    kw.setdefault("rpo", "1h")
    cfg = drill_config(
        account=ACCOUNT, application="shop", from_region=PRIMARY, to_region=DR, scenario=scenario, dns_wait=1, **kw
    )
    return run_in_process(services, cfg, sleep=lambda s: time.sleep(min(s, 0.2)))


def _steps(row: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["status"] for s in row["report"]["steps"]}


def _primary(sessions: AwsSessions) -> dict[str, Any]:
    snap = collect(sessions, OpsSettings(), accounts=[ACCOUNT], regions=[PRIMARY], types=PRIMARY_TYPES)
    assert not snap.failures, snap.failures
    # LatestRestorableTime is the clock ("now", for point-in-time restore), not a change.
    return {
        r.key: {k: v for k, v in r.attrs.items() if k != "LatestRestorableTime"}
        for r in snap.resources
        if r.region != DR  # the drill's own region: only the primary (and global records) must not change
    }


def _left(sessions: AwsSessions, drill_id: str) -> list[str]:
    found = AwsDrSite(sessions, ACCOUNT, DR).drill_resources(drill_id)
    found += AwsDrSite(sessions, ACCOUNT, PRIMARY).drill_resources(drill_id)
    r53 = sessions.client(ACCOUNT, PRIMARY, "route53")
    for hc in r53.list_health_checks()["HealthChecks"]:
        tags = r53.list_tags_for_resource(ResourceType="healthcheck", ResourceId=hc["Id"])["ResourceTagSet"]
        found += [f"health check {hc['Id']}" for t in tags.get("Tags", []) if t["Key"] == "gennaker:drill"]
    return found


def test_seeded_application_passes_all_three_scenarios(
    world: DrWorld, services: SimpleNamespace, sessions: AwsSessions
) -> None:
    before = _primary(sessions)
    loss = _drill(services, "region_loss")
    assert loss["status"] == "SUCCEEDED", loss["report"]
    assert _steps(loss) == {
        "discover": "PASS", "restore_data": "PASS", "verify_data": "UNKNOWN", "deploy": "PASS",
        "serving": "PASS", "attach_volumes": "PASS", "dns_secondary": "PASS",
    }  # fmt: skip
    verify = next(s for s in loss["report"]["steps"] if s["name"] == "verify_data")
    assert "no database engine behind it" in verify["detail"]  # moto's RDS: UNKNOWN with the reason
    assert 0 < loss["rto_s"] < 60 and loss["report"]["met_objectives"] is True
    kinds = {r["kind"]: r for r in loss["rpo"]}
    assert set(kinds) == {"ebs", "rds", "s3"} and kinds["s3"]["age_s"] is None
    assert 0 <= loss["rpo_s"] < 120 and loss["rpo_s"] == max(kinds["ebs"]["age_s"], kinds["rds"]["age_s"])
    assert all(s["duration_s"] is not None for s in loss["report"]["steps"])
    assert any("destroyed server group shop-drill" in line for line in loss["report"]["teardown"])
    assert _left(sessions, loss["id"]) == []

    restore = _drill(services, "restore_data")
    assert restore["status"] == "SUCCEEDED", restore["report"]
    assert _steps(restore) == {
        "discover": "PASS", "restore_data": "PASS", "verify_data": "UNKNOWN", "attach_volumes": "PASS"
    }  # fmt: skip
    assert restore["rto_s"] is not None and _left(sessions, restore["id"]) == []

    standby_serving(sessions, ACCOUNT, world)  # the secondary must be alive for failover_dns
    dns = _drill(services, "failover_dns")
    assert dns["status"] == "SUCCEEDED", dns["report"]
    steps = {s["name"]: s for s in dns["report"]["steps"]}
    assert {k: v["status"] for k, v in steps.items()} == {
        "discover": "PASS", "dns_config": "PASS", "secondary_alive": "PASS", "invert_primary": "PASS",
        "primary_unhealthy": "UNKNOWN", "dns_answer": "UNKNOWN",
    }  # fmt: skip
    assert "reports every health check healthy" in steps["primary_unhealthy"]["detail"]
    assert "TestDNSAnswer" in steps["dns_answer"]["detail"]
    assert dns["rto_s"] is None and dns["report"]["met_objectives"] is None  # not measurable: not a pass
    hc = sessions.client(ACCOUNT, PRIMARY, "route53").get_health_check(HealthCheckId=world.health_check)
    assert hc["HealthCheck"]["HealthCheckConfig"].get("Inverted") is False  # put back
    assert _left(sessions, dns["id"]) == []

    after = _primary(sessions)
    assert set(after) ^ set(before) == set()
    changed = {k: [f for f in after[k] if after[k][f] != before[k].get(f)] for k in after if after[k] != before[k]}
    assert changed == {}, changed
    with services.db.read() as conn:
        rows = store.recent_drills(conn, "shop")
        assert [r["scenario"] for r in rows] == ["failover_dns", "restore_data", "region_loss"]
        assert store.last_drill(conn, "shop", "region_loss")["id"] == loss["id"]


def test_missing_image_copy_fails_region_loss_naming_it(sessions: AwsSessions, services: SimpleNamespace) -> None:
    world = seed_dr(sessions, ACCOUNT, copy_image=False)
    row = _drill(services, "region_loss")
    assert row["status"] == "FAILED"
    assert _steps(row)["discover"] == "FAIL" and _steps(row)["deploy"] == "SKIPPED"
    ami = world.primary.release_image_id
    assert any(
        m.startswith(f"no copy of image {ami} (shop-1.0.0) in {DR}: aws ec2 copy-image --source-region {PRIMARY}")
        for m in row["report"]["missing"]
    ), row["report"]["missing"]
    assert _left(sessions, row["id"]) == []


def test_missing_data_copies_are_named_with_a_remedy(sessions: AwsSessions, services: SimpleNamespace) -> None:
    world = seed_dr(sessions, ACCOUNT, copy_data=False)
    row = _drill(services, "restore_data")
    assert row["status"] == "FAILED"
    missing = " | ".join(row["report"]["missing"])
    assert f"no snapshot copy of volume {world.volume} in {DR}: aws ec2 copy-snapshot" in missing
    assert f"no snapshot copy or read replica of database shop-db in {DR}: aws rds copy-db-snapshot" in missing


def test_missed_objectives_fail_the_drill(world: DrWorld, services: SimpleNamespace, sessions: AwsSessions) -> None:
    row = _drill(services, "region_loss", rto=0.001, rpo=0.001)
    assert row["status"] == "FAILED"
    assert all(s["status"] != "FAIL" for s in row["report"]["steps"])  # every step passed ...
    assert row["report"]["met_objectives"] is False  # ... but the figures miss the targets
    assert row["rto_s"] > 0.001 and row["rpo_s"] > 0.001
    assert _left(sessions, row["id"]) == []


def test_keep_leaves_what_the_drill_built(world: DrWorld, services: SimpleNamespace, sessions: AwsSessions) -> None:
    row = _drill(services, "region_loss", keep=True)
    assert row["status"] == "SUCCEEDED" and row["report"]["kept"] is True
    left = _left(sessions, row["id"])
    assert any(x.startswith("auto scaling group shop-drill") for x in left), left
    AwsDrSite(sessions, ACCOUNT, DR).tear_down(row["id"], AwsProvider(sessions, ACCOUNT, DR).destroy_server_group)
    assert _left(sessions, row["id"]) == []
