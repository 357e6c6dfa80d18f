"""Fixtures of the canary tests: the local provider's real HAProxy and processes (tests/local)."""

from tests.local.conftest import haproxy, haproxy_binary, instances, lb_spec

__all__ = ["haproxy", "haproxy_binary", "instances", "lb_spec"]
