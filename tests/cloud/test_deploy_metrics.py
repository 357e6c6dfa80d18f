"""/metrics counts deploys and rollbacks by strategy and result, from the stages the engine ran (any
stage type declaring the ``deploys`` capability), on simulated AWS."""

from __future__ import annotations

import json
from pathlib import Path

from gennaker.api.app import create_app
from gennaker.cloud.aws.shop import ShopWorld
from gennaker.engine import operations as ops
from gennaker.engine.runner import EngineSettings
from gennaker.runtime import build_runtime
from gennaker.spec.config import Config
from tests.cloud.conftest import deploy_raw
from tests.conftest import admin_client
from tests.core.conftest import finished
from tests.core.test_telemetry import samples


def test_deploys_and_rollbacks_are_counted_by_strategy_and_result(
    world: ShopWorld, config: Config, bad_images: set[str], tmp_path: Path
) -> None:
    rt = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=config, settings=EngineSettings(poll=0.02))
    worker = rt.worker(threads=2)
    worker.start()
    try:
        results = []
        for image, name in ((world.release_image_id, "good"), (world.base_image_id, "bad")):
            stage = {"id": "deploy", "type": "deploy", **deploy_raw(world, image=image, health_timeout=4)}
            pipeline = rt.pipeline_from_text(json.dumps({"name": name, "application": "shop", "stages": [stage]}))
            if name == "bad":
                bad_images.add(world.base_image_id)  # its instances never pass the health check
            results.append(finished(rt, ops.start_execution(rt.db, pipeline, {}, "tester"), timeout=90)["status"])
    finally:
        worker.stop()
    assert results == ["SUCCEEDED", "FAILED"]
    with admin_client(create_app(rt)) as c:
        got = samples(c.get("/metrics").text)
    assert got[("gennaker_deploys_total", (("result", "succeeded"), ("strategy", "red_black")))] == 1
    assert got[("gennaker_deploys_total", (("result", "failed"), ("strategy", "red_black")))] == 1
    assert got[("gennaker_rollbacks_total", (("result", "completed"), ("strategy", "red_black")))] == 1
    rt.db.dispose()
