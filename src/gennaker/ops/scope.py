"""What a collector works in: one account and one region, with clients from the shared sessions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gennaker.cloud.aws.session import AwsClient, AwsSessions
from gennaker.errors import CloudError
from gennaker.ops.model import Resource, jsonable, tag_dict
from gennaker.ops.registry import ResourceType
from gennaker.ops.settings import OpsSettings


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@dataclass(frozen=True)
class Scope:
    sessions: AwsSessions
    settings: OpsSettings
    account: str
    account_id: str
    region: str  # the region API calls go to
    stored_region: str  # the region resources are filed under ("global" for global services)

    def client(self, service: str) -> AwsClient:
        return self.sessions.client(self.account, self.region, service)

    def arn(self, template: str, rid: str) -> str:
        return template.format(partition=partition(self.region), region=self.region, account_id=self.account_id, id=rid)

    def resource(
        self,
        rtype: str,
        rid: str,
        *,
        arn: str | None = None,
        name: str | None = None,
        tags: Any = None,
        attrs: dict[str, Any] | None = None,
        region: str | None = None,
    ) -> Resource:
        tagd = tag_dict(tags)
        return Resource(
            rtype,
            self.account,
            region or self.stored_region,
            rid,
            arn,
            name or tagd.get("Name"),
            tagd,
            jsonable(attrs or {}),
        )

    def from_item(self, rt: ResourceType, item: dict[str, Any]) -> Resource:
        item = dict(item)
        tags = item.pop(rt.tags_field, None) if rt.tags_field else None
        rid = str(item[rt.id_field]).removeprefix(rt.id_prefix)
        arn: str | None = None
        if rt.arn and rt.arn.startswith("@"):
            arn = str(item.get(rt.arn[1:]) or "") or None
        elif rt.arn:
            arn = self.arn(rt.arn, rid)
        name = str(item[rt.name_field]) if rt.name_field and item.get(rt.name_field) else None
        return self.resource(rt.name, rid, arn=arn, name=name, tags=tags, attrs=item)


def list_items(client: AwsClient, operation: str, key: str, **params: Any) -> Iterator[Any]:
    """Every item of a list call: through its paginator when botocore has one, else one call."""
    if client.raw.can_paginate(operation):
        yield from client.paginate(operation, key, **params)
    else:
        yield from getattr(client, operation)(**params).get(key, [])


def optional(call: Any, *absent: str, **kwargs: Any) -> Any:
    """Call an API whose 'not configured' answer is an error code (S3, IAM); None means not configured."""
    try:
        return call(**kwargs)
    except CloudError as exc:
        if exc.code in absent:
            return None
        raise


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
