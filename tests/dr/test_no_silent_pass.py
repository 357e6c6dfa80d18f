"""What a drill cannot evaluate is never a pass: a health-check observation without a status, a
load balancer whose address is unknown, an RPO objective with no data-store copy measured. (AWS
answers moto cannot produce: the step logic is driven with those answers directly.)"""

from __future__ import annotations

from typing import Any

from gennaker.ops.dr.drill import Drill, new_state


class _Site:
    def __init__(self, **answers: Any):
        self.answers = answers

    def health_check_status(self, check_id: str) -> list[str]:
        return list(self.answers["statuses"])

    def failover_sets(self, application: str) -> list[dict[str, Any]]:
        return list(self.answers["sets"])


def _drill(scenario: str, objectives: dict[str, float | None] | None = None, **answers: Any) -> Drill:
    d = Drill.__new__(Drill)
    d.s = new_state(
        "d1", scenario=scenario, application="shop", account="a", from_region="us-east-1",
        to_region="us-west-2", started_at=0.0, objectives=objectives or {}, options={"dns_wait": 0.0},
    )  # fmt: skip
    d.s["steps"][d.s["cursor"]]["began_at"] = 0.0
    d.dr = _Site(**answers)  # type: ignore[assignment]
    d.secrets = []
    return d


def test_an_observation_without_a_status_is_not_the_primary_unhealthy() -> None:
    d = _drill("failover_dns", statuses=["", ""])
    d.s["facts"]["failover"] = {"health_check": "hc-1"}
    out = d.step_primary_unhealthy(now=100.0)
    assert out.status == "UNKNOWN", out


def test_a_secondary_matched_against_an_unknown_load_balancer_address_is_not_a_pass() -> None:
    sets = [{"name": "shop.example.com.", "type": "A", "secondary": {"Name": "shop.example.com."}}]
    d = _drill("region_loss", sets=sets)
    d.s["facts"]["lb"] = {"dns": "", "target_group_arn": "arn"}
    assert d.step_dns_secondary(now=1.0).status != "PASS"


def test_an_rpo_objective_with_no_copy_measured_is_not_met() -> None:
    d = _drill("region_loss", objectives={"rto_s": 60.0, "rpo_s": 60.0})
    d.s["rto_s"], d.s["rpo"], d.s["rpo_s"] = 10.0, [], None
    assert d.met_objectives() is None
