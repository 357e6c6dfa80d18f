"""``${scope}`` and ``${location}`` are a metric query's (Kayenta's template variables, filled by the
metric source per server group): kept as written there, refused anywhere else."""

from __future__ import annotations

import pytest

from gennaker.errors import ValidationFailed
from gennaker.runtime import Runtime
from gennaker.spec import expressions


def test_a_metric_query_keeps_its_template_variables_and_resolves_the_rest() -> None:
    q = 'up{g="${scope}",r="${location}",v="${trigger.params.v}"}'
    assert expressions.resolve(q, {"trigger": {"params": {"v": "7"}}}, expressions.TEMPLATE_ROOTS) == (
        'up{g="${scope}",r="${location}",v="7"}'
    )
    with pytest.raises(expressions.ExpressionError):
        expressions.resolve(q, {"trigger": {"params": {"v": "7"}}})  # elsewhere: no such root


def test_validation_accepts_them_in_an_analysis_only(runtime: Runtime) -> None:
    assert expressions.check_reference("scope", set(), set(), template=True) is None
    assert "metric template variable" in (expressions.check_reference("scope.name", set(), set(), template=True) or "")
    run = "name: r\napplication: shop\nstages:\n  - {id: a, type: run, command: 'echo ${scope}'}\n"
    with pytest.raises(ValidationFailed) as refused:
        runtime.pipeline_from_text(run, "r.yml")
    [problem] = refused.value.problems
    assert (problem.line, problem.message) == (
        4,
        "${scope} is a metric template variable: write ${scope} in a metric query (a canary's analysis), not here",
    )
