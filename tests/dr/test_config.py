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
