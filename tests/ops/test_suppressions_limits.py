"""A suppressions file is a document a user submits: bounded like a pipeline (size, aliases expanded),
refused with file:line:column and exit 2 before anything is collected."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]\n" for prev, name in zip("abcdefg", "bcdefgh", strict=True)
)


def _audit(tmp_path: Path, suppressions: Path) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "gennaker.yml"  # nothing listens on port 9: the audit must stop before any call
    cfg.write_text("accounts:\n  main:\n    regions: [us-east-1]\n    endpoint_url: http://127.0.0.1:9\n")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gennaker",
            "audit",
            "--suppressions",
            str(suppressions),
            "--config",
            str(cfg),
            "--db",
            str(tmp_path / "x.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")},  # this tree
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]\n' + LAUGHS + "suppressions: *h\n", "yaml_nodes"),
        ("suppressions: []\n" + "# padding\n" * 200_000, "document_bytes"),
        ("suppressions: [\n", "YAML syntax"),
    ],
    ids=["alias-bomb", "too-large", "syntax"],
)
def test_hostile_suppressions_are_one_located_line(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "sup.yml"
    path.write_text(text)
    res = _audit(tmp_path, path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert str(path) in lines[0] and says in lines[0], lines[0]
