"""``gennaker accounts list|show`` against an organization in simulated AWS: the tree, the payer,
environments from a tag and from an OU, an unreachable account shown with its reason (exit 0), and
the stored audit's regions, applications and per-account scores."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from gennaker.ops import store
from gennaker.ops.accounts import OU_ENVIRONMENTS, ou_environment
from gennaker.store.db import open_database
from tests.accounts.conftest import PAYER, Org

Cli = Callable[..., tuple[int, str, str]]


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in data["accounts"]}


def test_list_shows_the_tree_the_payer_and_who_is_reachable(
    audited: Org, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one row a line: the table is read back below
    started = time.monotonic()
    rc, out, err = cli("accounts", "list", "--format", "json")
    took = time.monotonic() - started
    assert rc == 0, err
    data = json.loads(out)
    assert data["payer_id"] == PAYER and data["organization_error"] is None
    assert {u["path"] for u in data["units"]} == {"Root/prod", "Root/prod/web", "Root/dev-apps"}
    accounts = by_name(data)
    shop, cart = accounts[f"org-{audited.shop_prod}"], accounts[f"org-{audited.cart_dev}"]
    payer, legacy = accounts["payer"], accounts["legacy"]
    assert payer["payer"] and payer["account_id"] == PAYER and payer["ou_path"] == "Root"
    assert payer["org_name"] == "master" and payer["configured"]
    assert not shop["payer"] and not shop["configured"]
    assert (shop["ou_path"], shop["org_name"]) == ("Root/prod/web", "shop-prod")
    assert (shop["environment"], shop["environment_source"]) == ("production", "tag environment")
    assert (cart["environment"], cart["environment_source"]) == ("dev", "OU dev-apps")
    assert payer["environment"] is None  # Root, untagged, nothing configured: unknown, not guessed
    assert payer["reachable"] and shop["reachable"] and cart["reachable"]
    # the role of an account outside the organization cannot be assumed: listed, with the reason
    assert legacy["reachable"] is False and legacy["ou_path"] is None
    assert legacy["reach_error"].startswith("role arn:aws:iam::999999999999:role/Gennaker cannot be assumed: ")
    assert "EndpointConnectionError" in legacy["reach_error"]
    assert "\n" not in legacy["reach_error"] and "Traceback" not in out + err
    # stored facts: regions of the snapshot, applications by tag, the audit's per-account score
    assert payer["regions"] == ["eu-west-1", "us-east-1"] and payer["active_regions"] == ["us-east-1"]
    assert payer["applications"] == ["shop"] and cart["applications"] == ["cart"] and shop["applications"] == []
    latest = store.list_audits(open_database(audited.db), 1)[0]
    assert payer["audit_id"] == latest["id"] == cart["audit_id"]
    assert payer["score"] == 0.0 < shop["score"] == 100.0  # payer: idle EIP fails (high); shop passes
    assert legacy["audit_id"] is None and legacy["score"] is None
    assert took < 20, took  # the dead endpoint is tried twice, not through the whole back-off ladder

    rc, table, err = cli("accounts", "list")
    assert rc == 0, err
    assert "Root/prod/web" in table and "★" in table and "✓" in table and "✗" in table
    assert "not in the" in table


def test_show_gives_every_detail_and_an_unknown_name_is_one_line(audited: Org, cli: Cli) -> None:
    rc, out, err = cli("accounts", "show", "payer")
    assert rc == 0, err
    assert "shop" in out and "yes (management account)" in out and "score 0" in out
    rc, out, _ = cli("accounts", "show", audited.cart_dev, "--format", "json")  # by id
    assert rc == 0 and json.loads(out)["name"] == f"org-{audited.cart_dev}"
    rc, out, _ = cli("accounts", "show", "cart-dev", "--format", "json")  # by its name in the organization
    assert rc == 0 and json.loads(out)["account_id"] == audited.cart_dev
    rc, out, err = cli("accounts", "show", "legacy")
    assert rc == 0 and "no: " in out
    rc, out, err = cli("accounts", "show", "nope")
    assert rc == 4 and out == ""
    lines = [ln for ln in err.splitlines() if "werkzeug" not in ln and '"POST / HTTP' not in ln]
    assert len(lines) == 1 and "no account named or numbered 'nope'" in lines[0], err
    assert "Traceback" not in err


def test_without_an_organization_the_reason_is_shown(org: Org, cli: Cli) -> None:
    org.config.write_text(org.config_text(organization=False))
    rc, out, err = cli("accounts", "list", "--format", "json")
    assert rc == 0, err
    data = json.loads(out)
    assert "no organization configured" in data["organization_error"]
    assert sorted(by_name(data)) == ["legacy", "payer"]  # gennaker.yml's accounts still listed
    assert by_name(data)["payer"]["ou_path"] is None


def test_a_management_account_outside_any_organization(org: Org, cli: Cli, moto_endpoint: str) -> None:
    import httpx

    httpx.post(f"{moto_endpoint}/moto-api/reset", timeout=30).raise_for_status()  # no organization now
    rc, out, err = cli("accounts", "list")
    assert rc == 0, err
    assert "the organization could not be read" in out and "AWSOrganizationsNotInUseException" in out


def test_ou_naming_rule() -> None:
    assert ou_environment("Root/Workloads/Prod-EU", OU_ENVIRONMENTS) == ("prod", "Prod-EU")
    assert ou_environment("Root/qa/team-x", OU_ENVIRONMENTS) == ("qa", "qa")
    assert ou_environment("Root/shared", OU_ENVIRONMENTS) is None
    assert ou_environment("Root", OU_ENVIRONMENTS) is None
