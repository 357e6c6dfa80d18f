from __future__ import annotations

import pytest

from gennaker.cloud import naming


def test_cluster_and_server_group_names() -> None:
    assert naming.cluster_name("shop") == "shop"
    assert naming.cluster_name("shop", "web") == "shop-web"
    assert naming.cluster_name("shop", "web", "blue") == "shop-web-blue"
    assert naming.cluster_name("shop", "", "blue") == "shop--blue"
    assert naming.server_group_name("shop-web", 3) == "shop-web-v003"
    with pytest.raises(ValueError):
        naming.cluster_name("shop", "we-b")


def test_parse_round_trips() -> None:
    n = naming.parse("shop-web-canary-eu-v012")
    assert (n.application, n.stack, n.detail, n.version) == ("shop", "web", "canary-eu", 12)
    assert n.cluster == "shop-web-canary-eu" and n.server_group == "shop-web-canary-eu-v012"
    assert naming.parse("shop").version is None
    assert naming.parse("shop--blue-v001").detail == "blue"
    assert naming.cluster_of("shop-web-v001") == "shop-web"
    assert not naming.in_cluster("shop-web-canary-v001", "shop-web")
    assert naming.in_cluster("shop-web-v001", "shop-web")


def test_next_version_continues_and_wraps() -> None:
    assert naming.next_server_group([], "shop-web") == "shop-web-v001"
    names = ["shop-web-v001", "shop-web-v004", "shop-web-canary-v009", "other-v050"]
    assert naming.next_server_group(names, "shop-web") == "shop-web-v005"
    assert naming.next_version(["shop-web-v999"], "shop-web") == 0
    assert naming.next_version(["shop-web-v999", "shop-web-v000", "shop-web-v001"], "shop-web") == 2
