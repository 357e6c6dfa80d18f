"""Values JSON allows but cannot answer with (NaN, Infinity) are a 422 naming the field, not a 500."""

from __future__ import annotations

import pytest

from gennaker.api.app import create_app
from gennaker.runtime import Runtime
from tests.conftest import admin_client


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/pipelines", '{"yaml": %s}'),
        ("/api/executions", '{"yaml": "name: x", "params": {"v": %s}}'),
        ("/api/tokens", '{"name": "t", "expires_in_days": %s}'),
    ],
)
def test_non_finite_numbers_are_a_clear_422(runtime: Runtime, path: str, body: str, value: str) -> None:
    with admin_client(create_app(runtime), raise_server_exceptions=False) as client:
        r = client.post(path, content=body % value, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.json(), r.text  # a JSON body saying what is wrong
