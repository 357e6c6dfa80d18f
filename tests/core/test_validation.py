"""Every validation error class names file:line:column and the problem; `gennaker validate` exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gennaker.errors import ValidationFailed
from gennaker.spec.pipeline import pipeline_from_text
from gennaker.stages import default_registry, stage_schemas

SCHEMAS = stage_schemas(default_registry())

HEAD = "name: demo\napplication: shop\nparameters: [{name: version, default: '1'}]\nstages:\n"


def problems(body: str) -> list[tuple[int, int, str]]:
    with pytest.raises(ValidationFailed) as info:
        pipeline_from_text(HEAD + body, SCHEMAS, "p.yml")
    return [(p.line, p.column, p.message) for p in info.value.problems]


def test_valid_pipeline_loads() -> None:
    p = pipeline_from_text(HEAD + "  - {id: a, type: run, command: 'echo ${trigger.params.version}'}\n", SCHEMAS)
    assert [s.id for s in p.stages] == ["a"]


@pytest.mark.parametrize(
    ("body", "line", "col", "fragment"),
    [
        ("  - id: a\n    type: runn\n", 6, 5, "unknown stage type 'runn'"),
        ("  - id: a\n    type: run\n    command: x\n    colour: red\n", 8, 5, "unknown field 'colour'"),
        (
            "  - {id: a, type: run, command: x}\n  - id: a\n    type: wait\n    duration: 1s\n",
            6,
            5,
            "duplicate stage id 'a'",
        ),
        ("  - id: a\n    type: run\n    command: x\n    requires: [ghost]\n", 8, 16, "requires unknown stage 'ghost'"),
        (
            "  - {id: a, type: wait, duration: 1s, requires: [b]}\n"
            "  - {id: b, type: wait, duration: 1s, requires: [a]}\n",
            5,
            39,
            "cycle",
        ),
        ("  - id: a\n    type: wait\n    duration: 10 parsecs\n", 7, 5, "not a duration"),
        ("  - id: a\n    type: run\n    command: x\n    timeout: soon\n", 8, 5, "not a duration"),
        ("  - id: a\n    type: run\n    command: 'echo ${stages.nope.outputs.x}'\n", 7, 5, "unknown stage 'nope'"),
        ("  - id: a\n    type: run\n    command: 'echo ${trigger.params.nope}'\n", 7, 5, "unknown parameter 'nope'"),
        (
            "  - id: a\n    type: run\n    command: x\n"
            "  - id: b\n    type: run\n    command: 'echo ${stages.a.outputs.x}'\n",
            10,
            5,
            "not upstream",
        ),
        ("  - id: a\n    type: run\n    command: x\n    when: 'os.system(1)'\n", 8, 5, "unknown name 'os.system'"),
        ("  - id: a\n    type: wait\n", 5, 5, "missing required field 'duration'"),
    ],
)
def test_error_classes_name_line_and_column(body: str, line: int, col: int, fragment: str) -> None:
    found = problems(body)
    assert any(fragment in msg for _, _, msg in found), found
    assert (line, col) in [(ln, c) for ln, c, msg in found if fragment in msg], found


def test_yaml_syntax_error_has_position() -> None:
    with pytest.raises(ValidationFailed) as info:
        pipeline_from_text("name: x\n  bad: [\n", SCHEMAS, "p.yml")
    p = info.value.problems[0]
    assert (p.file, p.line) == ("p.yml", 2) and "YAML syntax" in p.message


def test_all_problems_reported_at_once() -> None:
    found = problems("  - {id: a, type: runn}\n  - {id: b, type: wait, duration: x}\n  - {id: c, type: run}\n")
    assert len(found) == 3


def test_expression_in_typed_field_is_checked_at_run_time_not_load_time() -> None:
    text = HEAD + "  - id: a\n    type: wait\n    duration: '${trigger.params.version}'\n"
    assert pipeline_from_text(text, SCHEMAS).stages[0].id == "a"


def test_validate_command_prints_all_errors_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(HEAD + "  - id: a\n    type: runn\n")
    good = tmp_path / "good.yml"
    good.write_text(HEAD + "  - {id: a, type: run, command: x}\n")
    r = subprocess.run(
        [sys.executable, "-m", "gennaker.cli", "validate", str(good), str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 2, r.stderr
    assert f"{bad}:6:5: unknown stage type 'runn'" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "gennaker.cli", "validate", str(good)], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0 and "ok" in r.stdout


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "name: d\napplication: a\nparameters: [{name: v}, {name: v}]\n"
            "stages:\n  - {id: a, type: run, command: x}\n",
            "declared twice: v",
        ),
        (
            "name: d\napplication: a\nparameters: [{name: env, default: qa, options: [dev, prod]}]\n"
            "stages:\n  - {id: a, type: run, command: x}\n",
            "not one of its options",
        ),
        (HEAD + "  - {id: a, type: run, command: x, env: {A: [1, 2]}}\n", "env values must be text"),
        (HEAD + "  - {id: a, type: run, command: 'echo ${stages.a.outputs.x'}\n", "unterminated expression"),
    ],
)
def test_more_problems(text: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        pipeline_from_text(text, SCHEMAS, "p.yml")
    assert any(fragment in p.message for p in info.value.problems), info.value.problems


def test_expression_problems_reported_alongside_structural_ones() -> None:
    found = problems(
        "  - {id: a, type: run, command: x, bogus: 1}\n"
        "  - {id: b, type: run, requires: [a], command: 'echo ${stages.nope.outputs.x}'}\n"
    )
    messages = [m for _, _, m in found]
    assert any("unknown field 'bogus'" in m for m in messages)
    assert any("unknown stage 'nope'" in m for m in messages)


@pytest.mark.parametrize(
    ("duration", "fragment"),
    [
        ("nan", "not a duration"),
        ("'nan'", "not a duration"),
        (".inf", "not a duration"),
        ("'1e400'", "not a duration"),
        ("'-5'", "cannot be negative"),
        ("-5", "cannot be negative"),
        ("99999999999d", "longer than 10 years"),
        ("'" + "1" * 10_000 + "x'", "characters long"),
    ],
)
def test_durations_that_are_no_durations_are_refused(duration: str, fragment: str) -> None:
    found = problems(f"  - id: a\n    type: wait\n    duration: {duration}\n")
    assert any(ln == 7 and fragment in msg for ln, _, msg in found), found


def test_ordinary_durations_still_read() -> None:
    text = HEAD + "  - {id: a, type: wait, duration: 1h30m, timeout: 250ms, retries: {count: 1, backoff: 90}}\n"
    stage = pipeline_from_text(text, SCHEMAS).stages[0]
    assert (stage.duration, stage.timeout, stage.retries.backoff) == (5400.0, 0.25, 90.0)  # type: ignore[attr-defined]
