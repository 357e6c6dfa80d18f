"""``gennaker plan`` on the demo pipeline: stages planned in order against what earlier stages leave."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from gennaker.cli.cloud import register
from gennaker.cli.demo import demo_params
from gennaker.sandbox import Sandbox, start_sandbox

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.yml"


@pytest.fixture
def sandbox(moto_endpoint: str) -> Iterator[Sandbox]:
    box = start_sandbox()  # moto keeps one state per process: moto_endpoint reset it first
    try:
        yield box
    finally:
        box.stop()


def _plan(box: Sandbox, tmp_path: Path, *args: str) -> Any:
    cfg = tmp_path / "gennaker.yml"
    cfg.write_text(box.config_text)
    app = typer.Typer()
    register(app)
    return CliRunner().invoke(app, ["plan", str(DEMO), *args], env={"GENNAKER_CONFIG": str(cfg)})


def _params(box: Sandbox) -> list[str]:
    return [f"--param={k}={v}" for k, v in demo_params(box.world, "1s").items()]


def test_plan_demo_on_a_fresh_sandbox(sandbox: Sandbox, tmp_path: Path) -> None:
    result = _plan(sandbox, tmp_path, *_params(sandbox), "--json")
    assert result.exit_code == 0, result.output
    plans = {p["stage_id"]: p for p in json.loads(result.stdout)}
    assert all(p["error"] is None for p in plans.values()), plans

    def described(stage: str) -> list[str]:
        return [a["description"].split(" (")[0] for a in plans[stage]["actions"]]

    assert list(plans) == ["canary", "deploy-prod", "cleanup"]
    # the canary stage makes its pair, waits for it, and always takes it down again
    assert described("canary") == [
        "create shop-web-baseline-v001",
        "create shop-web-canary-v001",
        "wait until 1 instances of shop-web-baseline-v001 are healthy",
        "wait until 1 instances of shop-web-canary-v001 are healthy",
        "destroy shop-web-baseline-v001",
        "destroy shop-web-canary-v001",
    ]
    assert described("deploy-prod") == [
        "create shop-web-v002",
        "wait until 2 instances of shop-web-v002 are healthy",
        "disable shop-web-v001",
    ]
    assert described("cleanup") == []  # keep 2: v002 (planned) and v001

    text = _plan(sandbox, tmp_path, *_params(sandbox))
    assert text.exit_code == 0 and "- destroy shop-web-canary-v001" in text.output


def test_plan_parameter_errors_exit_2(sandbox: Sandbox, tmp_path: Path) -> None:
    missing = _plan(sandbox, tmp_path)
    assert missing.exit_code == 2
    assert "parameter 'base_image' is required" in missing.output
    assert "validation error" not in missing.output.lower()
    unknown = _plan(sandbox, tmp_path, *_params(sandbox), "--param", "colour=blue")
    assert unknown.exit_code == 2 and "unknown parameter(s) colour" in unknown.output
