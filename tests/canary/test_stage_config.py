"""The canary stage's document: checked when the pipeline is loaded, each problem with its position."""

from __future__ import annotations

from pathlib import Path

import pytest

from gennaker.errors import ValidationFailed
from gennaker.runtime import build_runtime
from gennaker.spec.config import config_from_text
from gennaker.stages.canary import traffic_weights

CONFIG = """accounts:
  laptop:
    kind: local
    load_balancers:
      shop-web: {listen: "127.0.0.1:18080"}
"""

STAGE = """name: c
application: shop
stages:
  - id: canary
    type: canary
    account: laptop
    stack: web
    image: sha256-abc
    command: "python3 app.py"
    load_balancers: [shop-web]
    traffic: {traffic}
    analysis:
      lifetime: 10m
      interval: 5m
      metrics:
        - {{name: errors, source: haproxy, query: http_5xx_rate, {extra}}}
"""


def _load(tmp_path: Path, traffic: str = "10%", extra: str = "critical: true") -> None:
    rt = build_runtime(str(tmp_path / "g.db"), config=config_from_text(CONFIG))
    try:
        rt.pipeline_from_text(STAGE.format(traffic=traffic, extra=extra), "p.yml")
    finally:
        rt.db.dispose()


def test_a_good_canary_stage_loads(tmp_path: Path) -> None:
    _load(tmp_path)
    _load(tmp_path, traffic="25")


@pytest.mark.parametrize(
    ("traffic", "extra", "line", "words"),
    [
        ("0%", "critical: true", 11, "more than 0%"),
        ("100%", "critical: true", 11, "less than 100%"),
        ("lots", "critical: true", 11, "percentage"),
        ("10%", "critcal: true", 16, "critcal"),
        ("10%", "direction: sideways", 16, "direction"),
    ],
)
def test_bad_fields_are_named_with_their_line(tmp_path: Path, traffic: str, extra: str, line: int, words: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        _load(tmp_path, traffic, extra)
    problems = [str(p) for p in caught.value.problems]
    assert any(f"p.yml:{line}:" in p and words in p for p in problems), problems


@pytest.mark.parametrize(("share", "pair", "production"), [(10, 2, 1), (10, 2, 4), (1, 2, 2), (50, 2, 1), (90, 4, 1)])
def test_traffic_weights_give_the_pair_its_share(share: float, pair: int, production: int) -> None:
    p, w = traffic_weights(share, pair, production)
    assert 1 <= p <= 256 and 1 <= w <= 256
    got = 100 * w * pair / (w * pair + p * production)
    assert abs(got - share) < 0.5, (p, w, got)


def test_plan_shows_the_pair_created_and_destroyed(tmp_path: Path) -> None:
    from gennaker.cloud.plan import plan_pipeline

    config = config_from_text(CONFIG, str(tmp_path / "gennaker.yml"))
    config.source = str(tmp_path / "gennaker.yml")
    rt = build_runtime(str(tmp_path / "g.db"), config=config)
    try:
        pipeline = rt.pipeline_from_text(STAGE.format(traffic="10%", extra="critical: true"), "p.yml")
        (plan,) = plan_pipeline(pipeline, rt.registry, rt.services)
    finally:
        rt.db.dispose()
    assert plan.error is None, plan.error
    assert [(a.kind, a.server_group) for a in plan.actions] == [
        ("create", "shop-web-baseline-v001"),
        ("create", "shop-web-canary-v001"),
        ("wait_healthy", "shop-web-baseline-v001"),
        ("wait_healthy", "shop-web-canary-v001"),
        ("destroy", "shop-web-baseline-v001"),
        ("destroy", "shop-web-canary-v001"),
    ]
    assert any("10% of the traffic" in n for n in plan.notes)
