"""Organizations discovery: member accounts found through the management account, reached by role.

Configured with ``ops.organization`` (see settings). Each ACTIVE member not already configured (by
account id) becomes an account named ``org-<id>`` that assumes ``arn:aws:iam::<id>:role/<role_name>``
with the management account's credentials, endpoint and regions.
"""

from __future__ import annotations

from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops.collect import account_id, global_region
from gennaker.ops.settings import OpsSettings
from gennaker.spec.config import Account


def discover_accounts(sessions: AwsSessions, settings: OpsSettings) -> list[str]:
    """Add the organization's member accounts to ``sessions.config``; return the names added."""
    org = settings.organization
    if org is None:
        return []
    cfg = sessions.config
    mgmt = cfg.account(org.management_account)
    region = global_region(mgmt.regions)
    known_ids = {a.account_id for a in cfg.accounts.values() if a.account_id}
    known_ids.add(account_id(sessions, org.management_account, region))
    client = sessions.client(org.management_account, region, "organizations")
    added: list[str] = []
    for member in client.paginate("list_accounts", "Accounts"):
        aid = member["Id"]
        if member.get("Status") != "ACTIVE" or aid in known_ids or aid in org.exclude:
            continue
        name = f"org-{aid}"
        cfg.accounts[name] = Account(
            regions=org.regions or list(mgmt.regions),
            profile=mgmt.profile,
            role_arn=f"arn:aws:iam::{aid}:role/{org.role_name}",
            endpoint_url=mgmt.endpoint_url,
            account_id=aid,
            dr_region=mgmt.dr_region,
            aws_access_key_id=mgmt.aws_access_key_id,
            aws_secret_access_key=mgmt.aws_secret_access_key,
        )
        added.append(name)
    return added
