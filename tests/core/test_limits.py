"""Bad input must not hurt: scanning is linear, and size, depth and count limits are checked before
parsing, each refused with one clear line (CLI exit 2, API 413/422), never a hang or a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from gennaker.api.app import create_app
from gennaker.errors import ValidationFailed
from gennaker.runtime import Runtime
from gennaker.spec.limits import Limits
from gennaker.spec.pipeline import pipeline_from_text
from gennaker.stages import default_registry, stage_schemas

SCHEMAS = stage_schemas(default_registry())
HEAD = "name: p\napplication: a\nstages:\n"


def short(value: object) -> str:
    """Test ids for parameters that are megabytes long."""
    text = str(value)
    return text if len(text) <= 24 else f"{text[:16]}...{len(text)}"


def validate(*files: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gennaker", "validate", *files],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def one_line_refusal(r: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    assert fragment in r.stderr, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr[-2000:]
    assert len(r.stderr) < 500, r.stderr[:500]


def unterminated_command(spaces: int) -> str:
    return HEAD + '  - {id: a, type: run, command: "${' + " " * spaces + '"}\n'


# --- linear scanning --------------------------------------------------------------------------


@pytest.mark.parametrize("spaces", [5_000, 900_000])
def test_unterminated_expression_with_many_spaces_is_refused_fast(spaces: int) -> None:
    text = unterminated_command(spaces)
    began = time.perf_counter()
    with pytest.raises(ValidationFailed) as info:
        pipeline_from_text(text, SCHEMAS, "p.yml")
    elapsed = time.perf_counter() - began
    assert elapsed < 1.0, elapsed
    [problem] = info.value.problems
    assert (problem.line, "unterminated expression") == (4, problem.message[:23]), problem
    assert len(problem.message) < 200


def test_cli_unterminated_expression_is_one_line_exit_2(tmp_path: Path) -> None:
    f = tmp_path / "p.yml"
    f.write_text(unterminated_command(5_000))
    began = time.perf_counter()
    r = validate(str(f))
    assert time.perf_counter() - began < 20
    one_line_refusal(r, f"{f}:4:")
    assert "unterminated expression" in r.stderr


@pytest.mark.parametrize(
    "value",
    [
        "${" * 200_000,
        "${a}" * 100_000,
        "$" * 500_000 + "{",
        "${ " + "x" * 500_000,
        "'" + "${x}" * 100_000,
    ],
    ids=short,
)
def test_reference_scanning_is_linear(value: str) -> None:
    text = HEAD + "  - id: a\n    type: run\n    command: " + json.dumps(value) + "\n"
    began = time.perf_counter()
    with pytest.raises(ValidationFailed) as info:
        pipeline_from_text(text, SCHEMAS, "p.yml")
    assert time.perf_counter() - began < 3.0
    assert all(len(p.message) < 300 for p in info.value.problems)


# --- document size ----------------------------------------------------------------------------


def test_cli_validate_dev_zero_stops_at_the_limit() -> None:
    began = time.perf_counter()
    r = validate("/dev/zero", timeout=30)
    assert time.perf_counter() - began < 20
    one_line_refusal(r, "/dev/zero:1:1: document is larger than 1,000,000 bytes")


def test_cli_ten_megabyte_pipeline_is_refused_quickly(tmp_path: Path) -> None:
    f = tmp_path / "big.yml"
    line = "  - {id: s%d, type: run, command: 'echo hello world hello world'}\n"
    with f.open("w") as fh:
        fh.write(HEAD)
        i = 0
        while fh.tell() < 10_000_000:
            fh.write(line % i)
            i += 1
    began = time.perf_counter()
    r = validate(str(f))
    assert time.perf_counter() - began < 20
    one_line_refusal(r, "document is larger than 1,000,000 bytes")


def test_document_limit_is_configurable() -> None:
    text = HEAD + "  - {id: a, type: run, command: 'echo " + "x" * 5_000 + "'}\n"
    pipeline_from_text(text, SCHEMAS, "p.yml")
    with pytest.raises(ValidationFailed, match=r"larger than 4,000 bytes"):
        pipeline_from_text(text, SCHEMAS, "p.yml", Limits(document_bytes=4_000))


def test_limits_section_in_the_configuration() -> None:
    from gennaker.spec.config import config_from_text

    cfg = config_from_text("limits:\n  document_bytes: 50000\n  stages: 10\n")
    assert (cfg.limits.document_bytes, cfg.limits.stages) == (50_000, 10)
    with pytest.raises(ValidationFailed, match="unknown field 'bogus'"):
        config_from_text("limits:\n  bogus: 1\n")


# --- depth, aliases, counts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested more than 64 levels deep"),
        ("name: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n", "nested more than 64 levels deep"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "more than 100,000 values",
        ),
        (
            "a0: &a0 {k0: 1, k1: 2}\n"
            + "".join(f"a{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}], z{i}: 1}}\n" for i in range(1, 40)),
            "more than 100,000 values",
        ),
        ("x: &x 1\nl: [" + ", ".join(["*x"] * 1_001) + "]\n", "more than 1,000 aliases"),
        (HEAD + "".join(f"  - {{id: s{i}, type: wait, duration: 0s}}\n" for i in range(2_001)), "at most 2,000 stages"),
        (
            "name: p\napplication: a\nparameters:\n"
            + "".join(f"  - {{name: p{i}}}\n" for i in range(20_000))
            + "stages:\n  - {id: a, type: run, command: x}\n",
            "at most 500 parameters",
        ),
        (HEAD + "  - {id: a, type: wait, duration: '" + "1" * 40_000 + "x'}\n", "is 40001 characters long"),
    ],
    ids=short,
)
def test_hostile_structure_is_refused_quickly(text: str, fragment: str) -> None:
    began = time.perf_counter()
    with pytest.raises(ValidationFailed) as info:
        pipeline_from_text(text, SCHEMAS, "p.yml")
    assert time.perf_counter() - began < 3.0
    assert any(fragment in p.message for p in info.value.problems), info.value.problems


def test_merge_keys_still_work() -> None:
    text = (
        "name: p\napplication: a\nx-base: &base {type: run, command: 'true'}\nstages:\n"
        "  - {<<: *base, id: a}\n  - {<<: *base, id: b, command: 'false'}\n"
    )
    with pytest.raises(ValidationFailed, match="unknown field 'x-base'"):
        pipeline_from_text(text, SCHEMAS, "p.yml")  # the header is strict; merge into stages via a list
    text = "name: p\napplication: a\nstages:\n  - &a {id: a, type: run, command: 'true'}\n  - {<<: *a, id: b}\n"
    p = pipeline_from_text(text, SCHEMAS, "p.yml")
    assert [(s.id, s.type) for s in p.stages] == [("a", "run"), ("b", "run")]


def test_a_thousand_stage_chain_still_validates_quickly() -> None:
    lines = [HEAD.rstrip("\n")]
    for i in range(1_000):
        req = f", requires: [s{i - 1}]" if i else ""
        lines.append(f"  - {{id: s{i}, type: wait, duration: 0s{req}}}")
    began = time.perf_counter()
    pipeline_from_text("\n".join(lines) + "\n", SCHEMAS, "p.yml")
    assert time.perf_counter() - began < 5.0


# --- when: length and nesting -----------------------------------------------------------------


def hostile_when(condition: str) -> str:
    return HEAD + "  - id: a\n    type: run\n    command: 'true'\n    when: " + json.dumps(condition) + "\n"


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        ("not " * 200_000 + "true", "condition is longer than 4096 characters"),
        ("(" * 1_000 + "true" + ")" * 1_000, "nested more than 32 levels deep"),
        ("[" * 1_000 + "]" * 1_000, "nested more than 32 levels deep"),
        ("${" + "x" * 300 + "} == 1", "longer than 256 characters"),
    ],
    ids=short,
)
def test_hostile_when_is_refused(condition: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        pipeline_from_text(hostile_when(condition), SCHEMAS, "p.yml")
    assert any(fragment in p.message and p.line == 7 for p in info.value.problems), info.value.problems
    assert all(len(p.message) < 300 for p in info.value.problems)


def test_many_nots_within_the_length_limit_evaluate_without_recursion() -> None:
    from gennaker.spec.expressions import evaluate_condition

    assert evaluate_condition("not " * 1_000 + "true", {}) is True
    assert evaluate_condition("not " * 1_001 + "true", {}) is False


def test_cli_hostile_when_is_one_line_exit_2(tmp_path: Path) -> None:
    f = tmp_path / "p.yml"
    f.write_text(hostile_when("not " * 200_000 + "true"))
    one_line_refusal(validate(str(f)), f"{f}:7:5: condition is longer than 4096 characters")


# --- the API ----------------------------------------------------------------------------------


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    runtime.config.server = {"insecure_no_auth": True}
    with TestClient(create_app(runtime), base_url="http://127.0.0.1") as c:
        yield c


@pytest.mark.parametrize("route", ["/api/pipelines", "/api/executions"])
def test_api_body_over_the_limit_is_413(client: TestClient, route: str) -> None:
    body = json.dumps({"yaml": "x" * 3_000_000})
    r = client.post(route, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert "request body is larger than 2,000,000 bytes" in r.json()["message"]


def test_api_body_over_the_limit_without_content_length_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"yaml": "'
        for _ in range(300):
            yield b"x" * 10_000
        yield b'"}'

    r = client.post("/api/pipelines", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text


@pytest.mark.parametrize("route", ["/api/pipelines", "/api/executions"])
@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        (HEAD + "  - {id: a, type: run, command: 'echo " + "x" * 1_500_000 + "'}\n", "larger than 1,000,000 bytes"),
        (hostile_when("not " * 200_000 + "true"), "condition is longer than 4096 characters"),
        (unterminated_command(900_000), "unterminated expression"),
        ("name: " + "[" * 100_000 + "\n", "nested more than 64 levels deep"),
    ],
    ids=short,
)
def test_api_document_over_a_limit_is_422(client: TestClient, route: str, document: str, fragment: str) -> None:
    began = time.perf_counter()
    r = client.post(route, json={"yaml": document})
    assert time.perf_counter() - began < 5
    assert r.status_code == 422, r.text[:500]
    assert any(fragment in p["message"] for p in r.json()["problems"]), r.text[:500]


def test_health_answers_while_a_hostile_document_is_parsed(runtime: Runtime) -> None:
    """A real server: while big hostile POSTs are validated, /api/health keeps answering quickly."""
    runtime.config.server = {"insecure_no_auth": True}
    app = create_app(runtime)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < end and thread.is_alive(), "the test server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    # close to the size limit, deep enough in work to keep the parser busy for a while
    lines = [HEAD.rstrip("\n")]
    i = 0
    while sum(map(len, lines)) < 900_000:
        lines.append(f"  - {{id: s{i}, type: run, command: 'echo ${{{'x' * 40}'}}")
        i += 1
    hostile = [json.dumps({"yaml": "\n".join(lines[:1_900]) + "\n" + unterminated_command(500_000)[len(HEAD) :]})]
    hostile.append(json.dumps({"yaml": "\n".join(lines) + "\n"}))
    results: list[int] = []

    def post(body: str) -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            results.append(
                c.post("/api/pipelines", content=body, headers={"content-type": "application/json"}).status_code
            )

    posters = [threading.Thread(target=post, args=(b,)) for b in hostile * 2]
    try:
        for t in posters:
            t.start()
        worst = 0.0
        with httpx.Client(base_url=base, timeout=10) as c:
            while any(t.is_alive() for t in posters):
                began = time.perf_counter()
                assert c.get("/api/health").status_code == 200
                worst = max(worst, time.perf_counter() - began)
                time.sleep(0.05)
        for t in posters:
            t.join()
        assert sorted(results) == [422, 422, 422, 422], results
        # bounded, not tight: the machine may be shared; before the fix one such POST stopped health for 90 s
        assert worst < 2.5, worst
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_request_limit_comes_from_the_configuration(runtime: Runtime) -> None:
    runtime.config.server = {"insecure_no_auth": True}
    runtime.config.limits = Limits(request_bytes=5_000)
    with TestClient(create_app(runtime), base_url="http://127.0.0.1") as c:
        assert c.post("/api/pipelines", json={"yaml": "x" * 6_000}).status_code == 413
        r = c.post("/api/pipelines", json={"yaml": HEAD + "  - {id: a, type: run, command: 'true'}\n"})
        assert r.status_code == 201, r.text
        assert c.get("/api/health").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        "  - {id: a, type: " + "r" * 100_000 + "}\n",
        "  - {id: a, type: run, command: x, " + "k" * 100_000 + ": 1}\n",
        "  - {id: " + "i" * 100_000 + ", type: run, command: x}\n",
        "  - {id: a, type: run, command: x, a: 1, a: 2, " + "d" * 100_000 + ": 1, " + "d" * 100_000 + ": 2}\n",
        "  - {id: a, type: run, command: 'echo ${" + "z" * 100_000 + "}'}\n",
        "  - {id: a, type: run, command: x, when: '" + "q" * 3_000 + "'}\n",
    ],
    ids=short,
)
def test_messages_quoting_huge_values_stay_one_short_line(body: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        pipeline_from_text(HEAD + body, SCHEMAS, "p.yml")
    assert info.value.problems
    for p in info.value.problems:
        assert len(p.message) <= 300 and "\n" not in p.message, p.message[:400]


def test_a_burst_of_large_documents_takes_bounded_memory() -> None:
    """Six 1 MB-class documents parsed at once (as a burst of API submissions would be) cost about
    what two do: parses beyond two wait their turn (they hold the GIL anyway)."""
    script = """
import resource, threading
from gennaker.spec.pipeline import pipeline_from_text
from gennaker.stages import default_registry, stage_schemas
S = stage_schemas(default_registry())
t = "name: p\\napplication: a\\nstages:\\n  - {id: a, type: run, command: x, env: {" + ", ".join(
    f"k{i}: v" for i in range(60000)) + "}}\\n"
pipeline_from_text("name: p\\napplication: a\\nstages:\\n  - {id: a, type: run, command: x}\\n", S)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
threads = [threading.Thread(target=pipeline_from_text, args=(t, S)) for _ in range(6)]
for th in threads: th.start()
for th in threads: th.join()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    grown_mb = int(r.stdout.strip())
    assert grown_mb < 250, grown_mb  # unbounded: about 350 MB


def test_a_million_spaces_after_an_open_expression() -> None:
    """Over the default 1 MB it is refused by size; with a larger limit the scan itself is linear."""
    text = unterminated_command(1_000_000)
    with pytest.raises(ValidationFailed, match="larger than 1,000,000 bytes"):
        pipeline_from_text(text, SCHEMAS, "p.yml")
    began = time.perf_counter()
    with pytest.raises(ValidationFailed) as info:
        pipeline_from_text(text, SCHEMAS, "p.yml", Limits(document_bytes=2_000_000))
    assert time.perf_counter() - began < 1.0
    [problem] = info.value.problems
    assert problem.message.startswith("unterminated expression '${") and problem.line == 4, problem
