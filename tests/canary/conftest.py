"""Fixtures of the canary tests: the local provider's real HAProxy and processes (tests/local), and
simulated AWS with the seeded shop (tests/cloud)."""

from tests.cloud.conftest import config, provider, services, sessions, world
from tests.local.conftest import haproxy, haproxy_binary, instances, lb_spec

__all__ = ["config", "haproxy", "haproxy_binary", "instances", "lb_spec", "provider", "services", "sessions", "world"]
