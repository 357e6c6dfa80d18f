"""A DR drill as a list of timed steps, advanced one call at a time from a persisted state dict.

The state (``new_state``) is what the stage keeps in its context and the CLI in memory: each step
is first marked begun (and that state saved) before it acts, and every step finds what an earlier
attempt made (by the ``gennaker:drill`` tag, by names derived from the drill id), so a worker lost
mid-step and its successor produce one drill, not two. After the steps (or the first failed one)
comes the tear-down, by tag, which also runs on cancel.

Scenarios (docs/dr.md): region_loss, restore_data, failover_dns. What simulated AWS cannot do
(evaluate a health check, answer TestDNSAnswer, accept a connection to a restored database) is a
step with status UNKNOWN and the reason, never a pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from gennaker.cloud import registry
from gennaker.cloud.aws.dr import TAG_DRILL, TAG_INVERTED_FROM, AwsDrSite
from gennaker.cloud.aws.options import AwsDeployOptions
from gennaker.cloud.provider import Capacity, CloudProvider, ServerGroupSpec
from gennaker.engine.secrets import MASK
from gennaker.errors import CloudError, ConfigError, GennakerError
from gennaker.spec.durations import format_duration

SCENARIOS: dict[str, list[str]] = {
    "region_loss": ["discover", "restore_data", "verify_data", "deploy", "serving", "attach_volumes", "dns_secondary"],
    "restore_data": ["discover", "restore_data", "verify_data", "attach_volumes"],
    "failover_dns": ["discover", "dns_config", "secondary_alive", "invert_primary", "primary_unhealthy", "dns_answer"],
}
# The step whose passing ends the measured RTO (None: the last step of the scenario).
RTO_STEP = {"region_loss": "serving", "restore_data": None, "failover_dns": "dns_answer"}
TEARDOWN_POLLS = 10


@dataclass
class Outcome:
    status: str  # PASS, FAIL, UNKNOWN, SKIPPED; or WAIT (call again after ``wait`` seconds)
    detail: str
    facts: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    wait: float = 0.0


def new_state(
    drill_id: str,
    *,
    scenario: str,
    application: str,
    account: str,
    from_region: str,
    to_region: str,
    started_at: float,
    objectives: dict[str, float | None],
    keep: bool = False,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown DR scenario '{scenario[:40]}' ({', '.join(SCENARIOS)})")
    return {
        "id": drill_id,
        "scenario": scenario,
        "application": application,
        "account": account,
        "from_region": from_region,
        "to_region": to_region,
        "started_at": started_at,
        "objectives": objectives,
        "keep": keep,
        "options": {"capacity": 1, "instance_type": "t3.small", "health_timeout": 900.0, "dns_wait": 60.0}
        | (options or {}),
        "phase": "steps",
        "cursor": 0,
        "steps": [{"name": n, "status": "PENDING", "duration_s": None, "detail": ""} for n in SCENARIOS[scenario]],
        "facts": {},
        "missing": [],
        "rpo": [],
        "rpo_s": None,
        "rto_s": None,
        "failed": False,
        "teardown": [],
        "teardown_polls": 0,
    }


# user:password@ in any URL: botocore names the endpoint URL in its connection errors
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@\"']+@")


def scrub(value: Any, secrets: Iterable[str] = ()) -> Any:
    """``value`` (text or JSON-like) with URL credentials and the given secret texts masked: what a
    drill writes to its report, row, context and log."""
    if isinstance(value, str):
        value = _USERINFO.sub(lambda m: m["scheme"] + MASK + "@", value)
        for secret in secrets:
            if secret and secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, secrets) for v in value]
    return value


def account_secrets(acct: Any) -> list[str]:
    """The account's texts no report may show (static keys, external id, the endpoint's password)."""
    values = [acct.aws_secret_access_key, acct.external_id]
    if acct.endpoint_url:
        parts = urlsplit(acct.endpoint_url)
        values += [parts.password, parts.username if parts.password else None]
    return sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True)


def _age(seconds: float | None) -> str:
    return "age unknown" if seconds is None else f"{format_duration(max(0.0, round(seconds)))} old"


class Drill:
    """One drill's steps against AWS. ``services`` has ``config`` and ``aws`` (AwsSessions)."""

    def __init__(self, services: Any, state: dict[str, Any], execution_id: str, stage_id: str):
        self.services = services
        self.s = state
        self.execution_id = execution_id
        self.stage_id = stage_id
        acct = services.config.account(state["account"])
        self.secrets = account_secrets(acct)
        if acct.kind != "aws":
            raise ConfigError(f"account {state['account']} is kind {acct.kind}: DR drills run on AWS accounts")
        for region in (state["from_region"], state["to_region"]):
            if region not in acct.regions and region != acct.dr_region:
                raise ConfigError(f"region {region} is not configured for account {state['account']}")
        self.dr = AwsDrSite(services.aws, state["account"], state["to_region"])
        self.primary = AwsDrSite(services.aws, state["account"], state["from_region"])

    @property
    def app(self) -> str:
        return str(self.s["application"])

    @property
    def facts(self) -> dict[str, Any]:
        return self.s["facts"]

    def provider(self) -> CloudProvider:
        return registry.provider_for(self.services, self.s["account"], self.s["to_region"])

    # --- the runner --------------------------------------------------------------------------------
    def advance(self, now: float) -> float | None:
        """Do the next bit of work; return seconds until the next call, or None when the drill is done."""
        if self.s["phase"] == "steps":
            return self._step(now)
        if self.s["phase"] == "teardown":
            return self._teardown(now)
        return None

    def _step(self, now: float) -> float | None:
        steps, i = self.s["steps"], int(self.s["cursor"])
        if i >= len(steps):
            self._finish_steps()
            return 0.0
        step = steps[i]
        if step.get("began_at") is None:  # saved before acting: a successor knows it had begun
            step["began_at"], step["status"] = now, "RUNNING"
            return 0.0
        fn: Callable[[float], Outcome] = getattr(self, f"step_{step['name']}")
        try:
            out = fn(now)
        except (GennakerError, ValueError) as exc:  # AWS said no, or a value it cannot take: the step failed
            out = Outcome("FAIL", str(exc))
        self.facts.update(out.facts)
        if out.status == "WAIT":
            step["detail"] = self.scrub(out.detail)
            return out.wait
        missing = [self.scrub(m) for m in out.missing]
        self.s["missing"] += [m for m in missing if m not in self.s["missing"]]
        step.update(
            status=out.status, detail=self.scrub(out.detail), duration_s=round(now - float(step["began_at"]), 3)
        )
        rto_step = RTO_STEP[self.s["scenario"]] or steps[-1]["name"]
        if step["name"] == rto_step and out.status == "PASS":
            self.s["rto_s"] = round(now - float(self.s["started_at"]), 3)
        self.s["cursor"] = i + 1
        if out.status == "FAIL":
            self.s["failed"] = True
            for rest in steps[i + 1 :]:
                rest.update(status="SKIPPED", detail=f"not run: step {step['name']} failed")
            self.s["cursor"] = len(steps)
        return 0.0

    def _finish_steps(self) -> None:
        self.s["met_objectives"] = self.met_objectives()
        self.s["phase"] = "teardown"

    def met_objectives(self) -> bool | None:
        obj = self.s["objectives"] or {}
        verdicts: list[bool | None] = []
        if obj.get("rto_s") is not None:
            rto = self.s["rto_s"]
            verdicts.append(None if rto is None else rto <= float(obj["rto_s"]))
        if obj.get("rpo_s") is not None:  # no copy measured (none found, or no age): not met
            rpo = self.s["rpo_s"]
            verdicts.append(None if rpo is None else rpo <= float(obj["rpo_s"]))
        if False in verdicts:
            return False
        return None if None in verdicts or not verdicts else True

    def status(self) -> str:
        if self.s["failed"] or self.s.get("met_objectives") is False:
            return "FAILED"
        return "SUCCEEDED"

    def _teardown(self, now: float) -> float | None:
        done = self.s["teardown"]
        if not self.s["keep"]:
            done += self.dr.tear_down(self.s["id"], self.provider().destroy_server_group)
        done += self.dr.restore_health_checks(self.s["id"])
        left = [] if self.s["keep"] else self.dr.drill_resources(self.s["id"])
        self.s["teardown_polls"] = int(self.s["teardown_polls"]) + 1
        if left and self.s["teardown_polls"] < TEARDOWN_POLLS:
            return 2.0  # deletions still in progress: look again
        self.s["left"] = left
        self.s["phase"] = "done"
        return None

    def cancel(self) -> None:
        """Tear down at once (a cancel must return within seconds: no waiting)."""
        if not self.s["keep"]:
            self.s["teardown"] += self.dr.tear_down(self.s["id"], self.provider().destroy_server_group)
        self.s["teardown"] += self.dr.restore_health_checks(self.s["id"])
        self.s["phase"] = "done"

    def scrub(self, value: Any) -> Any:
        return scrub(value, self.secrets)

    def report(self) -> dict[str, Any]:
        return self.scrub(self._report())

    def _report(self) -> dict[str, Any]:
        return {
            "steps": [{k: st.get(k) for k in ("name", "status", "duration_s", "detail")} for st in self.s["steps"]],
            "missing": list(self.s["missing"]),
            "met_objectives": self.s.get("met_objectives"),
            "rto_s": self.s["rto_s"],
            "rpo_s": self.s["rpo_s"],
            "objectives": self.s["objectives"],
            "teardown": list(self.s["teardown"]),
            "left": list(self.s.get("left", [])),
            "kept": bool(self.s["keep"]),
        }

    # --- steps -------------------------------------------------------------------------------------
    def step_discover(self, now: float) -> Outcome:
        """What exists in the DR region now; the primary is read (never changed) only to name what
        should be there, and may be gone: then that part is unknown."""
        to, frm, started = self.s["to_region"], self.s["from_region"], float(self.s["started_at"])
        missing: list[str] = []
        notes: list[str] = []
        copies = self.dr.data_copies(self.app)
        images = self.dr.images(self.app)
        try:
            expected = self.primary.serving_image(self.app)
            stores = self.primary.primary_stores(self.app)
        except CloudError as exc:
            expected, stores = None, []
            notes.append(f"primary region {frm} unreadable ({exc.code}): what should have copies is unknown")
        image = None
        if expected is not None:
            image = next(
                (
                    i
                    for i in images
                    if i["ImageId"] == expected["ImageId"]
                    or (expected.get("Name") and i.get("Name") == expected["Name"])
                ),
                None,
            )
            if image is None and self.s["scenario"] != "failover_dns":
                name = expected.get("Name") or expected["ImageId"]
                missing.append(
                    f"no copy of image {expected['ImageId']} ({name}) in {to}: "
                    f"aws ec2 copy-image --source-region {frm} "
                    f"--source-image-id {expected['ImageId']} --name {name} --region {to}"
                )
        elif images:
            image = images[0]
            notes.append(f"primary's image unknown; using the newest image of {self.app} in {to}")
        elif self.s["scenario"] != "failover_dns":
            missing.append(
                f"no image of {self.app} in {to}: bake with copy_to_regions: [{to}] or aws ec2 copy-image "
                f"--source-region {frm} --source-image-id <ami> --region {to}"
            )
        have = {(c.store, "rds" if c.kind == "rds_replica" else c.kind) for c in copies}
        for st in stores:
            if (st["store"], st["kind"]) in have:
                continue
            if st["kind"] == "ebs":
                missing.append(
                    f"no snapshot copy of volume {st['store']} in {to}: aws ec2 copy-snapshot --source-region {frm} "
                    f"--source-snapshot-id <newest snapshot of {st['store']}> --region {to}"
                )
            else:
                missing.append(
                    f"no snapshot copy or read replica of database {st['store']} in {to}: aws rds copy-db-snapshot "
                    f"--source-db-snapshot-identifier <arn of its newest snapshot in {frm}> "
                    f"--target-db-snapshot-identifier {st['store']}-dr --region {to}"
                )
        if self.s["scenario"] == "restore_data" and not copies and not missing:
            missing.append(f"no backups of {self.app}'s data stores in {to} (none tagged Application={self.app})")
        rpo = [
            {
                "store": c.store,
                "kind": c.kind,
                "age_s": None if c.created_at is None else round(max(0.0, started - c.created_at), 3),
            }
            for c in copies
        ]
        ages = [r["age_s"] for r in rpo if r["age_s"] is not None]
        self.s["rpo"], self.s["rpo_s"] = rpo, (max(ages) if ages else None)
        subnets = self.dr.subnets_for(self.app)
        zone = subnets[0]["AvailabilityZone"] if subnets else self.dr.first_zone()
        facts = {
            "image_id": image["ImageId"] if image else None,
            "image_name": image.get("Name") if image else None,
            "copies": [c.as_dict() for c in copies],
            "subnets": [s["SubnetId"] for s in subnets],
            "vpc_id": subnets[0]["VpcId"] if subnets else None,
            "zone": zone,
        }
        found = [f"image {facts['image_id']} ({facts['image_name']})" if image else "no image"]
        found += [
            f"{c.kind} {c.store}: {c.copy_id} ({_age(None if c.created_at is None else started - c.created_at)})"
            for c in copies
        ]
        detail = f"in {to}: " + "; ".join(found + notes)
        failing = bool(missing) and self.s["scenario"] != "failover_dns"
        return Outcome("FAIL" if failing else "PASS", detail, facts, missing)

    def step_restore_data(self, now: float) -> Outcome:
        volumes, dbs, notes = list(self.facts.get("volumes", [])), list(self.facts.get("dbs", [])), []
        done_snaps = {v["snapshot"] for v in volumes}
        for i, c in enumerate(self.facts.get("copies", [])):
            if c["kind"] == "ebs" and c["copy_id"] not in done_snaps:
                v = self.dr.restore_volume(self.s["id"], c["copy_id"], self.facts["zone"])
                volumes.append({"id": v["VolumeId"], "snapshot": c["copy_id"], "store": c["store"]})
            elif c["kind"] == "rds" and not any(d["snapshot"] == c["copy_id"] for d in dbs):
                db = self.dr.restore_db(self.s["id"], self.app, c["copy_id"], i)
                dbs.append({"id": db["DBInstanceIdentifier"], "snapshot": c["copy_id"], "store": c["store"]})
            elif c["kind"] == "rds_replica":
                notes.append(f"{c['detail']}: not promoted (it replicates production); verified below")
            elif c["kind"] == "s3":
                notes.append(f"bucket {c['store']}: read in place")
        if not volumes and not dbs and not notes:
            return Outcome("SKIPPED", "no data store copies to restore", {"volumes": [], "dbs": []})
        made = [f"volume {v['id']} from {v['snapshot']}" for v in volumes] + [
            f"db {d['id']} from {d['snapshot']}" for d in dbs
        ]
        return Outcome("PASS", "; ".join(made + notes), {"volumes": volumes, "dbs": dbs})

    def step_verify_data(self, now: float) -> Outcome:
        began = float(self.s["steps"][self.s["cursor"]]["began_at"])
        timeout = float(self.s["options"]["health_timeout"])
        lines, statuses, pending = [], [], []
        for v in self.facts.get("volumes", []):
            state = self.dr.volume_state(v["id"]).get("State")
            if state in ("available", "in-use"):
                lines.append(f"volume {v['id']} {state}")
                statuses.append("PASS")
            else:
                pending.append(f"volume {v['id']} {state}")
        for d in self.facts.get("dbs", []):
            db = self.dr.db_instance(d["id"])
            if db is None or db.get("DBInstanceStatus") != "available":
                pending.append(f"db {d['id']} {db.get('DBInstanceStatus') if db else 'missing'}")
                continue
            ok, why = self.dr.db_answers(db.get("Endpoint") or {})
            if ok:
                lines.append(f"db {d['id']} answers: {why}")
                statuses.append("PASS")
            elif self.dr.simulated:
                lines.append(
                    f"db {d['id']} available; whether it answers is unknown: {why} (the account's "
                    "endpoint_url is a simulator or proxy: no database engine behind it)"
                )
                statuses.append("UNKNOWN")
            else:
                lines.append(f"db {d['id']} available but {why}")
                statuses.append("FAIL")
        for c in self.facts.get("copies", []):
            if c["kind"] == "rds_replica":
                db = self.dr.db_instance(c["copy_id"])
                good = db is not None and db.get("DBInstanceStatus") == "available"
                lines.append(f"read replica {c['copy_id']} {'available' if good else 'not available'} for promotion")
                statuses.append("PASS" if good else "FAIL")
            elif c["kind"] == "s3":
                try:
                    self.dr.sessions.client(self.s["account"], self.s["to_region"], "s3").list_objects_v2(
                        Bucket=c["store"], MaxKeys=1
                    )
                    lines.append(f"bucket {c['store']} answers")
                    statuses.append("PASS")
                except CloudError as exc:
                    lines.append(f"bucket {c['store']}: {exc}")
                    statuses.append("FAIL")
        if pending:
            if now - began < timeout:
                return Outcome("WAIT", "waiting: " + ", ".join(pending), wait=5.0)
            return Outcome("FAIL", f"not restored within {format_duration(timeout)}: " + ", ".join(pending))
        if not statuses:
            return Outcome("SKIPPED", "nothing restored to verify")
        status = "FAIL" if "FAIL" in statuses else "UNKNOWN" if "UNKNOWN" in statuses else "PASS"
        return Outcome(status, "; ".join(lines))

    def step_deploy(self, now: float) -> Outcome:
        """The server group from the image copy, behind the application's standing load balancer in
        the DR region (or one of the drill's own), through the AWS provider a deploy uses."""
        if not self.facts.get("image_id"):
            return Outcome("FAIL", f"no image of {self.app} in {self.s['to_region']}")
        if not self.facts.get("subnets"):
            return Outcome(
                "FAIL", f"no subnet for {self.app} in {self.s['to_region']} (no VPC named {self.app}, no default VPC)"
            )
        lb: dict[str, Any] = dict(self.facts.get("lb") or {})
        if not lb:
            standby = self.dr.standby_target_group(self.app)
            if standby is not None:
                found = self.dr.load_balancer(standby["LoadBalancerArns"][0]) or {}
                lb = {
                    "target_group_arn": standby["TargetGroupArn"],
                    "dns": str(found.get("DNSName", "")),
                    "standby": True,
                }
            else:
                lb = {
                    **self.dr.drill_load_balancer(self.s["id"], self.app, self.facts["subnets"], self.facts["vpc_id"]),
                    "standby": False,
                }
        provider = self.provider()
        name = f"{self.app}-drill{self.s['id'][-6:]}-v000"
        opts = self.s["options"]
        spec = provider.prepare_server_group(
            ServerGroupSpec(
                name=name,
                application=self.app,
                image=self.facts["image_id"],
                capacity=Capacity(int(opts["capacity"]), int(opts["capacity"]), int(opts["capacity"])),
                provider_options=AwsDeployOptions(
                    instance_type=str(opts["instance_type"]),
                    subnets=list(self.facts["subnets"]),
                    security_groups=self.dr.security_groups_for(self.app, self.facts["vpc_id"]),
                    target_groups=[lb["target_group_arn"]],
                    health_check_type="ELB",
                ),
                tags={TAG_DRILL: self.s["id"]},
                execution_id=self.execution_id,
                stage_id=self.stage_id,
            )
        )
        provider.create_server_group(spec)
        where = "the standing" if lb["standby"] else "the drill's own"
        return Outcome(
            "PASS",
            f"{name} from {self.facts['image_id']} behind {where} load balancer {lb['dns']}",
            {"lb": lb, "server_group": name},
        )

    def step_serving(self, now: float) -> Outcome:
        began = float(self.s["steps"][self.s["cursor"]]["began_at"])
        timeout = float(self.s["options"]["health_timeout"])
        group = self.provider().get_server_group(self.facts["server_group"])
        want = int(self.s["options"]["capacity"])
        serving = group.serving_instances() if group else []
        if len(serving) >= want:
            ids = [i.id for i in serving]
            return Outcome("PASS", f"{len(serving)} healthy behind {self.facts['lb']['dns']}", {"instances": ids})
        if now - began < timeout:
            return Outcome("WAIT", f"{len(serving)}/{want} healthy", wait=5.0)
        return Outcome("FAIL", f"{len(serving)}/{want} healthy after {format_duration(timeout)}")

    def step_attach_volumes(self, now: float) -> Outcome:
        volumes = self.facts.get("volumes", [])
        if not volumes:
            return Outcome("SKIPPED", "no volume restored")
        instance = (self.facts.get("instances") or [None])[0]
        if instance is None:
            if not self.facts.get("image_id"):
                return Outcome(
                    "UNKNOWN", f"no image of {self.app} in {self.s['to_region']} to start an instance to attach to"
                )
            instance = self.dr.run_probe_instance(self.s["id"], self.facts["image_id"], self.facts["zone"])
        lines = []
        for n, v in enumerate(volumes):
            state = self.dr.attach_volume(v["id"], instance, f"/dev/sd{chr(ord('f') + n)}")
            lines.append(f"{v['id']} {state} to {instance}")
        return Outcome("PASS", "; ".join(lines), {"attached_to": instance})

    def _alias(self, rec: dict[str, Any]) -> str:
        return str((rec.get("AliasTarget") or {}).get("DNSName", "")).lower().rstrip(".").removeprefix("dualstack.")

    def step_dns_secondary(self, now: float) -> Outcome:
        sets = self.dr.failover_sets(self.app)
        if not sets:
            return Outcome("SKIPPED", f"no Route 53 failover record for {self.app}")
        built = str(self.facts["lb"]["dns"]).lower().rstrip(".")
        if not built:  # nothing to compare the SECONDARY with: an address record would "match"
            return Outcome("UNKNOWN", "the address of the load balancer the drill served behind is unknown")
        bad, good = [], []
        for fs in sets:
            sec = fs.get("secondary")
            target = self._alias(sec) if sec else ""
            if sec is None:
                bad.append(f"{fs['name']} {fs['type']} has no SECONDARY record")
            elif target != built:
                bad.append(
                    f"{fs['name']} {fs['type']} SECONDARY points at {target or 'an address record'}, not at {built}"
                )
            else:
                good.append(f"{fs['name']} {fs['type']} SECONDARY points at {built}")
        if bad:
            return Outcome(
                "FAIL",
                "; ".join(bad),
                missing=[f"{b}: point it at the load balancer in {self.s['to_region']}" for b in bad],
            )
        return Outcome("PASS", "; ".join(good))

    # failover_dns ---------------------------------------------------------------------------------
    def step_dns_config(self, now: float) -> Outcome:
        sets = [fs for fs in self.dr.failover_sets(self.app) if fs.get("primary") and fs.get("secondary")]
        if not sets:
            return Outcome(
                "FAIL",
                f"no PRIMARY/SECONDARY failover record pair for {self.app}",
                missing=[
                    f"no Route 53 failover records for {self.app}: "
                    "add PRIMARY (with a health check) and SECONDARY records"
                ],
            )
        fs = sets[0]
        check_id = fs["primary"].get("HealthCheckId")
        if not check_id or self.dr.health_check(check_id) is None:
            return Outcome(
                "FAIL",
                f"{fs['name']} PRIMARY has no (existing) health check",
                missing=[f"{fs['name']} {fs['type']} PRIMARY has no health check: aws route53 create-health-check …"],
            )
        secondary = self._alias(fs["secondary"]) or "address record"
        detail = f"{fs['name']} {fs['type']}: PRIMARY with health check {check_id}, SECONDARY {secondary}"
        return Outcome(
            "PASS",
            detail,
            {
                "failover": {
                    "zone_id": fs["zone_id"],
                    "name": fs["name"],
                    "type": fs["type"],
                    "health_check": check_id,
                    "secondary": self._alias(fs["secondary"]),
                    "primary": self._alias(fs["primary"]),
                }
            },
        )

    def step_secondary_alive(self, now: float) -> Outcome:
        target = self.facts["failover"]["secondary"]
        if not target:
            return Outcome("UNKNOWN", "SECONDARY is an address record: which region serves it cannot be told")
        lb = self.dr.load_balancers_by_dns().get(target)
        if lb is None:
            return Outcome("FAIL", f"SECONDARY {target} is no load balancer in {self.s['to_region']}")
        elb = self.dr.sessions.client(self.s["account"], self.s["to_region"], "elbv2")
        groups = elb.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]
        healthy = sum(self.dr.healthy_targets(g["TargetGroupArn"]) for g in groups)
        state = (lb.get("State") or {}).get("Code")
        if state == "active" and healthy:
            return Outcome("PASS", f"{lb['LoadBalancerName']} active, {healthy} healthy target(s)")
        return Outcome(
            "FAIL", f"{lb['LoadBalancerName']} {state}, {healthy} healthy target(s): the secondary cannot serve"
        )

    def step_invert_primary(self, now: float) -> Outcome:
        check_id = self.facts["failover"]["health_check"]
        hc = self.dr.health_check(check_id)
        if hc is None:
            return Outcome("FAIL", f"health check {check_id} is gone")
        tags = (
            self.dr.sessions.client(self.s["account"], self.s["to_region"], "route53")
            .list_tags_for_resource(ResourceType="healthcheck", ResourceId=check_id)["ResourceTagSet"]
            .get("Tags")
            or []
        )
        mine = {t["Key"]: t["Value"] for t in tags}
        now_inverted = bool(hc.get("HealthCheckConfig", {}).get("Inverted", False))
        if mine.get(TAG_DRILL) == self.s["id"]:
            # An earlier attempt tagged it (its original is on the tag) and may have been lost before
            # it inverted it: invert it now if it is not yet.
            original = mine.get(TAG_INVERTED_FROM, "false") == "true"
            if now_inverted == original:
                self.dr.invert_health_check(self.s["id"], check_id, original)
            return Outcome("PASS", f"health check {check_id} inverted for the drill (restored at tear-down)")
        self.dr.invert_health_check(self.s["id"], check_id, now_inverted)
        return Outcome("PASS", f"health check {check_id} inverted for the drill (restored at tear-down)")

    def step_primary_unhealthy(self, now: float) -> Outcome:
        began = float(self.s["steps"][self.s["cursor"]]["began_at"])
        wait = float(self.s["options"]["dns_wait"])
        try:
            statuses = self.dr.health_check_status(self.facts["failover"]["health_check"])
        except CloudError as exc:
            return Outcome("UNKNOWN", f"health check status cannot be read: {exc}")
        failing = [s for s in statuses if s.startswith("Failure")]  # an observation without a status says nothing
        if failing:
            return Outcome("PASS", f"Route 53 reports the primary unhealthy ({failing[0][:80]})")
        if now - began < wait:
            return Outcome("WAIT", "the checkers still report the primary healthy", wait=min(5.0, wait))
        return Outcome(
            "UNKNOWN",
            f"Route 53 still reports the inverted health check healthy after {format_duration(wait)}: "
            "it is not being evaluated (simulated Route 53 reports every health check healthy)",
        )

    def step_dns_answer(self, now: float) -> Outcome:
        f = self.facts["failover"]
        try:
            answer = self.dr.test_dns_answer(f["zone_id"], f["name"], f["type"])
        except CloudError as exc:
            return Outcome("UNKNOWN", f"resolution cannot be tested: TestDNSAnswer failed ({exc.code}: {exc})")
        got = {a.lower().rstrip(".") for a in answer}
        if f["secondary"] and f["secondary"] in got:
            return Outcome("PASS", f"{f['name']} resolves to the secondary {f['secondary']}")
        return Outcome(
            "FAIL", f"{f['name']} still resolves to {', '.join(sorted(got)) or 'nothing'}, not the secondary"
        )
