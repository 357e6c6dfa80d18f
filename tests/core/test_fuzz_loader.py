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
