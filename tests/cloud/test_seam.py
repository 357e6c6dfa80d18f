"""The provider seam holds: only ``cloud/<provider>/`` builds a provider or calls a cloud SDK, the
cloud layer does not import the stages, and a deploy's provider fields are checked by the model of
its account's kind, with their position, when the document is loaded."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gennaker.cloud import registry
from gennaker.cloud.tasks import bind_schemas
from gennaker.errors import ValidationFailed
from gennaker.spec.config import config_from_text
from gennaker.spec.pipeline import pipeline_from_text
from gennaker.stages import default_registry, stage_schemas

SRC = Path(__file__).resolve().parents[2] / "src" / "gennaker"
# Where a cloud SDK may be called: the AWS provider, and the audit's own AWS collectors (ops/).
SDK_ALLOWED = ("cloud/aws/", "ops/")
# Known exception, outside this seam's owner: the CloudWatch metric source builds its own client.
SDK_EXCEPTIONS = {"metrics/sources.py"}
SDK_CALL = re.compile(r"\bAwsProvider\(|\bLocalProvider\(|^\s*(import|from) (boto3|botocore)\b|\.client\(", re.M)


def _sources() -> list[tuple[str, str]]:
    return [(p.relative_to(SRC).as_posix(), p.read_text()) for p in sorted(SRC.rglob("*.py"))]


def test_only_provider_packages_build_providers_or_call_an_sdk() -> None:
    offenders = [
        f"{rel}: {m.group(0).strip()}"
        for rel, text in _sources()
        if not rel.startswith(SDK_ALLOWED) and not rel.startswith("cloud/local/") and rel not in SDK_EXCEPTIONS
        for m in SDK_CALL.finditer(text)
        # the registry is the one place that builds providers (through their factories)
        if not (rel == "cloud/registry.py" and "Provider(" in m.group(0))
    ]
    assert offenders == []


def test_the_check_can_fail() -> None:
    assert SDK_CALL.search("    return AwsProvider(aws, name, region)\n")
    assert SDK_CALL.search("import boto3\n")
    assert SDK_CALL.search('ec2 = sessions.client(account, region, "ec2")')


def test_cloud_does_not_import_stages() -> None:
    offenders = [
        rel
        for rel, text in _sources()
        if rel.startswith("cloud/") and re.search(r"^\s*(from|import) gennaker\.stages\b", text, re.M)
    ]
    assert offenders == []


def test_every_account_kind_has_a_provider() -> None:
    from typing import get_args

    from gennaker.spec.config import Account

    kinds = set(get_args(Account.model_fields["kind"].annotation))
    assert kinds <= set(registry.PROVIDERS), f"kinds without a provider: {kinds - set(registry.PROVIDERS)}"


CONFIG = """
accounts:
  prod: {regions: [us-east-1]}
  multi: {regions: [us-east-1, eu-west-1]}
"""

DEPLOY = """name: p
application: shop
stages:
  - id: deploy
    type: deploy
    account: {account}
    stack: web
    image: ami-1
    capacity: {{min: 1, max: 1, desired: 1}}
{extra}"""


def _load(account: str, extra: str, config: str = CONFIG) -> object:
    schemas = bind_schemas(stage_schemas(default_registry()), config_from_text(config))
    return pipeline_from_text(DEPLOY.format(account=account, extra=extra), schemas, "p.yml")


def test_aws_fields_are_checked_by_the_aws_model_with_positions() -> None:
    pipeline = _load("prod", "    instance_type: t3.small\n    subnets: [subnet-1]\n")
    stage = pipeline.stages[0]  # type: ignore[attr-defined]
    assert stage.region == "us-east-1"  # the account's only region
    assert stage.model_extra == {"instance_type": "t3.small", "subnets": ["subnet-1"]}
    with pytest.raises(ValidationFailed) as err:
        _load("prod", "    instance_type: t3.small\n    command: python3 app.py\n    subnets: nope\n")
    assert [str(p) for p in err.value.problems] == [
        "p.yml:11:5: unknown field 'command'",
        "p.yml:12:5: subnets: Input should be a valid list",
    ]
    with pytest.raises(ValidationFailed) as err:
        _load("prod", "    subnets: [subnet-1]\n")
    assert [str(p) for p in err.value.problems] == ["p.yml:4:5: missing required field 'instance_type'"]


def test_a_region_must_be_named_for_an_account_with_several() -> None:
    with pytest.raises(ValidationFailed) as err:
        _load("multi", "    instance_type: t3.small\n")
    assert [str(p) for p in err.value.problems] == ["p.yml:4:5: missing required field 'region'"]


def test_unbound_a_field_no_provider_knows_is_still_refused() -> None:
    schemas = stage_schemas(default_registry())
    with pytest.raises(ValidationFailed) as err:
        pipeline_from_text(DEPLOY.format(account="x", extra="    instance_typo: t3.small\n"), schemas, "p.yml")
    assert [str(p) for p in err.value.problems] == ["p.yml:10:5: unknown field 'instance_typo'"]


def test_gennaker_validate_names_a_wrong_field_for_the_kind(tmp_path: Path) -> None:
    (tmp_path / "gennaker.yml").write_text(CONFIG)
    doc = tmp_path / "p.yml"
    doc.write_text(DEPLOY.format(account="prod", extra="    instance_type: t3.small\n    command: run\n"))
    proc = subprocess.run(
        [sys.executable, "-m", "gennaker", "--config", str(tmp_path / "gennaker.yml"), "validate", str(doc)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{doc}:11:5: unknown field 'command'" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


LOCAL_CONFIG = """
accounts:
  laptop:
    kind: local
    load_balancers:
      shop-web: {listen: "127.0.0.1:8088", health: {path: /up, interval: 1s, timeout: 5s}}
"""

# The contract of issue 9 for a local deploy, as written there.
LOCAL_DOCUMENT = """name: shop-local
application: shop
parameters: [{name: version, required: true}]
stages:
  - id: bake
    type: bake
    account: laptop
    source: ./app                    # a directory (relative to the pipeline file), packaged immutably
    version: "${trigger.params.version}"
  - id: deploy
    type: deploy
    requires: [bake]
    account: laptop
    stack: web                       # cluster shop-web, server groups shop-web-v001, …
    image: "${stages.bake.outputs.image_id}"
    command: "python3 app.py"        # run in the unpacked artifact; each instance gets its port in $PORT
    env: {APP_VERSION: "${trigger.params.version}"}
    capacity: {min: 2, max: 2, desired: 2}
    load_balancers: [shop-web]
    strategy: red_black
"""


def _validate(tmp_path: Path, config: str, document: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "gennaker.yml").write_text(config)
    (tmp_path / "p.yml").write_text(document)
    return subprocess.run(
        [sys.executable, "-m", "gennaker", "--config", str(tmp_path / "gennaker.yml"), "validate", "p.yml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def test_validate_accepts_the_local_deploy_document(tmp_path: Path) -> None:
    proc = _validate(tmp_path, LOCAL_CONFIG, LOCAL_DOCUMENT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok p.yml: pipeline 'shop-local' with 2 stages" in proc.stdout


def test_validate_refuses_an_aws_field_on_a_local_account(tmp_path: Path) -> None:
    document = LOCAL_DOCUMENT + "    instance_type: t3.small\n"
    proc = _validate(tmp_path, LOCAL_CONFIG, document)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "p.yml:21:5: unknown field 'instance_type'" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    # and the other way round: a local field on an AWS account
    proc = _validate(tmp_path, CONFIG.replace("prod:", "laptop:"), LOCAL_DOCUMENT)
    assert proc.returncode == 2
    out = proc.stdout + proc.stderr
    assert "p.yml:8:5: unknown field 'source'" in out and "p.yml:16:5: unknown field 'command'" in out


def test_an_aws_only_find_image_field_is_refused_on_a_local_account() -> None:
    schemas = bind_schemas(stage_schemas(default_registry()), config_from_text(LOCAL_CONFIG))
    document = (
        "name: p\napplication: shop\nstages:\n"
        "  - {id: find, type: find_image, account: laptop, image_name: 'shop-*', owners: [amazon]}\n"
    )
    with pytest.raises(ValidationFailed) as err:
        pipeline_from_text(document, schemas, "p.yml")
    assert [str(p) for p in err.value.problems] == ["p.yml:4:73: unknown field 'owners'"]
    ok = pipeline_from_text(document.replace(", owners: [amazon]", ""), schemas, "p.yml")
    assert ok.stages[0].region == "local"  # type: ignore[attr-defined]
