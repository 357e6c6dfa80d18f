"""Start moto's server on the loopback interface and seed it; hand back the endpoint and a config."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import socket
from dataclasses import dataclass
from typing import Any

from gennaker.cloud.aws.session import AwsSessions
from gennaker.errors import ConfigError
from gennaker.sandbox.dr import DOMAIN, DrSite, seed_dr
from gennaker.sandbox.seed import ShopWorld, seed_shop
from gennaker.spec.config import config_from_text

ACCOUNT = "sandbox"
REGIONS = ("us-east-1", "us-west-2")
DR_REGION = REGIONS[1]  # where shop's copies are (gennaker.sandbox.dr): the audit's and the drills' DR region
# Static keys: moto accepts any; they only keep boto3 from looking for real credentials.
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
AUDIT_SEED_MODULE = "gennaker.ops.sandbox_seed"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check_port(port: int) -> None:
    """A port we can listen on, said in one line before moto starts (its thread would die quietly)."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"the sandbox port must be between 1 and 65535, not {port}")
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None


def config_text(endpoint: str, world: ShopWorld | None = None, dr: DrSite | None = None) -> str:
    """A ready ``gennaker.yml`` for the sandbox, with the seeded ids as comments for pipelines."""
    lines = [
        "# Gennaker configuration for the local sandbox (simulated AWS; nothing here is real).",
        "accounts:",
        f"  {ACCOUNT}:",
        f'    endpoint_url: "{endpoint}"',
        f"    regions: [{', '.join(REGIONS)}]",
        *([f"    dr_region: {dr.region}"] if dr is not None else []),
        f"    aws_access_key_id: {ACCESS_KEY}",
        f"    aws_secret_access_key: {SECRET_KEY}",
        "    max_attempts: 3  # simulated AWS answers 500 for APIs it lacks: do not back off for a minute",
    ]
    if world is not None:
        lines += [
            "# Seeded for the sample application 'shop':",
            f"#   vpc:            {world.vpc_id} (Name=shop; subnets tagged tier=app)",
            f"#   subnets:        [{', '.join(world.subnets)}]",
            f"#   security group: {world.security_groups['shop-web']} (shop-web)",
            f"#   target group:   {world.target_group_arn}",
            f"#   load balancer:  shop ({world.load_balancer_dns})",
            f"#   base image:     {world.base_image_id} (shop-base-ubuntu-22.04)",
            f"#   release image:  {world.release_image_id} (shop-1.0.0)",
            f"#   serving:        {world.server_group}",
        ]
    if dr is not None:
        lines += [
            f"# Its DR site in {dr.region}, for DR drills (gennaker dr drill shop) and the audit's DR checks:",
            f"#   image copy:     {dr.image_copy}; snapshot copies: {len(dr.snapshot_copies)}",
            f"#   load balancer:  shop-dr ({dr.load_balancer_dns}), warm standby {dr.standby_instance}",
            f"#   failover:       {DOMAIN} (zone {dr.zone_id}, health check {dr.health_check})",
        ]
    return "\n".join(lines) + "\n"


def _quiet_moto_server(port: int) -> Any:
    """moto's threaded server, minus the line it prints to stdout for every call to a service it
    does not simulate (the audit asks for some, e.g. ssm-incidents, and reports them UNKNOWN from
    the 500 it gets): the dispatcher answers exactly as moto's does, silently."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    class QuietDispatcher(DomainDispatcherApplication):
        def get_backend_for_host(self, host: str | None) -> Any:
            unknown = host is not None and "amazonaws.com" in host
            if unknown and not any(p.match(f"http://{host}") for _, p in self.backend_url_patterns):
                return None  # moto's answer for an unknown service, without its print()
            return super().get_backend_for_host(host)

    class QuietServer(ThreadedMotoServer):
        def _server_entry(self) -> None:  # moto's, with the quiet dispatcher
            self._server = make_server(self._ip_address, self._port, QuietDispatcher(create_backend_app), True)
            self._server_ready_event.set()
            self._server.serve_forever()

    return QuietServer(ip_address="127.0.0.1", port=port, verbose=False)


def _seed_audit_examples(sessions: AwsSessions, account: str, region: str) -> bool:
    """Seed the operations-readiness examples when that subsystem is installed."""
    if importlib.util.find_spec(AUDIT_SEED_MODULE) is None:
        return False
    module: Any = importlib.import_module(AUDIT_SEED_MODULE)
    module.seed_audit_examples(sessions, account, region)
    return True


@dataclass
class Sandbox:
    endpoint: str
    config_text: str
    world: ShopWorld
    server: Any
    audit_seeded: bool
    dr: DrSite | None = None

    def stop(self) -> None:
        self.server.stop()


def start_sandbox(port: int | None = None, audit_examples: bool = True, dr_site: bool | None = None) -> Sandbox:
    """Run simulated AWS on 127.0.0.1:``port`` (a free one when None) seeded with ``shop``, and with
    ``dr_site`` its copies and warm standby in the DR region (``dr_region`` in the config). By default
    the DR site comes with the audit examples: the full sandbox (``gennaker demo``, ``gennaker
    sandbox``) has both; the bare ``shop`` (``audit_examples=False``: the console's and the deploy
    bench's world) has neither, so what they measure and count is unchanged."""
    if dr_site is None:
        dr_site = audit_examples
    try:
        import moto.server  # noqa: F401  (the sandbox's one optional dependency)
    except ImportError as exc:
        raise ConfigError("the sandbox needs moto: pip install 'gennaker[sandbox]'") from exc
    if port is None:
        port = free_port()
    else:
        _check_port(port)
    endpoint = f"http://127.0.0.1:{port}"
    # moto serves with werkzeug, which logs every request, and a traceback for each API it does not
    # simulate (those reach us as HTTP 500s and become UNKNOWN findings with the reason): keep quiet.
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    server = _quiet_moto_server(port)
    server.start()
    try:
        sessions = AwsSessions(config_from_text(config_text(endpoint)))
        world = seed_shop(sessions, ACCOUNT, REGIONS[0])
        audit = _seed_audit_examples(sessions, ACCOUNT, REGIONS[0]) if audit_examples else False
        dr = seed_dr(sessions, world, DR_REGION) if dr_site else None  # after the examples: copies their shop volume
    except BaseException:
        server.stop()
        raise
    return Sandbox(endpoint, config_text(endpoint, world, dr), world, server, audit, dr)
