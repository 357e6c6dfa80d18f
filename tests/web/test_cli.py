"""``gennaker users`` and ``gennaker tokens``, locally and against a server with a token."""

from __future__ import annotations

import json
from typing import Any

import yaml
from typer.testing import CliRunner

from gennaker.cli import app
from gennaker.web.security import verify_password

from .conftest import Server


def test_users_add_prints_a_config_entry() -> None:
    r = CliRunner().invoke(
        app,
        ["users", "add", "bob", "-r", "shop:operator", "-r", "release-managers", "--password-stdin"],
        input="s3cret-pass\n",
    )
    assert r.exit_code == 0, r.output
    entry = yaml.safe_load(r.stdout[r.stdout.index("bob:") :])
    assert entry["bob"]["roles"] == ["shop:operator", "release-managers"]
    assert verify_password(entry["bob"]["password_hash"], "s3cret-pass")
    assert not verify_password(entry["bob"]["password_hash"], "other")


def test_tokens_on_the_local_database(tmp_path: Any) -> None:
    db = str(tmp_path / "t.db")
    runner = CliRunner()
    r = runner.invoke(app, ["--db", db, "--user", "ops", "tokens", "create", "ci", "-r", "shop:viewer", "--json"])
    assert r.exit_code == 0, r.output
    token = json.loads(r.stdout)
    # Without an auth: section a server knows one user, its local admin: the token is the admin's
    # (a token for "ops" would be refused there), made by ops.
    assert token["token"].startswith("gk_") and token["user"] == "admin"
    listed = json.loads(runner.invoke(app, ["--db", db, "tokens", "list", "--json"]).stdout)
    assert [t["id"] for t in listed] == [token["id"]] and "token" not in listed[0]
    assert runner.invoke(app, ["--db", db, "tokens", "revoke", token["id"]]).exit_code == 0
    listed = json.loads(runner.invoke(app, ["--db", db, "tokens", "list", "--json"]).stdout)
    assert listed[0]["revoked_at"] is not None


def test_tokens_through_the_server(server: Server) -> None:
    runner = CliRunner()
    remote = ["--server", server.url, "--token", server.tokens["rita"]]
    r = runner.invoke(app, [*remote, "tokens", "create", "rita-ci", "--json"])
    assert r.exit_code == 0, r.output
    made = json.loads(r.stdout)
    assert made["user"] == "rita" and set(made["roles"]) == {"shop:operator", "release-managers"}
    # The new token works for the CLI's other commands against the server.
    r = runner.invoke(app, ["--server", server.url, "--token", made["token"], "pipelines", "list"])
    assert r.exit_code == 0, r.output
    assert "demo" in r.stdout
    assert runner.invoke(app, [*remote, "tokens", "revoke", made["id"]]).exit_code == 0
    r = runner.invoke(app, ["--server", server.url, "--token", made["token"], "pipelines", "list"])
    assert r.exit_code != 0
    # Without a token the server refuses the CLI.
    r = runner.invoke(app, ["--server", server.url, "tokens", "list"])
    assert r.exit_code != 0
