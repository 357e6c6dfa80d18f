"""docs/operating.md stays true: its HAProxy example is the configuration the replica test runs (and
HAProxy accepts it), and its alerting rules pass Prometheus's own checker and name metrics that
/metrics really exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from gennaker.api.app import create_app
from gennaker.runtime import build_runtime
from gennaker.spec.config import Config
from tests.ha.test_replicas import haproxy_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "operating.md"


def _block(lang: str) -> str:
    found = re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)
    assert found, f"no ```{lang} block in {DOC}"
    return str(found[0])


def _rules() -> str:
    return next(b for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S) if b.startswith("groups:"))


def test_the_haproxy_example_is_the_tested_configuration(tmp_path: Path) -> None:
    example = _block("haproxy")
    assert example == haproxy_config(8080, Path("/run/haproxy/gennaker.sock"), {"r1": 8081, "r2": 8082})
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        pytest.skip("HAProxy is not installed (apt-get install haproxy): cannot check the example's syntax")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(example.replace("/run/haproxy/gennaker.sock", str(tmp_path / "s.sock")))
    checked = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_alerting_rules_pass_promtool_and_read_exported_metrics(tmp_path: Path) -> None:
    rules = tmp_path / "gennaker.rules.yml"
    rules.write_text(_rules())
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus): cannot check the rules")
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    rt = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=Config(server={"metrics_scrapers": ["127.0.0.1"]}))
    try:
        with TestClient(create_app(rt), base_url="http://127.0.0.1", client=("127.0.0.1", 5000)) as client:
            exported = client.get("/metrics").text
    finally:
        rt.db.dispose()
    names = {line.split()[2] for line in exported.splitlines() if line.startswith("# TYPE ")}
    series = set()
    for family in names:  # a counter family foo is read as foo_total
        series |= {family, f"{family}_total"}
    used = {
        name
        for rule in yaml.safe_load(rules.read_text())["groups"][0]["rules"]
        for name in re.findall(r"\bgennaker_[a-z_]+", rule["expr"])
    }
    assert used and used <= series, sorted(used - series)
