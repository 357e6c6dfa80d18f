"""The sample application ``shop`` in simulated AWS, and the canary metrics the sandbox publishes for
it (it has no traffic of its own). Building it is AWS SDK work, so it lives in the AWS provider's
package (``gennaker.cloud.aws.shop``); the sandbox and its tests import it from here."""

from gennaker.cloud.aws.shop import (
    APPLICATION,
    READINESS_TAGS,
    SEED_EXECUTION,
    CanaryMetrics,
    Profile,
    ShopWorld,
    bad_release,
    good_release,
    seed_shop,
)

__all__ = [
    "APPLICATION",
    "READINESS_TAGS",
    "SEED_EXECUTION",
    "CanaryMetrics",
    "Profile",
    "ShopWorld",
    "bad_release",
    "good_release",
    "seed_shop",
]
