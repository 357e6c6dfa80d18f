"""Random and malformed YAML never produces a traceback: only located validation errors."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gennaker.errors import ValidationFailed
from gennaker.spec.pipeline import pipeline_from_text
from gennaker.stages import default_registry, stage_schemas

SCHEMAS = stage_schemas(default_registry())

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)
stage_keys = st.sampled_from(
    [
        "id",
        "type",
        "requires",
        "when",
        "timeout",
        "retries",
        "command",
        "duration",
        "options",
        "roles",
        "env",
        "continue_on_failure",
        "name",
        "bogus",
    ]
)
stages = st.dictionaries(
    stage_keys, st.one_of(values, st.sampled_from(["run", "wait", "manual_judgment", "a", "b"])), max_size=6
)
documents = st.fixed_dictionaries(
    {
        "name": st.one_of(st.just("p"), values),
        "application": st.one_of(st.just("a"), values),
        "stages": st.one_of(st.lists(stages, max_size=4), values),
    }
)


def _check(text: str) -> None:
    try:
        pipeline_from_text(text, SCHEMAS, "fuzz.yml")
    except ValidationFailed as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.file == "fuzz.yml" and p.line >= 1 and p.column >= 1 and p.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=string.printable + "ü€\x00\t", max_size=200))
def test_random_text(text: str) -> None:
    _check(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_structures(doc: dict) -> None:  # type: ignore[type-arg]
    import yaml

    _check(yaml.safe_dump(doc, allow_unicode=True))


def test_hostile_yaml() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    for text in [
        bomb,
        "a: &x [*x]\n",
        "!!python/object:os.system x",
        "[" * 5000,
        "key: !!binary xx==",
        "a: 1\na: 2\n",
        "? [a]\n: b\n",
        "\x00",
        "---\n---\n",
        "name: 2001-99-99\n",
    ]:
        _check(text)


# --- expressions: the linear scanner agrees with the regex it replaced; conditions never crash ---

_OLD_REF = __import__("re").compile(r"\$\{\s*([^}]*?)\s*\}")  # the backtracking original, as an oracle
expression_text = st.text(alphabet="${} ab.\t'\"\\()=!<>[],-0123456789", max_size=60)


@settings(max_examples=500, deadline=None)
@given(expression_text)
def test_scanner_finds_what_the_old_regex_found(text: str) -> None:
    from gennaker.spec import expressions

    assert list(expressions.references(text)) == [m.group(1) for m in _OLD_REF.finditer(text)]
    assert expressions.unterminated(text) == ("${" in _OLD_REF.sub("", text))


condition_words = st.sampled_from(
    ["${trigger.params.v}", "'${trigger.params.v}'", "'x'", '"y"', "1", "2.5", "-3", "true", "false", "null",
     "==", "!=", "<", "<=", ">", ">=", "in", "not", "and", "or", "(", ")", "[", "]", ",", "'", "${", "}", "x"]
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(condition_words, max_size=12), st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)))
def test_conditions_either_evaluate_to_a_bool_or_raise_expression_error(words: list[str], value: object) -> None:
    from gennaker.spec import expressions

    condition = " ".join(words)
    problem = expressions.check_condition(condition)
    try:
        result = expressions.evaluate_condition(condition, {"trigger": {"params": {"v": value}}})
    except expressions.ExpressionError:
        return
    assert problem is None and isinstance(result, bool)
