"""The local provider: the CloudProvider interface on this machine.

A server group is N processes (``instances.InstanceManager``), its load balancers are backends of
the Gennaker-owned HAProxy (``haproxy.HAProxy``), images are content-addressed artifacts
(``artifacts.ArtifactStore``). Everything is kept in one state directory, so any Gennaker process
(a worker, the API, one started after a kill -9) sees and re-adopts the same groups.

Mapping onto the interface:
- a server group's load balancers are named as the account declares them (one backend each);
- "disabled" is recorded with the group;
- the command and environment come from the deploy's ``LocalDeployOptions``;
- new instances join their backends in ``drain`` (health-checked, no requests) and are promoted to
  ``ready`` once HAProxy sees them healthy, by whichever call reads the group next: HAProxy alone
  would send requests to a server leaving maintenance before its first check;
- disable drains (no new requests; in-flight ones finish, up to ``drain_timeout``) then sets maint;
- reads reconcile: an instance that died is replaced, as an Auto Scaling group would.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from gennaker.cloud import naming
from gennaker.cloud.local.artifacts import ArtifactStore
from gennaker.cloud.local.haproxy import HAProxy, HAProxyError, LoadBalancerSpec, ServerStat
from gennaker.cloud.local.instances import GroupRecord, InstanceManager, InstanceRecord
from gennaker.cloud.local.options import LocalDeployOptions
from gennaker.cloud.provider import (
    DEFAULT_TRAFFIC_WEIGHT,
    MAX_TRAFFIC_WEIGHT,
    TAG_EXECUTION,
    TAG_STAGE,
    AlarmState,
    Capacity,
    Image,
    Instance,
    LoadBalancer,
    NotSupported,
    SecurityGroup,
    ServerGroup,
    ServerGroupSpec,
    Traffic,
)
from gennaker.errors import Conflict, InvalidInput, NotFound

ZONE = "local"


def _options(spec: ServerGroupSpec) -> LocalDeployOptions:
    if not isinstance(spec.provider_options, LocalDeployOptions):
        raise InvalidInput(f"server group {spec.name}: a local deploy needs a command (run in the artifact)")
    return spec.provider_options


def target_health(stat: ServerStat | None, model_state: str | None) -> str:
    """HAProxy's view of one server in the interface's load-balancer health words."""
    if stat is None or model_state is None or model_state == "maint" or stat.status.startswith("MAINT"):
        return "out"
    if model_state == "drain":
        # Either leaving (disable in progress) or joining (waiting for its first good check).
        return "draining" if not stat.healthy else "starting"
    if stat.healthy:
        return "healthy"
    if stat.check_status in ("", "INI") or "/" in stat.status:
        return "starting"
    return "unhealthy"


def _group_of(server: str) -> str:
    return server.rpartition("-")[0]  # servers are <group>-<n>


def _traffic(rows: list[ServerStat]) -> Traffic | None:
    """The group's requests from its servers' counters (``None`` when it has no server in a backend)."""
    if not rows:
        return None
    answered = sum(r.hrsp_2xx + r.hrsp_3xx + r.hrsp_4xx + r.hrsp_5xx for r in rows)
    return Traffic(rate=float(sum(r.rate for r in rows)), requests=answered, errors=sum(r.hrsp_5xx for r in rows))


def _index(instance_id: str) -> int:
    tail = instance_id.rpartition("-")[2]
    return int(tail) if tail.isdigit() else 0


class LocalProvider:
    """The CloudProvider for one local account (region ``local``)."""

    def __init__(
        self,
        state_dir: Path,
        account: str,
        load_balancers: Iterable[LoadBalancerSpec] = (),
        region: str = ZONE,
        drain_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        create_wait: float | None = None,
        haproxy_binary: str = "haproxy",
    ):
        self.account = account
        self.region = region
        self.state_dir = Path(state_dir)
        self.load_balancers = {lb.name: lb for lb in load_balancers}
        self.drain_timeout = drain_timeout
        self.stop_timeout = stop_timeout
        self.create_wait = create_wait
        self.haproxy = HAProxy(self.state_dir / "haproxy", binary=haproxy_binary)
        self.instances = InstanceManager(self.state_dir, stop_timeout=stop_timeout)
        self.artifacts = ArtifactStore(self.state_dir)

    # --- the load balancer process -------------------------------------------------------------
    def ensure_load_balancers(self) -> None:
        """Declare the account's load balancers and start HAProxy (re-attach if it runs)."""
        for lb in self.load_balancers.values():
            self.haproxy.declare(lb)
        self.haproxy.start()

    def _stats(self) -> dict[tuple[str, str], ServerStat]:
        if not self.haproxy.is_running():
            return {}
        try:
            return {(r.backend, r.server): r for r in self.haproxy.show_stat()}
        except HAProxyError:
            return {}

    def reconcile_all(self) -> None:
        """What an ASG does continuously: replace dead instances, admit healthy new ones. Reads do
        this for the groups they read; call this periodically to cover groups nobody reads."""
        for group in self.instances.groups():
            self._sync(group.name)

    def server_stats(self) -> list[ServerStat]:
        """HAProxy's per-server counters (requests by status class, sessions, response time)."""
        return sorted(self._stats().values(), key=lambda r: (r.backend, _index(r.server), r.server))

    def traffic_by_server_group(self) -> dict[str, dict[str, int]]:
        """Counters summed per server group (servers are ``<group>-<n>``): sample twice and take
        the difference for requests per second and errors per group."""
        totals: dict[str, dict[str, int]] = {}
        for row in self._stats().values():
            group = _group_of(row.server)
            t = totals.setdefault(group, dict.fromkeys(("stot", "scur", "2xx", "3xx", "4xx", "5xx"), 0))
            t["stot"] += row.stot
            t["scur"] += row.scur
            t["2xx"] += row.hrsp_2xx
            t["3xx"] += row.hrsp_3xx
            t["4xx"] += row.hrsp_4xx
            t["5xx"] += row.hrsp_5xx
        return totals

    def _model_states(self) -> dict[tuple[str, str], str]:
        states: dict[tuple[str, str], str] = {}
        for lb in self.haproxy.load_balancers():
            for server in self.haproxy.servers(lb.name):
                states[(lb.name, server.name)] = server.state
        return states

    # --- reconciling a group with its processes and its backends -------------------------------
    def _enabled(self, group: GroupRecord) -> bool:
        return not group.meta.get("disabled", False)

    def _lbs(self, group: GroupRecord) -> list[str]:
        return list(group.meta.get("load_balancers", []))

    def _sync(self, name: str) -> GroupRecord:
        """Replace dead instances, mirror them in the backends, admit healthy new ones."""
        group, changes = self.instances.reconcile(name)
        lbs = self._lbs(group)
        if not lbs:
            return group
        self.ensure_load_balancers()
        for inst in changes.crashed + changes.stopped:
            for lb in lbs:
                self.haproxy.del_server(lb, inst.id)
        enabled = self._enabled(group)
        stats = self._stats()
        models = self._model_states()
        for inst in group.running():
            for lb in lbs:
                state = models.get((lb, inst.id))
                if state is None:
                    joined = enabled and not group.meta.get("deregistered", {}).get(inst.id)
                    self.haproxy.add_server(
                        lb, inst.id, "127.0.0.1", inst.port, "drain" if joined else "maint", weight=self._weight(group)
                    )
                elif state == "drain" and enabled and not group.meta.get("disabling"):
                    stat = stats.get((lb, inst.id))
                    if stat is not None and stat.healthy:
                        self.haproxy.set_state(lb, inst.id, "ready")
        return group

    def _drain(self, pairs: list[tuple[str, str]], timeout: float) -> None:
        """Drain many servers at once: no new requests, wait for scur == 0 (or timeout), then maint."""
        for lb, server in pairs:
            self.haproxy.set_state(lb, server, "drain")
        deadline = time.monotonic() + timeout
        pending = set(pairs)
        while pending and time.monotonic() < deadline:
            stats = self._stats()
            pending = {p for p in pending if p in stats and stats[p].scur > 0}
            if pending:
                time.sleep(0.05)
        for lb, server in pairs:
            self.haproxy.set_state(lb, server, "maint")

    # --- reading server groups -----------------------------------------------------------------
    def _to_server_group(
        self, group: GroupRecord, stats: dict[tuple[str, str], ServerStat], models: dict[tuple[str, str], str]
    ) -> ServerGroup:
        lbs = self._lbs(group)
        instances = [
            Instance(
                inst.id,
                ZONE,
                "running",
                "healthy",  # a process that runs; whether it answers is its load balancers' view
                {lb: target_health(stats.get((lb, inst.id)), models.get((lb, inst.id))) for lb in lbs},
                {"port": inst.port},
            )
            for inst in sorted(group.running(), key=lambda i: _index(i.id))
        ]
        cap = group.meta.get("capacity", {})
        capacity = Capacity(
            min(int(cap.get("min", group.desired)), group.desired),
            max(int(cap.get("max", group.desired)), group.desired),
            group.desired,
        )
        return ServerGroup(
            name=group.name,
            account=self.account,
            region=self.region,
            capacity=capacity,
            image=group.meta.get("image_id"),
            instances=instances,
            load_balancers=lbs,
            enabled=self._enabled(group),
            tags=dict(group.meta.get("tags", {})),
            created=datetime.fromisoformat(group.created),
            details={"command": group.meta.get("command")} if group.meta.get("command") else {},
            traffic=_traffic([r for (lb, server), r in stats.items() if lb in lbs and _group_of(server) == group.name]),
        )

    def list_server_groups(
        self, cluster: str | None = None, application: str | None = None, with_health: bool = True
    ) -> list[ServerGroup]:
        records = []
        for group in self.instances.groups():
            if cluster is not None and not naming.in_cluster(group.name, cluster):
                continue
            if application is not None and naming.parse(group.name).application != application:
                continue
            records.append(self._sync(group.name) if with_health else group)
        stats = self._stats() if with_health else {}
        models = self._model_states() if with_health else {}
        return [self._to_server_group(g, stats, models) for g in records]

    def get_server_group(self, name: str) -> ServerGroup | None:
        if self.instances.get(name) is None:
            return None
        group = self._sync(name)
        return self._to_server_group(group, self._stats(), self._model_states())

    def _require(self, name: str) -> GroupRecord:
        group = self.instances.get(name)
        if group is None:
            raise NotFound(f"server group {name} not found in account {self.account}")
        return group

    def instance_records(self, name: str) -> list[InstanceRecord]:
        """Every recorded instance of a group, crashed ones included (ports, pids, log files)."""
        return list(self._require(name).instances)

    def tail(self, instance_id: str, lines: int = 20) -> str:
        return self.instances.tail(instance_id, lines)

    def health_report(self, name: str, lines: int = 10) -> str:
        """Why a group is not healthy, for a failed stage: HAProxy's check results of the instances
        that are not healthy, and the log tail of the last instance that died."""
        group = self._require(name)
        stats = self._stats()
        parts = []
        for inst in group.running():
            for lb in self._lbs(group):
                stat = stats.get((lb, inst.id))
                if stat is None:
                    parts.append(f"{inst.id}: not in load balancer {lb}")
                elif not stat.healthy:
                    parts.append(f"{inst.id} (port {inst.port}): {stat.status}, check {stat.check_status} in {lb}")
            if any(p.startswith(inst.id) for p in parts):
                parts.append(f"{inst.id} log ends with:\n{self.instances.tail(inst, lines)}")
        crash = self.instances.last_crash(name, lines)
        if crash:
            parts.append(crash)
        if self.instances.crash_looping(group):
            parts.append(f"{name}: instances keep exiting right after they start; not replacing them for now")
        return "\n".join(parts)

    def names_in_use(self, cluster: str) -> list[str]:
        # A group's record is written before its processes start: the groups' names are all there is.
        return [g.name for g in self.instances.groups() if naming.in_cluster(g.name, cluster)]

    def find_created_by(self, cluster: str, execution_id: str, stage_id: str) -> str | None:
        for group in self.instances.groups():
            tags = group.meta.get("tags", {})
            ours = tags.get(TAG_EXECUTION) == execution_id and tags.get(TAG_STAGE) == stage_id
            if naming.in_cluster(group.name, cluster) and ours and self._enabled(group):
                return group.name
        return None

    def server_group_owner(self, name: str) -> tuple[str, str] | None:
        group = self.instances.get(name)
        if group is None:
            return None
        tags = group.meta.get("tags", {})
        return tags.get(TAG_EXECUTION, ""), tags.get(TAG_STAGE, "")

    # --- changing server groups ----------------------------------------------------------------
    def prepare_server_group(self, spec: ServerGroupSpec) -> ServerGroupSpec:
        """The load balancers the options name must be declared in the account."""
        opts = _options(spec)
        return dataclasses.replace(spec, load_balancers=self.resolve_load_balancers(opts.load_balancers))

    def create_server_group(self, spec: ServerGroupSpec) -> ServerGroup:
        """Start the group's processes (the options' command, in the unpacked artifact) and put them
        behind its load balancers."""
        opts = _options(spec)
        return self.create_local_server_group(spec, opts.command, dict(opts.env))

    def create_local_server_group(self, spec: ServerGroupSpec, command: str, env: dict[str, str]) -> ServerGroup:
        """Start the group's processes from its artifact and put them behind its load balancers."""
        if not command.strip():
            raise InvalidInput(f"server group {spec.name}: a local deploy needs a command (run in the artifact)")
        for lb in spec.load_balancers:
            if lb not in self.load_balancers:
                raise NotFound(f"load balancer {lb} is not declared in account {self.account}")
        existing = self.instances.get(spec.name)
        if existing is not None:
            owner = self.server_group_owner(spec.name)
            if owner != (spec.execution_id, spec.stage_id):
                raise Conflict(
                    f"server group {spec.name} already exists and was created by execution "
                    f"{(owner or ('?', '?'))[0] or '?'} stage {(owner or ('?', '?'))[1] or '?'}; refusing to reuse it"
                )
        if spec.load_balancers:
            self.ensure_load_balancers()
        directory = self.artifacts.unpack(self.artifacts.resolve(spec.image))
        meta: dict[str, Any] = {
            "image_id": spec.image,
            "command": command,
            "load_balancers": list(spec.load_balancers),
            "capacity": spec.capacity.as_dict(),
            "tags": spec.gennaker_tags(),
            "disabled": False,
        }
        self.instances.create(spec.name, command, directory, env, spec.capacity.desired, meta)
        group = self._sync(spec.name)
        self._wait_admitted(group)
        return self._to_server_group(self._sync(spec.name), self._stats(), self._model_states())

    def _wait_admitted(self, group: GroupRecord) -> None:
        """Give HAProxy a few health intervals to see the new instances healthy (not an error if not:
        the deploy's wait_healthy owns the timeout)."""
        lbs = [self.load_balancers[lb] for lb in self._lbs(group) if lb in self.load_balancers]
        if not lbs or not group.running():
            return
        interval = max(lb.health.interval for lb in lbs)
        wait = self.create_wait if self.create_wait is not None else min(10.0, 3 * interval + 2)
        names = [i.id for i in group.running()]
        for lb in lbs:
            self.haproxy.wait_healthy(lb.name, names, wait)

    def enable_server_group(self, name: str) -> None:
        group = self._require(name)
        self.instances.set_meta(name, disabled=False, disabling=False, deregistered={})
        if self._lbs(group):
            self.ensure_load_balancers()
            models = self._model_states()
            for inst in group.running():
                for lb in self._lbs(group):
                    if models.get((lb, inst.id)) == "maint":
                        self.haproxy.set_state(lb, inst.id, "drain")  # ready once healthy (see _sync)
        self._wait_admitted(group)
        self._sync(name)

    def disable_server_group(self, name: str, missing_ok: bool = False) -> None:
        group = self.instances.get(name)
        if group is None:
            if missing_ok:
                return
            raise NotFound(f"server group {name} not found in account {self.account}")
        # Recorded first: nothing (a crash replacement, another process's sync) re-admits it meanwhile.
        group = self.instances.set_meta(name, disabled=True, disabling=True)
        self._take_out(group, [i.id for i in group.running()])
        self.instances.set_meta(name, disabling=False)

    def _take_out(self, group: GroupRecord, instance_ids: list[str]) -> None:
        lbs = self._lbs(group)
        if not lbs:
            return
        self.ensure_load_balancers()
        models = self._model_states()
        pairs = [(lb, i) for i in instance_ids for lb in lbs if models.get((lb, i)) in ("ready", "drain")]
        self._drain(pairs, self.drain_timeout)

    def deregister_instances(self, name: str, instance_ids: list[str]) -> None:
        """Take some instances out of rotation (rolling red/black's partial disable)."""
        group = self._require(name)
        marked = dict(group.meta.get("deregistered", {}))
        marked.update(dict.fromkeys(instance_ids, True))
        group = self.instances.set_meta(name, deregistered=marked)
        self._take_out(group, instance_ids)

    def resize_server_group(self, name: str, capacity: Capacity) -> None:
        group = self._require(name)
        self.instances.set_meta(name, capacity=capacity.as_dict())
        running = sorted(group.running(), key=lambda i: _index(i.id))
        if capacity.desired < len(running):
            # Drain the instances that go before stopping them: their requests finish first.
            leaving = [i.id for i in running[capacity.desired :]]
            self._take_out(group, leaving)
            self.instances.stop_instances(name, leaving)
            for lb in self._lbs(group):
                for inst_id in leaving:
                    self.haproxy.del_server(lb, inst_id)
        self.instances.resize(name, capacity.desired)
        # As create does: admit what was added once HAProxy sees it healthy, not at the next read of
        # the group (for a rolling deploy that is its next poll, seconds after it could serve).
        self._wait_admitted(self._sync(name))
        self._sync(name)

    def destroy_server_group(self, name: str) -> None:
        group = self.instances.get(name)
        if group is None:
            return
        group = self.instances.set_meta(name, disabled=True, disabling=True)
        self._take_out(group, [i.id for i in group.running()])
        self.instances.destroy(name)
        for lb in self._lbs(group):
            for inst in group.instances:
                self.haproxy.del_server(lb, inst.id)

    def _weight(self, group: GroupRecord) -> int:
        return int(group.meta.get("weight", DEFAULT_TRAFFIC_WEIGHT))

    def set_traffic_weight(self, name: str, weight: int) -> None:
        """HAProxy weights of the group's servers (kept in the group, so replacements get it too)."""
        if not 0 <= weight <= MAX_TRAFFIC_WEIGHT:
            raise InvalidInput(f"a traffic weight is 0..{MAX_TRAFFIC_WEIGHT}, got {weight}")
        group = self.instances.set_meta(name, weight=weight) if self.instances.get(name) else self._require(name)
        if not self._lbs(group):
            return
        self.ensure_load_balancers()
        models = self._model_states()
        for inst in group.running():
            for lb in self._lbs(group):
                if (lb, inst.id) in models:
                    self.haproxy.set_weight(lb, inst.id, weight)

    def set_server_group_tag(self, name: str, key: str, value: str) -> None:
        tags = dict(self._require(name).meta.get("tags", {}))
        tags[key] = value
        self.instances.set_meta(name, tags=tags)

    def delete_server_group_tag(self, name: str, key: str) -> None:
        group = self.instances.get(name)
        if group is not None:
            tags = dict(group.meta.get("tags", {}))
            tags.pop(key, None)
            self.instances.set_meta(name, tags=tags)

    # --- network and load balancing ------------------------------------------------------------
    def resolve_load_balancers(self, names: list[str]) -> list[str]:
        for name in names:
            if name not in self.load_balancers:
                declared = ", ".join(sorted(self.load_balancers)) or "none"
                raise NotFound(f"load balancer {name} is not declared in account {self.account} (declared: {declared})")
        return list(names)

    def list_load_balancers(self) -> list[LoadBalancer]:
        return [
            LoadBalancer(lb.name, lb.listen, "haproxy", [lb.name], {"health_check": lb.health.path})
            for lb in self.load_balancers.values()
        ]

    def security_groups(self, application: str) -> list[SecurityGroup]:
        return []  # one machine, no firewall rules of its own

    # --- images --------------------------------------------------------------------------------
    def bake(self, source_dir: Path, name: str, version: str, tags: dict[str, str] | None = None) -> Image:
        artifact = self.artifacts.bake(source_dir, name, version, tags)
        return self._image(artifact.id)

    def _image(self, image_id: str) -> Image:
        a = self.artifacts.get(image_id)
        return Image(a.id, a.name, self.region, "available", a.created, {**a.tags, "version": a.version})

    def find_images(self, name_pattern: str | None, tags: dict[str, str], provider_options: Any = None) -> list[Image]:
        found = self.artifacts.find(None, tags)
        return [self._image(a.id) for a in found if not name_pattern or fnmatch.fnmatch(a.name, name_pattern)]

    def resolve_image(self, image: str) -> str:
        return self.artifacts.resolve(image)

    # --- alarms --------------------------------------------------------------------------------
    def alarm_states(self, names: list[str] | None = None) -> list[AlarmState]:
        raise NotSupported(
            f"account {self.account} is local: it has no alarms to read; watch a metric condition "
            "instead (e.g. {source: haproxy, query: http_5xx_rate, op: '>', threshold: 0.02})"
        )
