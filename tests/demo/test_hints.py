"""Every ``gennaker …`` command the console's templates tell a new user to run exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gennaker.cli import app

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "gennaker" / "web" / "templates"
HINT = re.compile(r"<code>gennaker ([^<]*)</code>")


def hints() -> list[tuple[str, str]]:
    found = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        for match in HINT.finditer(template.read_text()):
            found.append((template.name, match.group(1).strip()))
    return found


def test_the_templates_name_commands() -> None:
    assert ("readiness.html", "audit") in hints()


@pytest.mark.parametrize(("template", "hint"), hints())
def test_each_hinted_command_exists(template: str, hint: str) -> None:
    # The command words: up to the first argument a user fills in (file.yml, an id, an option).
    words = []
    for word in hint.split():
        if word.startswith("-") or "." in word or "<" in word or "{" in word:
            break
        words.append(word)
    r = CliRunner().invoke(app, [*words, "--help"])
    assert r.exit_code == 0, f"{template}: `gennaker {hint}` is not a command: {r.output[-500:]}"
