"""``gennaker canary analyze`` as a user runs it (a subprocess): a stored window judged again, a given
window with its sources, and bad input as one line with its exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gennaker.store.db import open_database
from tests.canary.seed import seed_analysis


def gk(db: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GENNAKER_DB": db, "COLUMNS": "200"}
    env.pop("GENNAKER_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "gennaker", *args], env=env, capture_output=True, text=True, timeout=60, cwd=cwd
    )


def _seeded(tmp_path: Path) -> tuple[str, str, str]:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    db = open_database(url)
    try:
        return url, seed_analysis(db, execution_id="good"), seed_analysis(db, bad=True, execution_id="bad")
    finally:
        db.dispose()


def test_a_stored_analysis_is_judged_again(tmp_path: Path) -> None:
    url, good, bad = _seeded(tmp_path)
    passed = gk(url, "canary", "analyze", "--analysis", good)
    assert passed.returncode == 0, passed.stderr
    assert "errors (critical)" in passed.stdout and "Pass" in passed.stdout and "score 100 pass" in passed.stdout

    failed = gk(url, "canary", "analyze", "--analysis", bad, "--json")
    assert failed.returncode == 1, failed.stderr
    doc = json.loads(failed.stdout)
    assert (doc["interval"], doc["result"], doc["score"], doc["stored_score"]) == (2, "fail", 0.0, 0.0)
    assert {m["name"]: m["label"] for m in doc["metrics"]} == {"errors": "High", "latency": "Pass"}

    first = gk(url, "canary", "analyze", "--analysis", bad, "--interval", "1", "--json")
    assert first.returncode == 0 and json.loads(first.stdout)["result"] == "pass"


def test_bad_input_is_one_line_with_its_exit_code(tmp_path: Path) -> None:
    url, good, _ = _seeded(tmp_path)
    missing = gk(url, "canary", "analyze", "--analysis", "nope")
    assert missing.returncode == 4 and missing.stderr.strip() == "error: no canary analysis nope"
    no_interval = gk(url, "canary", "analyze", "--analysis", good, "--interval", "7")
    assert no_interval.returncode == 4 and "has no judgement 7" in no_interval.stderr
    neither = gk(url, "canary", "analyze")
    assert neither.returncode == 2 and len(neither.stderr.strip().splitlines()) == 1
    half = gk(url, "canary", "analyze", "--config", "x.yml", "--baseline", "a-v001")
    assert half.returncode == 2 and "--canary, --start, --end" in half.stderr
    when = gk(url, "canary", "analyze", "--config", "x.yml", "--start", "yesterday")
    assert when.returncode == 2 and "not a time" in when.stderr
    config = tmp_path / "analysis.yml"
    config.write_text("lifetime: 1m\nmetrics:\n  - {name: e, source: haproxy, query: x, direction: sideways}\n")
    window = ["--baseline", "a-v001", "--canary", "a-v002", "--start", "0", "--end", "60"]
    bad = gk(url, "canary", "analyze", "--config", str(config), *window)
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.startswith(f"error {config}:3:") and "direction" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_given_window_with_an_unreadable_source_is_an_error_not_a_pass(tmp_path: Path) -> None:
    url, _, _ = _seeded(tmp_path)
    config = tmp_path / "analysis.yml"
    config.write_text("analysis:\n  lifetime: 1m\n  metrics:\n    - {name: e, source: haproxy, query: http_5xx_rate}\n")
    window = ["--baseline", "a-v001", "--canary", "a-v002", "--start", "2026-12-01T10:00:00"]
    window += ["--end", "2026-12-01T10:01"]
    r = gk(url, "canary", "analyze", "--config", str(config), *window, "--json", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["metrics"][0]["label"] == "Error" and "haproxy is not available" in doc["metrics"][0]["reason"]


def test_a_given_window_is_judged_from_the_local_accounts_haproxy_samples(tmp_path: Path) -> None:
    """Retroactive: the samples the haproxy source kept (its file under the account's state
    directory) for a past window, judged with an analysis file; the canary answered 5xx."""
    (tmp_path / "gennaker.yml").write_text(
        "accounts:\n  laptop:\n    kind: local\n    state_dir: state\n    load_balancers:\n"
        '      shop-web: {listen: "127.0.0.1:18081"}\n'
    )
    samples = tmp_path / "state" / "metrics" / "haproxy-samples.jsonl"
    samples.parent.mkdir(parents=True)
    lines = []
    for i in range(31):  # one sample a second; 20 answers a second each, the canary 2 of them 500s
        counters = {"shop-web/a-v001-1": [20 * i, 0, 0, 0, 3], "shop-web/a-v002-1": [18 * i, 0, 0, 2 * i, 3]}
        lines.append(json.dumps({"t": 1_000_000 + i, "c": counters}))
    samples.write_text("\n".join(lines) + "\n")
    config = tmp_path / "analysis.yml"
    config.write_text(
        "lifetime: 30s\nstep: 1s\nmetrics:\n"
        "  - {name: errors, source: haproxy, query: http_5xx_rate, direction: increase, critical: true}\n"
        "  - {name: rate, source: haproxy, query: request_rate}\n"
    )
    window = ["--baseline", "a-v001", "--canary", "a-v002", "--start", "1000000", "--end", "1000030"]
    url, _, _ = _seeded(tmp_path)
    r = gk(url, "--config", str(tmp_path / "gennaker.yml"), "canary", "analyze", "--config", str(config), *window)
    assert r.returncode == 1, r.stderr
    assert "errors (critical)" in r.stdout and "High" in r.stdout and "score 0 fail" in r.stdout
    as_json = gk(url, "--config", str(tmp_path / "gennaker.yml"), "canary", "analyze", "--config", str(config),
                 *window, "--json")  # fmt: skip
    doc = json.loads(as_json.stdout)
    errors, rate = doc["metrics"]
    assert (errors["label"], errors["canary_count"], errors["canary_median"]) == ("High", 30, 0.1)
    assert (rate["label"], rate["baseline_median"], rate["canary_median"]) == ("Pass", 20.0, 20.0)
