"""``${...}`` in ``when`` means the same wherever it stands: alone, inside quotes, against numbers,
booleans, null and missing outputs of skipped stages; a form that cannot be honoured is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gennaker.engine.worker import Worker
from gennaker.errors import ValidationFailed
from gennaker.runtime import Runtime
from gennaker.spec import expressions
from gennaker.spec.pipeline import pipeline_from_text
from gennaker.stages import default_registry, stage_schemas
from tests.core.conftest import finished, stage_status, start

SCHEMAS = stage_schemas(default_registry())
P = "trigger.params"

# (condition, parameter value of `v`, expected truth)
MATRIX: list[tuple[str, Any, bool]] = [
    # text: the same comparison alone, in single quotes and in double quotes
    (f"${{{P}.v}} != 'reject'", "reject", False),
    (f"'${{{P}.v}}' != 'reject'", "reject", False),
    (f'"${{{P}.v}}" != "reject"', "reject", False),
    (f"'${{{P}.v}}' != 'reject'", "approve", True),
    (f"'${{{P}.v}}' == 'reject'", "reject", True),
    (f"\"${{{P}.v}}\" == 'reject'", "reject", True),
    (f"'${{{P}.v}}' == 'reject'", "approve", False),
    (f"'release-${{{P}.v}}' == 'release-2'", "2", True),
    (f"'release-${{{P}.v}}' == 'release-2'", "3", False),
    (f"'${{{P}.v}}' in ['a', 'b']", "b", True),
    (f"'${{{P}.v}}' not in ['a', 'b']", "b", False),
    (f"'x' in '${{{P}.v}}'", "xyz", True),
    # a value that looks like syntax stays a value (no injection into the condition)
    (f"'${{{P}.v}}' == 'a'", "a' or 'x", False),
    (f"'${{{P}.v}}' == \"a' or 'x\"", "a' or 'x", True),
    (f"${{{P}.v}} == 'a'", "a' or 'b' == 'b", False),
    # numbers: parameters arrive as text
    (f"${{{P}.v}} == 3", "3", True),
    (f"'${{{P}.v}}' == 3", "3", True),
    (f"${{{P}.v}} == 3", "3.0", True),
    (f"${{{P}.v}} == 3", "4", False),
    (f"${{{P}.v}} > 9", "10", True),
    (f"'${{{P}.v}}' > 9", "10", True),
    (f"${{{P}.v}} <= 2.5", "2.5", True),
    (f"${{{P}.v}} in [1, 2]", "2", True),
    (f"${{{P}.v}} == 3", 3, True),
    (f"${{{P}.v}} < 10", 9, True),
    # booleans, alone and compared
    (f"${{{P}.v}}", "true", True),
    (f"${{{P}.v}}", "false", False),
    (f"not ${{{P}.v}}", "false", True),
    (f"'${{{P}.v}}'", "false", False),
    (f"${{{P}.v}} == true", "true", True),
    (f"${{{P}.v}} == true", "false", False),
    (f"'${{{P}.v}}' == 'true'", True, True),
    (f"${{{P}.v}} == false", False, True),
    (f"${{{P}.v}}", True, True),
    (f"${{{P}.v}} == 1", True, False),
    # null
    (f"${{{P}.v}} == null", None, True),
    (f"${{{P}.v}} != null", "x", True),
    (f"'${{{P}.v}}' == ''", None, True),
    (f"${{{P}.v}}", None, False),
    # logic and grouping
    (f"${{{P}.v}} == 'a' or ${{{P}.v}} == 'b'", "b", True),
    (f"${{{P}.v}} == 'a' and not (${{{P}.v}} == 'b')", "a", True),
    (f"not '${{{P}.v}}' == 'a'", "a", False),
    (f"not not '${{{P}.v}}' == 'a'", "a", True),
]


@pytest.mark.parametrize(("condition", "value", "expected"), MATRIX)
def test_form_evaluates_to(condition: str, value: Any, expected: bool) -> None:
    scope = {"trigger": {"params": {"v": value}}, "parameters": {"v": value}}
    assert expressions.evaluate_condition(condition, scope) is expected


@pytest.mark.parametrize("condition", sorted({c for c, _, _ in MATRIX}))
def test_every_form_validates(condition: str) -> None:
    text = (
        "name: p\napplication: a\nparameters: [{name: v}]\nstages:\n"
        f"  - id: s\n    type: run\n    command: 'true'\n    when: {json.dumps(condition)}\n"
    )
    pipeline_from_text(text, SCHEMAS, "p.yml")


def _missing_ok(path: str) -> bool:
    return path.startswith("stages.gone.outputs.")


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("${stages.gone.outputs.judgment} == 'approve'", False),
        ("${stages.gone.outputs.judgment} != 'reject'", True),
        ("'${stages.gone.outputs.judgment}' != 'reject'", True),
        ("'${stages.gone.outputs.judgment}' == ''", True),
        ("${stages.gone.outputs.judgment} == null", True),
        ("${stages.gone.outputs.judgment}", False),
        ("'a' in ${stages.gone.outputs.list}", False),
    ],
)
def test_missing_output_of_a_skipped_stage_reads_as_null(condition: str, expected: bool) -> None:
    scope: dict[str, Any] = {"stages": {"gone": {"status": "SKIPPED", "outputs": {}}}}
    assert expressions.evaluate_condition(condition, scope, _missing_ok) is expected


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        ("${trigger.params.v} < 3", "cannot compare"),  # 'abc' < 3
        ("${trigger.params.v}", "neither true nor false"),  # 'abc' as a condition
        ("true < 2", "cannot compare"),
        ("${trigger.params.nope} == 1", "has no 'nope'"),
    ],
)
def test_a_value_that_cannot_be_honoured_is_an_error_not_a_guess(condition: str, fragment: str) -> None:
    with pytest.raises(expressions.ExpressionError, match=fragment):
        expressions.evaluate_condition(condition, {"trigger": {"params": {"v": "abc"}}})


@pytest.mark.parametrize(
    ("condition", "fragment", "column_in_message"),
    [
        ("'${trigger.params.v}' != 'reject", "unterminated string", "character 26"),
        ("'${trigger.params.v' != 'reject'", "unterminated expression", "character 2"),
        ("${trigger.params.v} = 'x'", "'=' is not allowed", "character 21"),
        ("${trigger.params.v} == reject", "unknown name 'reject'", "character 24"),
        ("os.system('id')", "unknown name 'os.system'", "character 1"),
        ("${trigger.params.v} ==", "expected a value", "character 23"),
        ("(${trigger.params.v} == 'a'", "expected ')'", ""),
        ("${trigger.params.v} == 'a' 'b'", "expected and, or", ""),
        ("", "empty condition", ""),
        ("1.2.3 == 1", "not a number", "character 1"),
    ],
)
def test_malformed_forms_are_refused_with_file_line_column(
    condition: str, fragment: str, column_in_message: str
) -> None:
    text = (
        "name: p\napplication: a\nparameters: [{name: v}]\nstages:\n"
        f"  - id: s\n    type: run\n    command: 'true'\n    when: {json.dumps(condition)}\n"
    )
    with pytest.raises(ValidationFailed) as info:
        pipeline_from_text(text, SCHEMAS, "p.yml")
    found = [(p.file, p.line, p.column, p.message) for p in info.value.problems]
    assert any(f == "p.yml" and line == 8 and fragment in m and column_in_message in m for f, line, _, m in found), (
        found
    )


def test_stage_gated_on_a_quoted_judgment_is_skipped_after_reject(
    runtime: Runtime, worker: Worker, tmp_path: Path
) -> None:
    """The issue's case: before the fix the quoted reference became a constant name and prod deployed."""
    text = """name: p
application: shop
stages:
  - {id: go, type: manual_judgment, options: [approve, reject], continue_options: [reject]}
  - id: prod
    type: run
    requires: [go]
    when: "'${stages.go.outputs.judgment}' != 'reject'"
    command: "echo deployed"
  - id: also-prod
    type: run
    requires: [go]
    when: '"${stages.go.outputs.judgment}" == "approve"'
    command: "echo deployed"
  - id: rollback-note
    type: run
    requires: [go]
    when: "'${stages.go.outputs.judgment}' == 'reject'"
    command: "echo noted"
"""
    from gennaker.engine import operations as ops
    from tests.core.conftest import wait_for

    eid = start(runtime, tmp_path, text)
    wait_for(lambda: stage_status(runtime, eid)["go"] == "WAITING")
    ops.judge(runtime.db, eid, "go", "dave", "reject", "not today")
    assert finished(runtime, eid)["status"] == "SUCCEEDED"
    assert stage_status(runtime, eid) == {
        "go": "SUCCEEDED",
        "prod": "SKIPPED",
        "also-prod": "SKIPPED",
        "rollback-note": "SUCCEEDED",
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("reject", "SKIPPED"), ("approve", "SUCCEEDED"), ("a' or 'x", "SUCCEEDED")],
)
def test_quoted_parameter_gates_a_stage_through_the_engine(
    runtime: Runtime, worker: Worker, tmp_path: Path, choice: str, expected: str
) -> None:
    text = """name: p
application: shop
parameters: [{name: choice}]
stages:
  - id: deploy
    type: run
    when: "'${trigger.params.choice}' != 'reject'"
    command: "true"
"""
    eid = start(runtime, tmp_path, text, {"choice": choice})
    assert finished(runtime, eid)["status"] == "SUCCEEDED"
    assert stage_status(runtime, eid) == {"deploy": expected}


def test_quoted_output_of_a_skipped_stage_reads_as_empty_text_through_the_engine(
    runtime: Runtime, worker: Worker, tmp_path: Path
) -> None:
    text = """name: p
application: shop
stages:
  - {id: gate, type: run, when: "1 == 2", command: 'echo "::output ok=yes"'}
  - {id: quoted-yes, type: run, requires: [gate], when: "'${stages.gate.outputs.ok}' == 'yes'", command: "true"}
  - {id: quoted-empty, type: run, requires: [gate], when: "'${stages.gate.outputs.ok}' == ''", command: "true"}
  - {id: bare-null, type: run, requires: [gate], when: "${stages.gate.outputs.ok} == null", command: "true"}
"""
    eid = start(runtime, tmp_path, text)
    assert finished(runtime, eid)["status"] == "SUCCEEDED"
    assert stage_status(runtime, eid) == {
        "gate": "SKIPPED",
        "quoted-yes": "SKIPPED",
        "quoted-empty": "SUCCEEDED",
        "bare-null": "SUCCEEDED",
    }


def test_a_condition_that_cannot_be_decided_fails_the_stage_with_a_message(
    runtime: Runtime, worker: Worker, tmp_path: Path
) -> None:
    text = """name: p
application: shop
parameters: [{name: v, default: abc}]
stages:
  - {id: s, type: run, when: "${trigger.params.v} > 3", command: "true"}
"""
    eid = start(runtime, tmp_path, text)
    d = finished(runtime, eid)
    assert d["status"] == "FAILED"
    assert "cannot compare 'abc' > 3" in d["stages"][0]["message"], d["stages"][0]["message"]
