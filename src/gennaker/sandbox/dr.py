"""Shop's DR site in the sandbox's second region. Building it is AWS SDK work, so it lives in the AWS
provider's package (``gennaker.cloud.aws.dr_site``); the sandbox and its tests import it from here."""

from gennaker.cloud.aws.dr_site import DOMAIN, DrSite, seed_dr

__all__ = ["DOMAIN", "DrSite", "seed_dr"]
