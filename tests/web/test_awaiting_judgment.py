"""A rolling deploy paused for a judgment between steps awaits judgment like a manual judgment does:
`gennaker run … --wait` announces it, the console lists it under AWAITING JUDGMENT and offers the
judge form, and the API says so — because each asks the stage's capabilities, not its type's name.

Real parts: simulated AWS (moto in server mode) seeded with ``shop``, the CLI as a process running the
engine in itself, the console over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from gennaker.api.app import create_app
from gennaker.engine import views
from gennaker.runtime import build_runtime
from gennaker.sandbox.seed import ShopWorld
from gennaker.sandbox.server import config_text
from gennaker.spec.config import Config
from gennaker.web import store
from tests.cloud.conftest import config, deploy_raw, sessions, world  # noqa: F401  (fixtures)

from .conftest import LOCAL, auth_config

INSTRUCTIONS = "50% is live: go on?"


def _pipeline(shop: ShopWorld) -> dict[str, Any]:
    roll = deploy_raw(
        shop,
        strategy="rolling_red_black",
        target_percentages=[50, 100],
        pause_between_steps={"judgment": {"instructions": INSTRUCTIONS, "roles": ["release-managers"]}},
        poll_interval=0.2,
    )
    return {"name": "roll", "application": "shop", "stages": [{"id": "roll", "type": "deploy", **roll}]}


def _eventually(what: str, probe: Callable[[], Any], timeout: float = 90) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout:.0f}s")


def test_a_rolling_deploy_paused_for_a_judgment_awaits_judgment_everywhere(
    world: ShopWorld,  # noqa: F811
    config: Config,  # noqa: F811
    moto_endpoint: str,
    tmp_path: Path,
) -> None:
    (tmp_path / "gennaker.yml").write_text(config_text(moto_endpoint))
    pipeline = tmp_path / "roll.yml"
    pipeline.write_text(json.dumps(_pipeline(world)))  # JSON is YAML
    db = f"sqlite:///{tmp_path / 'g.db'}"
    env = {**os.environ, "GENNAKER_DB": db, "GENNAKER_CONFIG": str(tmp_path / "gennaker.yml"), "GENNAKER_USER": "rm"}
    gk = [sys.executable, "-m", "gennaker"]
    err = (tmp_path / "stderr").open("w+")
    run = subprocess.Popen(
        [*gk, "run", str(pipeline), "--wait"], env=env, stdout=subprocess.PIPE, stderr=err, text=True
    )
    # The console, with access control on: rita is a release manager (she may judge), olga is not.
    rt = build_runtime(db, config=config.model_copy(update={"auth": auth_config().auth}))
    bearer = {
        user: {"Authorization": "Bearer " + store.create_token(rt.db, f"{user}-t", user, roles, "test")["token"]}
        for user, roles in {"rita": ["shop:operator", "release-managers"], "olga": ["shop:operator"]}.items()
    }
    try:

        def paused() -> dict[str, Any] | None:
            with rt.db.read() as conn:
                rows = views.list_executions(conn, "roll", None, None, 1)
                ex = views.execution_detail(conn, rows[0]["id"]) if rows else None
            return ex if ex and ex["stages"][0]["awaiting_judgment"] else None

        ex = _eventually("the deploy's pause for a judgment", paused)
        eid, stage = ex["id"], ex["stages"][0]
        assert stage["status"] == "RUNNING" and stage["capabilities"]["judgeable"]
        assert stage["judgment_request"] == {
            "instructions": INSTRUCTIONS,
            "roles": ["release-managers"],
            "options": ["continue", "rollback"],
            "step": "pause after 50%",
        }

        # The CLI that waits for the execution says what to type.
        announced = f"stage 'roll' awaits judgment: gennaker judge {eid} roll --choice continue"
        _eventually("the CLI's announcement", lambda: announced in Path(err.name).read_text())

        # The console lists it under AWAITING JUDGMENT, badge and all, and offers the judge form.
        with TestClient(create_app(rt), base_url=LOCAL, headers=bearer["rita"]) as console:
            page = console.get("/applications/shop/pipelines", params={"status": "AWAITING_JUDGMENT", "group": "0"})
            assert page.status_code == 200, page.text
            assert f'data-execution="{eid}"' in page.text and "AWAITING JUDGMENT" in page.text
            stage_page = console.get(f"/executions/{eid}/stages/roll").text
            assert 'data-testid="judge-form"' in stage_page and INSTRUCTIONS in stage_page
            assert 'data-testid="judge-continue"' in stage_page and 'data-testid="judge-rollback"' in stage_page
            other = console.get(f"/executions/{eid}/stages/roll", headers=bearer["olga"]).text
            assert 'data-testid="cannot-judge"' in other and 'data-testid="judge-form"' not in other
            api = console.get(f"/api/executions/{eid}").json()
            assert api["stages"][0]["awaiting_judgment"] is True

        judged = subprocess.run(
            [*gk, "judge", eid, "roll", "--choice", "continue"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert judged.returncode == 0, judged.stderr
        out, _ = run.communicate(timeout=120)
        assert run.returncode == 0, (out, Path(err.name).read_text())
        assert f"execution {eid}: SUCCEEDED" in out
        assert Path(err.name).read_text().count(announced) == 1  # once per pause, not once per poll

        # Once judged, nothing awaits any more: the filter no longer lists it.
        with TestClient(create_app(rt), base_url=LOCAL, headers=bearer["rita"]) as console:
            page = console.get("/applications/shop/pipelines", params={"status": "AWAITING_JUDGMENT", "group": "0"})
            assert f'data-execution="{eid}"' not in page.text
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)
        err.close()
        rt.db.dispose()


def test_the_live_page_is_redrawn_when_a_stage_starts_or_stops_awaiting_judgment() -> None:
    """A rolling deploy's pause changes neither its status nor its task: the fingerprint the console's
    live updates compare must still change, or the judge form never appears without a reload."""
    from gennaker.web.console import execution_fingerprint

    def ctx(awaiting: bool) -> dict[str, Any]:
        stage = {"stage_id": "roll", "status": "RUNNING", "task_index": 3, "judgment": None}
        return {"ex": {"status": "RUNNING", "stages": [{**stage, "awaiting_judgment": awaiting}]}}

    assert execution_fingerprint(ctx(True)) != execution_fingerprint(ctx(False))
