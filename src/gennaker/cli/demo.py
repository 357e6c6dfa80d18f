"""``gennaker demo``: the source document's pipeline, the server and the console, in one command.

Two worlds: simulated AWS (moto, the default), or ``--local``: this machine, where the packaged
sample application runs as real processes behind Gennaker's HAProxy while a bounded load generator
sends it requests the whole time, and the demo prints requests and errors per server group. There
the canary is analysed on HAProxy's counters; ``--bad-version`` deploys a release answering 5 % of
its requests with 500, which the analysis fails and rolls back on its own.

Exit codes: 0 when the demo showed what it set out to show (the pipeline succeeded; with
``--bad-version``, the canary failed, was rolled back, and no request outside the canary failed),
1 otherwise.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from gennaker.cli import options
from gennaker.cli.render import console, stage_table
from gennaker.engine import operations as ops
from gennaker.engine import views
from gennaker.errors import ConfigError, GennakerError
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import config_from_text, load_config

out = console()
SANDBOX_DIR = Path(__file__).resolve().parent.parent / "sandbox"
# Shipped in the package (examples/demo.yml in the repository links to it), so an installed
# gennaker has its demo too.
DEMO_PIPELINE = SANDBOX_DIR / "demo.yml"
LOCAL_PIPELINE = SANDBOX_DIR / "demo-local.yml"
FAILED_STATUSES = ("FAILED", "TERMINAL")
DEFAULT_PORT = 8080
LOCAL_ACCOUNT = "laptop"
LOAD_BALANCER = "shop-web"
RATES_EVERY = 2.0  # seconds between two "requests per server group" lines
NEXT_VERSION = "1.1.0"
BAD_ERROR_RATE = "0.05"  # --bad-version: the share of GET / its release answers with 500
# The load: steady, paced, bounded. The canary stage of demo-local.yml sends half of the traffic to
# the baseline/canary pair (a quarter to the canary) and samples every 2 s; seeing a 5 % error rate
# takes about 40 canary requests a step, so 120 req/s (≈ 60 a step) with room to spare.
LOAD_RATE = 120.0
LOAD_THREADS = 4

# What production runs before the demo pipeline deploys the next version (the sandbox seeds
# shop-web-v001 in simulated AWS; here it is deployed the way any version is).
LOCAL_SEED = f"""\
name: demo-local-seed
application: shop
description: The version in production before the demo (shop-web-v001, 1.0.0).
stages:
  - {{id: bake, name: Bake 1.0.0, type: bake, account: {LOCAL_ACCOUNT}, source: "{{source}}", version: "1.0.0"}}
  - id: deploy
    name: Deploy 1.0.0
    type: deploy
    requires: [bake]
    account: {LOCAL_ACCOUNT}
    stack: web
    image: "${{stages.bake.outputs.image_id}}"
    command: "python3 app.py"
    capacity: {{min: 2, max: 2, desired: 2}}
    load_balancers: [{LOAD_BALANCER}]
    strategy: red_black
    health_timeout: 1m
    poll_interval: 250ms
"""


def _can_listen(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pick_port(requested: int | None) -> tuple[int, str | None]:
    """The port to serve on and, when it is not the one expected, why: a port asked for must be
    free (one line otherwise); the default 8080 taken means any free port, said so."""
    if requested is not None:
        if not _can_listen(requested):
            raise ConfigError(
                f"cannot listen on 127.0.0.1:{requested}: the port is in use (leave --port out for a free one)"
            )
        return requested, None
    if _can_listen(DEFAULT_PORT):
        return DEFAULT_PORT, None
    port = _free_port()
    return port, f"port {DEFAULT_PORT} is in use: serving on {port} instead"


def demo_params(world: Any, soak: str) -> dict[str, str]:
    subnets = list(world.subnets) + list(world.subnets)  # fewer than three AZs still fills a, b, c
    return {
        "base_image": world.base_image_id,
        "subnet_a": subnets[0],
        "subnet_b": subnets[1],
        "subnet_c": subnets[2],
        "security_group": world.security_groups["shop-web"],
        "target_group": world.target_group_arn,
        "soak": soak,
    }


def write_release(work: Path, version: str, error_rate: str = "0") -> Path:
    """The sample application as one release: its code and a ``release.env`` naming its version
    and error rate, which travel in the baked artifact (a canary's baseline and canary run with
    one environment, so a release's behaviour cannot come from the stage's env)."""
    from gennaker.sample_app import SOURCE_DIR
    from gennaker.sample_app.app import RELEASE_FILE

    target = work / "releases" / version
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(SOURCE_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    note = "answers this share of GET / with 500: a bad release" if float(error_rate) else "a good release"
    (target / RELEASE_FILE).write_text(f"APP_VERSION={version}\n# {note}\nERROR_RATE={error_rate}\n")
    return target


def local_config_text(lb_port: int) -> str:
    """The demo's ``gennaker.yml``: one local account with the shop-web load balancer."""
    return (
        "# Gennaker configuration for the local demo: this machine, processes behind HAProxy.\n"
        "accounts:\n"
        f"  {LOCAL_ACCOUNT}:\n"
        "    kind: local\n"
        "    state_dir: local  # processes' records, artifacts and HAProxy's files, beside this file\n"
        "    load_balancers:\n"
        f'      {LOAD_BALANCER}: {{listen: "127.0.0.1:{lb_port}", health: {{path: /up, interval: 1s, timeout: 5s}}}}\n'
    )


def _serve(rt: Runtime, port: int) -> Any:
    import uvicorn

    from gennaker.api.app import create_app
    from gennaker.cli.web import access_options, announce_access

    access_options(rt, "127.0.0.1", port, insecure_no_auth=False)
    app = create_app(rt, with_worker=True)
    # The demo's config has no auth: section: the CLI commands printed below find the local admin
    # credential this writes, and the console is one printed link away.
    announce_access(rt, app.state.web.mode, "127.0.0.1", port)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True, name="gennaker-server")
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise GennakerError(f"the server did not start on 127.0.0.1:{port} (is the port in use?)")
    return server


def _announce(base: str, execution_id: str, pipeline: str, port_note: str | None) -> None:
    cli = f"gennaker --server {base}"
    if port_note:
        out.print(port_note, highlight=False)
    out.print(f"Server: {base} (console at {base}/, API docs at {base}/docs)", highlight=False)
    out.print(f"Execution {execution_id} of pipeline '{pipeline}' started.", highlight=False)
    out.print(f"  watch:  {cli} executions show {execution_id}", highlight=False)
    out.print(f"  judge:  {cli} judge {execution_id} go-no-go --choice approve", highlight=False)
    out.print(f"  skip the wait: {cli} skip {execution_id} soak\n", highlight=False)


def _finish(rt: Runtime, server: Any, base: str, final: dict[str, Any], execution_id: str, auto_approve: bool) -> int:
    out.print(stage_table(final))
    out.print(f"execution {execution_id}: {final['status']}", highlight=False, soft_wrap=True)
    if not auto_approve:
        out.print(f"The server keeps running at {base} for you to look around; Ctrl-C stops everything.")
        with contextlib.suppress(KeyboardInterrupt):  # the user's way of saying "stop"
            threading.Event().wait()
    server.should_exit = True
    time.sleep(0.5)
    return 0 if final["status"] == "SUCCEEDED" else 1


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        port: Annotated[
            int | None,
            typer.Option(
                parser=options.port, help="Port for the API and console on 127.0.0.1 (default 8080, else any free one)."
            ),
        ] = None,
        auto_approve: Annotated[
            bool,
            typer.Option(
                "--auto-approve",
                help="Judge 'approve' automatically (where it is a choice: a canary is left to its metrics).",
            ),
        ] = False,
        soak: Annotated[
            str | None,
            typer.Option(
                parser=options.duration_text, help="How long Wait waits (the document says 4h; --local: 30s)."
            ),
        ] = None,
        workdir: Annotated[
            Path | None, typer.Option(parser=options.directory, help="Where to keep the demo's database and config.")
        ] = None,
        pipeline_file: Annotated[Path | None, typer.Option("--pipeline", help="The pipeline to run.")] = None,
        local: Annotated[
            bool,
            typer.Option(
                "--local", help="On this machine: the sample application as processes behind HAProxy, under load."
            ),
        ] = False,
        traffic_for: Annotated[
            str,
            typer.Option(parser=options.duration_text, help="--local: the longest the load generator runs."),
        ] = "30m",
        bad_version: Annotated[
            bool,
            typer.Option(
                "--bad-version",
                help="--local: deploy a release answering 5% of requests with 500; the canary analysis "
                "fails it and rolls back on its own (exit 0 when it did, with no failed request outside "
                "the canary).",
            ),
        ] = False,
    ) -> None:
        """Start simulated AWS (or, with --local, this machine) and the server, then run the demo
        pipeline on the sample application.

        Exit code 0 when the demo showed what it set out to: the pipeline succeeded, or with
        --bad-version the canary failed and was rolled back with no failed request outside the
        canary's share; 1 otherwise."""
        serve_port, port_note = pick_port(port)
        work = workdir or Path(tempfile.mkdtemp(prefix="gennaker-demo-"))
        work.mkdir(parents=True, exist_ok=True)
        if bad_version and not local:
            raise ConfigError("--bad-version needs --local (the canary is analysed on this machine's HAProxy)")
        if local:
            from gennaker.spec.durations import parse_duration

            code = _local_demo(
                work,
                serve_port,
                port_note,
                auto_approve,
                soak or "30s",
                parse_duration(traffic_for),
                pipeline_file or LOCAL_PIPELINE,
                bad_version,
            )
        else:
            code = _aws_demo(work, serve_port, port_note, auto_approve, soak or "4h", pipeline_file or DEMO_PIPELINE)
        raise typer.Exit(code)


def _aws_demo(work: Path, port: int, port_note: str | None, auto_approve: bool, soak: str, pipeline_file: Path) -> int:
    from gennaker.cloud.aws.session import AwsSessions
    from gennaker.sandbox import start_sandbox
    from gennaker.sandbox.seed import CanaryMetrics

    out.print("Starting simulated AWS (moto, loopback only) and seeding the sample application 'shop'…")
    box = start_sandbox()
    # The sandbox has no real traffic: this publishes plausible CloudWatch figures for canary pairs
    # (a healthy release), so the canary stage has something to judge.
    metrics = CanaryMetrics(AwsSessions(config_from_text(box.config_text)), box.world.account, box.world.region)
    metrics.start()
    try:
        (work / "gennaker.yml").write_text(box.config_text)
        rt = build_runtime(f"sqlite:///{work / 'gennaker.db'}", config=config_from_text(box.config_text))
        server = _serve(rt, port)
        base = f"http://127.0.0.1:{port}"
        pipeline = rt.load_pipeline(str(pipeline_file))
        with rt.db.begin() as conn:
            ops.save_pipeline(conn, pipeline, "demo", registered=True)
        execution_id = ops.start_execution(
            rt.db, pipeline, demo_params(box.world, soak), "demo", base_dir=str(pipeline_file.parent)
        )
        out.print(f"\nSimulated AWS: {box.endpoint}   config: {work / 'gennaker.yml'}", highlight=False)
        _announce(base, execution_id, pipeline.name, port_note)
        final = _follow(rt, execution_id, auto_approve)
        _print_drill(final, base, work)
        return _finish(rt, server, base, final, execution_id, auto_approve)
    finally:
        metrics.stop()
        box.stop()


def _print_drill(final: dict[str, Any], base: str, work: Path) -> None:
    """The DR drill the pipeline ran (its dr_drill stage): figures and where its report is."""
    for s in final["stages"]:
        outputs = s.get("outputs") or {}
        if s.get("type") != "dr_drill" or not outputs.get("drill_id"):
            continue
        app = s.get("application") or final.get("application") or "shop"
        out.print(
            f"\nDR drill {outputs['drill_id']}: {s.get('message') or s['status']}", highlight=False, soft_wrap=True
        )
        for line in (outputs.get("report") or {}).get("missing") or []:
            out.print(f"  missing: {line}", highlight=False, soft_wrap=True)
        out.print(
            f"  report:  {base}/applications/{app}/dr/{outputs['drill_id']}  (and on the READINESS tab)",
            highlight=False,
        )
        out.print(
            f"  another: gennaker --config {work / 'gennaker.yml'} --db {work / 'gennaker.db'} dr drill {app} "
            "--scenario failover_dns",
            highlight=False,
            soft_wrap=True,
        )


# --- the local demo --------------------------------------------------------------------------------
def _local_demo(
    work: Path,
    port: int,
    port_note: str | None,
    auto_approve: bool,
    soak: str,
    traffic_seconds: float,
    pipeline_file: Path,
    bad_version: bool = False,
) -> int:
    from gennaker.cloud.registry import provider_for
    from gennaker.sandbox.traffic import GroupRates, LoadGenerator

    if shutil.which("haproxy") is None:
        raise ConfigError("gennaker demo --local needs HAProxy, its load balancer: apt-get install haproxy")
    lb_port = _free_port()
    config_path = work / "gennaker.yml"
    config_path.write_text(local_config_text(lb_port))
    rt = build_runtime(f"sqlite:///{work / 'gennaker.db'}", config=load_config(str(config_path)))
    provider = provider_for(rt.services, LOCAL_ACCOUNT)
    server = None
    load: LoadGenerator | None = None
    try:
        server = _serve(rt, port)
        base = f"http://127.0.0.1:{port}"
        out.print(
            f"Local account '{LOCAL_ACCOUNT}': load balancer {LOAD_BALANCER} on 127.0.0.1:{lb_port} (HAProxy), "
            f"config {config_path}",
            highlight=False,
        )
        out.print("Putting shop 1.0.0 in production (bake the sample application, deploy shop-web-v001)…")
        seed_text = LOCAL_SEED.replace("{source}", str(write_release(work, "1.0.0")))
        seed = rt.pipeline_from_text(seed_text, str(SANDBOX_DIR / "demo-local-seed.yml"))
        seed_id = ops.start_execution(rt.db, seed, {}, "demo", base_dir=str(SANDBOX_DIR))
        seeded = _follow(rt, seed_id, auto_approve=True)
        if seeded["status"] != "SUCCEEDED":
            out.print(stage_table(seeded))
            raise GennakerError(f"putting 1.0.0 in production failed (execution {seed_id}): see the stages above")
        # Low and steady: a shop's traffic, not a flood on a shared machine; bounded in time and count.
        load = LoadGenerator(
            "127.0.0.1",
            lb_port,
            threads=LOAD_THREADS,
            rate=LOAD_RATE,
            max_seconds=traffic_seconds,
            max_requests=int(LOAD_RATE * traffic_seconds) + 1,
        ).start()
        out.print(
            f"Traffic: {LOAD_THREADS} clients sending {LOAD_RATE:g} GET / a second to http://127.0.0.1:{lb_port}/ "
            f"for up to {traffic_seconds:g}s; requests/s and errors per server group every {RATES_EVERY:g}s.",
            highlight=False,
        )
        error_rate = BAD_ERROR_RATE if bad_version else "0"
        release = write_release(work, NEXT_VERSION, error_rate)
        if bad_version:
            out.print(
                f"--bad-version: shop {NEXT_VERSION} answers {float(error_rate):.0%} of GET / with 500; "
                "the canary analysis should fail it and roll it back on its own.",
                highlight=False,
            )
        pipeline = rt.load_pipeline(str(pipeline_file))
        with rt.db.begin() as conn:
            ops.save_pipeline(conn, pipeline, "demo", registered=True)
        params = {"soak": soak}
        # The release to bake, for a pipeline that takes it (the shipped one does; a --pipeline of
        # one's own may not, and then bakes what it names, which --bad-version cannot change).
        declared = {p.name for p in pipeline.parameters}
        params |= {k: v for k, v in (("version", NEXT_VERSION), ("source", str(release))) if k in declared}
        if bad_version and "source" not in declared:
            raise ConfigError(
                f"--bad-version needs a pipeline with a 'source' parameter to bake ({pipeline_file} has none)"
            )
        execution_id = ops.start_execution(rt.db, pipeline, params, "demo", base_dir=str(pipeline_file.parent))
        _announce(base, execution_id, pipeline.name, port_note)
        rates = GroupRates(provider.traffic_by_server_group)  # type: ignore[attr-defined]
        final = _follow(rt, execution_id, auto_approve, every=(RATES_EVERY, lambda: _print_rates(rates, load)))
        _print_rates(rates, load)
        canary = _canary_outcome(rt, final)
        if canary is not None:
            _print_canary(rt, canary, base, work)
        code = _finish(rt, server, base, final, execution_id, auto_approve)
        load.stop()
        failed_outside = _print_traffic_summary(load, NEXT_VERSION if bad_version else None)
        if bad_version:
            return _bad_version_verdict(final, canary, failed_outside)
        return code
    finally:
        if load is not None:
            load.stop()
        if server is not None:
            server.should_exit = True
        _stop_local(provider)


def _print_rates(rates: Any, load: Any) -> None:
    from gennaker.sandbox.traffic import failures, rates_line

    answers = load.snapshot()
    out.print(
        f"  traffic  {rates_line(rates.sample())}   (clients: {len(answers)} sent, {len(failures(answers))} failed)",
        highlight=False,
        soft_wrap=True,
    )


def _print_traffic_summary(load: Any, canary_version: str | None = None) -> int:
    """The load generator's account of the demo; with ``canary_version`` (a release that only ever
    ran as the canary), also what failed outside it. Returns that number (0 without one)."""
    from gennaker.sandbox.traffic import failures, summarize, timeline

    answers = load.snapshot()
    by_version: dict[str, int] = {}
    for bucket in timeline(answers, load.started, step=3600):
        for version, counts in bucket.by_version.items():
            by_version[version] = by_version.get(version, 0) + counts.requests
    served = ", ".join(f"{v}: {n}" for v, n in sorted(by_version.items())) or "none"
    out.print(f"Traffic during the demo: {summarize(answers).line()}; answered by version {served}", highlight=False)
    if canary_version is None:
        return 0
    # Outside the canary: production, the baseline, and anything no instance answered (HAProxy's 503).
    outside = [r for r in answers if r.version != canary_version]
    inside = [r for r in answers if r.version == canary_version]
    failed_outside = len(failures(outside))
    out.print(
        f"Outside the canary: {len(outside)} requests, {failed_outside} failed; "
        f"the canary ({canary_version}) answered {len(inside)}, {len(failures(inside))} failed.",
        highlight=False,
    )
    return failed_outside


def _canary_outcome(rt: Runtime, final: dict[str, Any]) -> dict[str, Any] | None:
    """The stage of the run that produced a canary report (the first), with its analysis."""
    from gennaker.metrics import store as canary_store

    for s in final["stages"]:
        report = (s.get("outputs") or {}).get("report")
        if isinstance(report, dict) and report.get("id"):
            try:
                analysis = canary_store.get_analysis(rt.db, str(report["id"]))
            except GennakerError as exc:
                analysis = {"judgements": [], "message": f"could not read the analysis: {exc}"}
            return {"stage": s, "report": report, "analysis": analysis}
    return None


def _failing_metrics(analysis: dict[str, Any]) -> list[str]:
    """``errors (critical) High: canary median 0.05 vs baseline 0`` for each metric of the last
    judgement that did not pass."""
    judgements = analysis.get("judgements") or []
    if not judgements:
        return []
    lines = []
    for m in judgements[-1].get("metrics") or []:
        if m.get("label") == "Pass" or m.get("muted"):
            continue
        medians = ""  # the classification's figures sit beside the label in a stored metric
        if isinstance(m.get("canary_median"), int | float) and isinstance(m.get("baseline_median"), int | float):
            medians = f": canary median {m['canary_median']:.3g} vs baseline {m['baseline_median']:.3g}"
        critical = " (critical)" if m.get("critical") else ""
        lines.append(
            f"{m.get('name')}{critical} {m.get('label')}{medians}" + (f" ({m['reason']})" if m.get("reason") else "")
        )
    return lines


def _print_canary(rt: Runtime, canary: dict[str, Any], base: str, work: Path) -> None:
    stage, analysis, report = canary["stage"], canary["analysis"], canary["report"]
    outputs = stage.get("outputs") or {}
    score, result = outputs.get("score"), outputs.get("result") or "no result"
    judged = len(analysis.get("judgements") or [])
    scored = f"score {score:g} ({result})" if isinstance(score, int | float) else f"no score ({result})"
    out.print(
        f"\nCanary: {scored} after {judged} judgement(s); stage {stage['name']} {stage['status']}", highlight=False
    )
    for line in _failing_metrics(analysis):
        out.print(f"  failed metric: {line}", highlight=False, soft_wrap=True)
    if stage.get("message"):
        out.print(f"  {stage['message']}", highlight=False, soft_wrap=True)
    out.print(f"  report:  {base}{report.get('path') or '/canary/' + str(report['id'])}", highlight=False)
    out.print(
        f"  again:   gennaker --db {work / 'gennaker.db'} canary analyze --analysis {report['id']}",
        highlight=False,
        soft_wrap=True,
    )


def _bad_version_verdict(final: dict[str, Any], canary: dict[str, Any] | None, failed_outside: int) -> int:
    """--bad-version showed what it meant to when the canary failed the release and the run ended
    there, with nothing failing outside the canary: exit 0, said in one line; otherwise 1, said why."""
    stage = (canary or {}).get("stage") or {}
    caught = (
        canary is not None
        and (stage.get("outputs") or {}).get("result") == "fail"
        and stage.get("status") in FAILED_STATUSES
        and final["status"] in FAILED_STATUSES
    )
    if caught and failed_outside == 0:
        out.print(
            f"The canary caught the bad version: {NEXT_VERSION} never reached production, its pair was "
            "destroyed and production kept serving with no failed request outside the canary.",
            highlight=False,
        )
        return 0
    why = "the canary did not fail it" if not caught else f"{failed_outside} request(s) failed outside the canary"
    out.print(f"--bad-version did not go as it should: {why}.", highlight=False)
    return 1


def _stop_local(provider: Any) -> None:
    """The demo's processes and its HAProxy outlive Gennaker by design (as instances outlive an
    ASG's controller): the demo started them, so it stops them."""
    with contextlib.suppress(GennakerError):
        for group in provider.list_server_groups(with_health=False):
            provider.destroy_server_group(group.name)
    haproxy = getattr(provider, "haproxy", None)
    if haproxy is not None:
        haproxy.stop(timeout=5)


def _approvable(stage: dict[str, Any]) -> bool:
    """Whether --auto-approve answers this stage: only where "approve" is a choice. A canary under
    analysis also awaits a judgment (promote / abort, to end it early); that is left to its metrics."""
    options = (stage.get("judgment_request") or {}).get("options") or ["approve"]
    return "approve" in options


def _follow(
    rt: Runtime,
    execution_id: str,
    auto_approve: bool,
    every: tuple[float, Callable[[], None]] | None = None,
) -> dict[str, Any]:
    seen: dict[str, str] = {}
    last_tick = time.monotonic()
    while True:
        with rt.db.read() as conn:
            ex = views.execution_detail(conn, execution_id)
        for s in ex["stages"]:
            if seen.get(s["stage_id"]) != s["status"]:
                seen[s["stage_id"]] = s["status"]
                if s["status"] != "NOT_STARTED":
                    out.print(
                        f"  {s['name']:<28} {s['status']}" + (f"  {s['message']}" if s.get("message") else ""),
                        highlight=False,
                        soft_wrap=True,
                    )
            if s["awaiting_judgment"] and auto_approve and _approvable(s):
                ops.judge(rt.db, execution_id, s["stage_id"], "demo (auto-approve)", "approve", "--auto-approve")
        if views.is_done(ex["status"]):
            return ex
        if every is not None and time.monotonic() - last_tick >= every[0]:
            last_tick = time.monotonic()
            every[1]()
        time.sleep(0.3)
