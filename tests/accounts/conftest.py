"""Accounts fixtures: an organization built by the test in simulated AWS (moto in server mode): the
management account (the payer, in gennaker.yml) with OUs prod/web and dev-apps, a member tagged
``environment=production``, a member whose environment comes from its OU, and an account of
gennaker.yml outside the organization whose role cannot be assumed (nothing listens at its endpoint).
An audit is run and stored, so the view's regions, applications and scores come from the store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from gennaker.cli import run
from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops.service import audit_and_store
from gennaker.ops.settings import ops_settings
from gennaker.spec.config import load_config
from gennaker.store.db import open_database
from tests.conftest import free_port

PAYER = "123456789012"  # moto's default account: the organization's management account
CHECKS = ["ha.eip.unassociated", "golive.account.organization"]


@dataclass
class Org:
    dir: Path
    endpoint: str
    shop_prod: str  # member ids
    cart_dev: str
    dead_port: int

    @property
    def db(self) -> str:
        return str(self.dir / "accounts.db")

    @property
    def config(self) -> Path:
        return self.dir / "gennaker.yml"

    def config_text(self, organization: bool = True) -> str:
        text = (
            "accounts:\n"
            f"  payer:\n    regions: [us-east-1, eu-west-1]\n    endpoint_url: {self.endpoint}\n"
            f"  legacy:\n    regions: [eu-west-1]\n    account_id: '999999999999'\n"
            f"    role_arn: arn:aws:iam::999999999999:role/Gennaker\n"
            f"    endpoint_url: http://127.0.0.1:{self.dead_port}\n"
        )
        if organization:
            text += "ops:\n  organization: {management_account: payer}\n"
        return text


def _client(endpoint: str, service: str, creds: dict[str, str] | None = None) -> Any:
    keys = (
        {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        }
        if creds
        else {}
    )
    return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint, **keys)


def _tagged_eip(ec2: Any, app: str) -> None:
    ec2.allocate_address(
        Domain="vpc",
        TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": [{"Key": "gennaker:application", "Value": app}]}],
    )


@pytest.fixture
def org(moto_endpoint: str, tmp_path: Path) -> Org:
    o = _client(moto_endpoint, "organizations")
    o.create_organization(FeatureSet="ALL")
    root = o.list_roots()["Roots"][0]["Id"]
    prod = o.create_organizational_unit(ParentId=root, Name="prod")["OrganizationalUnit"]["Id"]
    web = o.create_organizational_unit(ParentId=prod, Name="web")["OrganizationalUnit"]["Id"]
    dev = o.create_organizational_unit(ParentId=root, Name="dev-apps")["OrganizationalUnit"]["Id"]
    shop = o.create_account(
        Email="shop@example.com", AccountName="shop-prod", Tags=[{"Key": "environment", "Value": "production"}]
    )["CreateAccountStatus"]["AccountId"]
    cart = o.create_account(Email="cart@example.com", AccountName="cart-dev")["CreateAccountStatus"]["AccountId"]
    o.move_account(AccountId=shop, SourceParentId=root, DestinationParentId=web)
    o.move_account(AccountId=cart, SourceParentId=root, DestinationParentId=dev)
    _tagged_eip(_client(moto_endpoint, "ec2"), "shop")  # the payer's own: application shop
    creds = _client(moto_endpoint, "sts").assume_role(
        RoleArn=f"arn:aws:iam::{cart}:role/OrganizationAccountAccessRole", RoleSessionName="setup"
    )["Credentials"]
    _tagged_eip(_client(moto_endpoint, "ec2", creds), "cart")
    setup = Org(tmp_path, moto_endpoint, shop, cart, free_port())
    setup.config.write_text(setup.config_text())
    return setup


@pytest.fixture
def audited(org: Org) -> Org:
    """A stored audit of the payer and the organization's members (the unreachable account left out:
    collecting it would only wait on its endpoint)."""
    cfg = load_config(str(org.config))
    sessions = AwsSessions(cfg, max_attempts=2)
    db = open_database(org.db)
    settings = ops_settings(cfg.ops)
    from gennaker.ops.organization import discover_accounts

    members = discover_accounts(sessions, settings)
    audit_and_store(db, sessions, settings, checks=CHECKS, accounts=["payer", *members], source="test")
    db.dispose()
    return org


@pytest.fixture
def cli(org: Org, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """The whole ``gennaker`` command line in this process: exit code, stdout, stderr."""

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = run(["--db", org.db, "--config", str(org.config), *args])
        out, err = capsys.readouterr()
        return rc, out, err

    return invoke
