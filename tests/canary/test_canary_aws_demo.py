"""The demo pipeline's canary on the seeded sandbox with the sandbox's metrics publisher running (as
``gennaker demo`` runs it): the canary passes with a score, and the Go/No-Go asks with that score."""

from __future__ import annotations

from pathlib import Path

from gennaker.cli.demo import DEMO_PIPELINE, demo_params
from gennaker.cloud.aws.session import AwsSessions
from gennaker.engine import operations as ops
from gennaker.runtime import build_runtime
from gennaker.sandbox.seed import CanaryMetrics, ShopWorld
from gennaker.spec.config import Config
from tests.cloud.conftest import ACCOUNT, REGION
from tests.core.conftest import FAST, detail, stage_status, wait_for


def test_the_demo_canary_passes_on_published_metrics_and_go_no_go_shows_the_score(
    config: Config, world: ShopWorld, sessions: AwsSessions, tmp_path: Path
) -> None:
    rt = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=config, settings=FAST)
    worker = rt.worker(threads=4)
    worker.start()
    try:
        with CanaryMetrics(sessions, ACCOUNT, REGION, max_seconds=120) as metrics:
            pipeline = rt.load_pipeline(str(DEMO_PIPELINE))
            eid = ops.start_execution(
                rt.db, pipeline, demo_params(world, "1s"), "tester", base_dir=str(DEMO_PIPELINE.parent)
            )

            def asking() -> dict[str, object] | None:
                stages = {s["stage_id"]: s for s in detail(rt, eid)["stages"]}
                return stages["go-no-go"] if stages["go-no-go"]["awaiting_judgment"] else None

            go_no_go = wait_for(asking, timeout=90)
        stages = {s["stage_id"]: s for s in detail(rt, eid)["stages"]}
        canary = stages["canary"]
        assert canary["status"] == "SUCCEEDED", (stage_status(rt, eid), canary.get("message"))
        assert (canary["outputs"]["result"], canary["outputs"]["score"]) == ("pass", 100)
        instructions = go_no_go["judgment_request"]["instructions"]
        assert instructions.startswith("The canary scored 100.0 (pass) in 2 judgements"), instructions
        assert canary["outputs"]["report"]["path"] in instructions
        # at least a figure set per judgement: one a second is the aim, but on a loaded machine each
        # set (a listing and two PutMetricData calls to the simulator) may take longer (6 in 8 s seen)
        assert metrics.published.get("shop-web-canary-v001", 0) >= 2 and not metrics.errors
        ops.cancel(rt.db, eid, "tester")
    finally:
        worker.stop()
        rt.db.dispose()
