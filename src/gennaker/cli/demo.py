"""``gennaker demo``: simulated AWS, the server, and the source document's pipeline, in one command."""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from gennaker.cli import options
from gennaker.cli.render import console, stage_table
from gennaker.engine import operations as ops
from gennaker.engine import views
from gennaker.errors import GennakerError
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import config_from_text

out = console()
# Shipped in the package (examples/demo.yml in the repository links to it), so an installed
# gennaker has its demo too.
DEMO_PIPELINE = Path(__file__).resolve().parent.parent / "sandbox" / "demo.yml"


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


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        port: Annotated[
            int, typer.Option(parser=options.port, help="Port for the API and console on 127.0.0.1.")
        ] = 8080,
        auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Judge 'approve' automatically.")] = False,
        soak: Annotated[
            str, typer.Option(parser=options.duration_text, help="How long Wait waits (the document says 4h).")
        ] = "4h",
        workdir: Annotated[
            Path | None, typer.Option(parser=options.directory, help="Where to keep the demo's database and config.")
        ] = None,
        pipeline_file: Annotated[Path, typer.Option("--pipeline", help="The pipeline to run.")] = DEMO_PIPELINE,
    ) -> None:
        """Start simulated AWS and the server, then run the demo pipeline on the sample application."""
        from gennaker.sandbox import start_sandbox

        work = workdir or Path(tempfile.mkdtemp(prefix="gennaker-demo-"))
        work.mkdir(parents=True, exist_ok=True)
        out.print("Starting simulated AWS (moto, loopback only) and seeding the sample application 'shop'…")
        box = start_sandbox()
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
            cli = f"gennaker --server {base}"
            out.print(f"\nSimulated AWS: {box.endpoint}   config: {work / 'gennaker.yml'}")
            out.print(f"Server: {base} (console at {base}/, API docs at {base}/docs)")
            out.print(f"Execution {execution_id} of pipeline 'demo' started.")
            out.print(f"  watch:  {cli} executions show {execution_id}")
            out.print(f"  judge:  {cli} judge {execution_id} go-no-go --choice approve")
            out.print(f"  skip the wait: {cli} skip {execution_id} soak\n")
            final = _follow(rt, execution_id, auto_approve)
            out.print(stage_table(final))
            out.print(f"execution {execution_id}: {final['status']}", highlight=False, soft_wrap=True)
            if not auto_approve:
                out.print(f"The server keeps running at {base} for you to look around; Ctrl-C stops everything.")
                with contextlib.suppress(KeyboardInterrupt):  # the user's way of saying "stop"
                    threading.Event().wait()
            server.should_exit = True
            time.sleep(0.5)
            raise typer.Exit(0 if final["status"] == "SUCCEEDED" else 1)
        finally:
            box.stop()


def _follow(rt: Runtime, execution_id: str, auto_approve: bool) -> dict[str, Any]:
    seen: dict[str, str] = {}
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
            if s["status"] == "WAITING" and s["type"] == "manual_judgment" and auto_approve and not s.get("judgment"):
                ops.judge(rt.db, execution_id, s["stage_id"], "demo (auto-approve)", "approve", "--auto-approve")
        if views.is_done(ex["status"]):
            return ex
        time.sleep(0.3)
