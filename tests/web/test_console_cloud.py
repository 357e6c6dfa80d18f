"""The CLUSTERS, TASKS and READINESS tabs in a real browser, against the sandbox (simulated AWS
seeded with ``shop``): an operator resizes a server group and watches the task succeed; a viewer sees
no actions and is refused; the readiness tab shows the stored audit's scores."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gennaker.cloud.aws.provider import AwsProvider
from gennaker.ops.service import audit_and_store
from gennaker.ops.settings import ops_settings
from gennaker.runtime import build_runtime
from gennaker.sandbox import Sandbox, start_sandbox
from gennaker.sandbox.server import ACCOUNT, REGIONS
from gennaker.spec.config import config_from_text
from gennaker.web import store

from .conftest import ARTIFACTS, CHROMIUM, USERS, Server, auth_config, serve

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
REGION = REGIONS[0]
GROUP = "shop-web-v001"  # the sandbox's serving server group: capacity 2/2/4


@pytest.fixture(scope="module")
def sandbox(moto_server: str) -> Iterator[Sandbox]:
    # moto keeps its state per process, shared by every moto server in it: clear what earlier tests
    # left (the session's server answers the reset for all) so the sandbox can seed ``shop`` afresh.
    httpx.post(f"{moto_server}/moto-api/reset", timeout=30).raise_for_status()
    box = start_sandbox(audit_examples=False)
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture(scope="module")
def server(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Overrides conftest's: the console on the sandbox's accounts, access control on."""
    config = config_from_text(sandbox.config_text).model_copy(update={"auth": auth_config().auth})
    rt = build_runtime(str(tmp_path_factory.mktemp("cloud-console") / "gennaker.db"), config=config)
    tokens = {
        user: store.create_token(rt.db, f"{user}-test", user, roles, "fixture")["token"]
        for user, roles in USERS.items()
    }
    for url in serve(rt):
        yield Server(url=url, runtime=rt, tokens=tokens)
    rt.db.dispose()


def provider(server: Server) -> AwsProvider:
    return AwsProvider(server.runtime.services.aws, ACCOUNT, REGION)


def test_operator_resizes_a_server_group(login: Any, server: Server) -> None:
    page = login("rita")
    page.goto(f"{server.url}/applications/shop/clusters")
    row = page.locator(f"[data-testid=server-group][data-name='{GROUP}']")
    assert row.locator("[data-testid=capacity]").inner_text() == "2 / 2 / 4"
    assert row.locator("[data-testid=state]").inner_text() == "enabled"
    # Destroy asks first, on a page of its own; cancelling it changes nothing.
    row.locator("[data-testid=destroy]").click()
    sync_api.expect(page.locator("[data-testid=destroy-confirm]")).to_contain_text(GROUP)
    assert page.locator("[data-testid=confirm]").get_attribute("required") is not None
    page.click("text=Cancel")
    page.wait_for_url(re.compile(r"/applications/shop/clusters$"))

    row = page.locator(f"[data-testid=server-group][data-name='{GROUP}']")
    row.locator("[data-testid=resize]").click()
    form = row.locator("[data-testid=resize-form]")
    form.locator("input[name=min]").fill("1")
    form.locator("input[name=desired]").fill("1")
    form.locator("input[name=max]").fill("3")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/executions/[0-9a-f]+$"))
    task_id = page.url.rsplit("/", 1)[1]
    assert "task:resize_server_group" in page.text_content("#execution")
    # The page follows the task live (server-sent events) until it has succeeded.
    sync_api.expect(page.locator("[data-testid=execution]")).to_have_attribute(
        "data-status", "SUCCEEDED", timeout=30_000
    )
    group = provider(server).get_server_group(GROUP)
    assert group is not None and group.capacity.as_dict() == {"min": 1, "max": 3, "desired": 1}

    # TASKS lists it with who and the target; PIPELINES (even the flat list) does not.
    page.goto(f"{server.url}/applications/shop/tasks")
    task = page.locator(f"[data-testid=task-row][data-execution='{task_id}']")
    assert task.get_attribute("data-status") == "SUCCEEDED"
    assert task.get_attribute("data-type") == "resize_server_group"
    assert "rita" in task.inner_text() and GROUP in task.inner_text()
    page.screenshot(path=str(ARTIFACTS / "console-tasks.png"), full_page=True)
    page.goto(f"{server.url}/applications/shop/pipelines?group=0")
    assert page.locator("[data-testid=execution-row]").count() == 0
    page.goto(f"{server.url}/applications/shop/clusters")
    assert (
        page.locator(f"[data-testid=server-group][data-name='{GROUP}'] [data-testid=capacity]").inner_text()
        == "1 / 1 / 3"
    )
    page.screenshot(path=str(ARTIFACTS / "console-clusters.png"), full_page=True)
    assert not [e for e in page.csp_errors if "Content Security Policy" in e]


def test_bad_requests_come_back_with_the_reason(login: Any, server: Server) -> None:
    page = login("olga")
    page.goto(f"{server.url}/applications/shop/clusters")
    csrf = json.loads(page.get_attribute("body", "hx-headers"))["X-CSRF-Token"]
    base = f"{server.url}/applications/shop/server_groups"
    cases = [
        (f"{base}/shop-web-v999/disable", {"account": ACCOUNT, "region": REGION}, "not found"),
        (f"{base}/{GROUP}/disable", {"account": ACCOUNT, "region": "mars-1"}, "mars-1"),
        (
            f"{base}/{GROUP}/resize",
            {"account": ACCOUNT, "region": REGION, "min": "3", "desired": "1", "max": "4"},
            "capacity needs min",
        ),
        (f"{base}/{GROUP}/destroy", {"account": ACCOUNT, "region": REGION}, "confirmation"),
    ]
    for url, form, reason in cases:
        r = page.request.post(url, form={"csrf_token": csrf, **form})
        assert r.ok, r.status  # a redirect (followed) back to a page that says why
        assert reason in r.text(), (url, r.url)
    group = provider(server).get_server_group(GROUP)
    assert group is not None and group.enabled  # nothing was started


def test_viewer_sees_no_actions_and_is_refused(login: Any, server: Server) -> None:
    page = login("vic")
    page.goto(f"{server.url}/applications/shop/clusters")
    assert page.locator("[data-testid=server-group]").count() >= 1
    for action in ("enable", "disable", "resize", "destroy", "rollback"):
        assert page.locator(f"[data-testid={action}]").count() == 0, action
    # With a valid session and CSRF token, the post is refused for the role alone.
    csrf = json.loads(page.get_attribute("body", "hx-headers"))["X-CSRF-Token"]
    r = page.request.post(
        f"{server.url}/applications/shop/server_groups/{GROUP}/disable",
        form={"csrf_token": csrf, "account": ACCOUNT, "region": REGION},
        max_redirects=0,
    )
    assert r.status == 403
    assert "operator" in r.text()
    r = page.request.post(
        f"{server.url}/applications/shop/clusters/shop-web/rollback",
        form={"csrf_token": csrf, "account": ACCOUNT, "region": REGION},
        max_redirects=0,
    )
    assert r.status == 403
    group = provider(server).get_server_group(GROUP)
    assert group is not None and group.enabled


def test_readiness_shows_the_stored_audit(login: Any, server: Server) -> None:
    page = login("vic")
    page.goto(f"{server.url}/applications/shop/readiness")
    assert "No audit has been stored yet" in page.text_content("[data-testid=readiness]")
    rt = server.runtime
    # Two checks keep the audit short; both look at the shop's auto scaling group.
    audit_and_store(
        rt.db,
        rt.services.aws,
        ops_settings(rt.config.ops),
        checks=["ha.ec2.multi_az", "ha.asg.*"],
        accounts=[ACCOUNT],
        regions=[REGION],
    )
    page.reload()
    score = float(page.text_content("[data-testid=score]") or "nan")
    assert 0 <= score <= 100
    assert "tagged with shop" in page.text_content("[data-testid=scope-note]")
    pillars = page.locator("[data-testid=pillars] tbody tr")
    assert pillars.count() == 4
    assert page.locator("[data-testid=pillars] tr[data-pillar=ha]").is_visible()
    failing = page.locator("[data-testid=failing] tbody tr[data-check]")
    assert failing.count() >= 1 and GROUP in failing.first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "console-readiness.png"), full_page=True)


def test_cloud_views_hold_only_the_applications_resources(server: Server) -> None:
    """``shopping-db`` belongs to another application (``shopping``), not to ``shop``: a viewer of shop
    must not see it on shop's tabs; another application's tabs are refused outright."""
    ec2 = provider(server).ec2
    vpc = ec2.describe_security_groups(GroupNames=["shop-web"])["SecurityGroups"][0]["VpcId"]
    ec2.create_security_group(GroupName="shopping-db", Description="another application's", VpcId=vpc)
    with server.api("vic") as c:
        groups = c.get("/api/applications/shop/security_groups")
        assert groups.status_code == 200
        names = {g["name"] for g in groups.json()}
        assert {"shop-lb", "shop-web"} <= names and "shopping-db" not in names
        assert "shopping-db" not in c.get("/applications/shop/securitygroups").text
        assert c.get("/api/applications/shopping/security_groups").status_code == 403
    with server.api("alice") as c:
        assert "shopping-db" in {g["name"] for g in c.get("/api/applications/shopping/security_groups").json()}
