"""The dr_drill stage's fields: durations, scenarios, and the regions a scenario may use."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gennaker.ops.dr.service import drill_config
from gennaker.stages import default_registry

BASE = {"account": "prod", "application": "shop", "from_region": "us-east-1", "to_region": "us-west-2"}


def test_objectives_are_durations_and_the_stage_is_registered() -> None:
    cfg = drill_config(**BASE, rto="30m", rpo="15m")
    assert cfg.objectives.as_seconds() == {"rto_s": 1800.0, "rpo_s": 900.0}
    assert cfg.keep is False and cfg.scenario == "region_loss"
    assert default_registry()["dr_drill"].Config is type(cfg)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rto": "soon"}, "rto"),
        ({"scenario": "flood"}, "scenario"),
        ({"to_region": "us-east-1"}, "region_loss needs to_region to differ"),
        ({"to_region": "us-east-1", "scenario": "failover_dns"}, "failover_dns needs to_region to differ"),
    ],
)
def test_bad_fields_are_refused(change: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        drill_config(**{**BASE, **change})


def test_restore_data_may_stay_in_the_primary_region() -> None:
    assert drill_config(**{**BASE, "to_region": "us-east-1", "scenario": "restore_data"}).to_region == "us-east-1"


STAGE = """name: p
application: shop
stages:
  - id: drill
    type: dr_drill
    account: prod
    from_region: us-east-1
    to_region: {to}
    application: {app}
"""


@pytest.mark.parametrize(
    ("to", "app", "where"),
    [
        ("mars-1", "shop", "p.yml:8:5: to_region"),
        ("'" + "x" * 10_000 + "'", "shop", "p.yml:8:5: to_region"),
        ("'us-west-2; rm -rf /'", "shop", "p.yml:8:5: to_region"),
        ("us-west-2", "'a b;c'", "p.yml:9:5: application"),
        ("us-west-2", "'" + "a" * 5000 + "'", "p.yml:9:5: application"),
    ],
    ids=["not-a-region", "huge-region", "shell-region", "bad-application", "huge-application"],
)
def test_hostile_stage_fields_are_located_problems(to: str, app: str, where: str) -> None:
    from gennaker.errors import ValidationFailed
    from gennaker.spec.pipeline import pipeline_from_text
    from gennaker.stages import stage_schemas

    with pytest.raises(ValidationFailed) as info:
        pipeline_from_text(STAGE.format(to=to, app=app), stage_schemas(default_registry()), "p.yml")
    assert str(info.value).startswith(where) and len(str(info.value)) < 400, str(info.value)[:400]
