"""Simulated AWS (moto's server, loopback only) seeded with the sample application ``shop``."""

from gennaker.sandbox.seed import ShopWorld, seed_shop
from gennaker.sandbox.server import Sandbox, start_sandbox

__all__ = ["Sandbox", "ShopWorld", "seed_shop", "start_sandbox"]
