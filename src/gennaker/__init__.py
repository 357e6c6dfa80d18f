"""Gennaker: continuous delivery and operations readiness for AWS."""

__version__ = "0.1.0"
