"""Core commands: validate, run, executions, logs and the operations (server and worker: cli/web.py)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.text import Text

from gennaker.cli import options
from gennaker.cli.client import Client, HttpClient, LocalClient, follow_logs
from gennaker.cli.render import console, execution_list, judgment_options, stage_table
from gennaker.engine import views
from gennaker.errors import ValidationFailed
from gennaker.runtime import Runtime, build_runtime

out = console()
err = console(stderr=True)

ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", parser=options.name_value, help="A parameter: name=value (repeatable)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def runtime_from(ctx: typer.Context) -> Runtime:
    o = ctx.obj
    return build_runtime(o.db, o.config)


def client_from(ctx: typer.Context) -> Client:
    o = ctx.obj
    if o.server:
        return HttpClient(o.server, o.user, o.token)
    return LocalClient(runtime_from(ctx), o.user)


def _exists(path: str) -> bool:
    try:
        return Path(path).exists()
    except OSError:  # e.g. a name too long to be a file: then it is not one
        return False


def parse_params(raw: list[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in raw or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"takes name=value, not {item!r}", param_hint="--param")
        params[name.strip()] = value
    return params


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def register(app: typer.Typer) -> None:
    executions_app = typer.Typer(help="Executions: list and show.", no_args_is_help=True)
    pipelines_app = typer.Typer(help="Pipelines registered with Gennaker.", no_args_is_help=True)
    app.add_typer(executions_app, name="executions")
    app.add_typer(pipelines_app, name="pipelines")

    @app.command()
    def validate(ctx: typer.Context, files: Annotated[list[Path], typer.Argument(help="Pipeline files.")]) -> None:
        """Validate pipeline files; print every problem as file:line:column and exit 2 if any."""
        from gennaker.cloud.tasks import bind_schemas
        from gennaker.spec.config import load_config
        from gennaker.spec.pipeline import load_pipeline
        from gennaker.stages import default_registry, stage_schemas

        # Bound to the configured accounts: a deploy's provider fields are checked by its account's kind.
        schemas = bind_schemas(stage_schemas(default_registry()), load_config(getattr(ctx.obj, "config", None)))
        problems = []
        for f in files:
            try:
                p = load_pipeline(str(f), schemas)
                ok = f" {f}: pipeline '{p.name}' with {len(p.stages)} stages"
                out.print(Text.assemble(("ok", "green"), ok), highlight=False)
            except ValidationFailed as exc:
                problems.extend(exc.problems)
        if problems:
            raise ValidationFailed(problems)

    @app.command()
    def run(
        ctx: typer.Context,
        pipeline: Annotated[str, typer.Argument(help="A pipeline file, or the name of a registered pipeline.")],
        param: ParamOpt = None,
        wait: Annotated[bool, typer.Option("--wait", help="Follow progress; exit 0 only if it SUCCEEDED.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Start a pipeline. Without a server, --wait runs the engine in this process."""
        params = parse_params(param)
        client = client_from(ctx)
        is_file = _exists(pipeline) or pipeline.endswith((".yml", ".yaml"))
        execution_id = client.run_file(pipeline, params) if is_file else client.start_registered(pipeline, params)
        if not wait:
            if as_json:
                print_json({"id": execution_id})
            else:
                out.print(execution_id)
            return
        final = _wait(client, execution_id, as_json)
        raise typer.Exit(0 if final["status"] == "SUCCEEDED" else 1)

    def _wait(client: Client, execution_id: str, as_json: bool) -> dict[str, Any]:
        worker = None
        if isinstance(client, LocalClient):
            worker = client.rt.worker()
            worker.start()
        try:
            if as_json or not out.is_terminal:
                ex = _poll_until_done(client, execution_id, lambda ex: None)
            else:
                with Live(console=out, refresh_per_second=4) as live:
                    ex = _poll_until_done(client, execution_id, lambda ex: live.update(stage_table(ex)))
        finally:
            if worker:
                worker.stop()
        if as_json:
            print_json(ex)
        else:
            if not out.is_terminal:
                out.print(stage_table(ex))
            out.print(
                f"execution {execution_id}: {ex['status']}" + (f" ({ex['message']})" if ex.get("message") else ""),
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        return ex

    def _poll_until_done(client: Client, execution_id: str, show: Any) -> dict[str, Any]:
        announced: set[str] = set()
        while True:
            ex = client.execution(execution_id)
            show(ex)
            for s in ex["stages"]:
                if not s.get("awaiting_judgment"):
                    announced.discard(s["stage_id"])  # a rolling deploy may ask again at its next step
                elif s["stage_id"] not in announced:
                    announced.add(s["stage_id"])
                    err.print(
                        f"stage '{s['stage_id']}' awaits judgment: gennaker judge {execution_id} "
                        f"{s['stage_id']} --choice {judgment_options(s)[0]}",
                        highlight=False,
                        markup=False,
                    )
            if views.is_done(ex["status"]):
                return ex
            time.sleep(0.25)

    @executions_app.command("list")
    def list_(
        ctx: typer.Context,
        pipeline: Annotated[str | None, typer.Option(help="Only this pipeline.")] = None,
        status: Annotated[list[str] | None, typer.Option(help="Only these statuses (repeatable).")] = None,
        limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
        as_json: JsonOpt = False,
    ) -> None:
        """List executions, newest first."""
        rows = client_from(ctx).executions(pipeline, status, limit)
        print_json(rows) if as_json else out.print(execution_list(rows))

    @executions_app.command("show")
    def show(ctx: typer.Context, execution_id: str, as_json: JsonOpt = False) -> None:
        """Show an execution's stages: Step, Started, Duration, Status."""
        client = client_from(ctx)
        ex = client.execution(execution_id)
        if as_json:
            ex["operations"] = client.operations(execution_id)
            print_json(ex)
            return
        out.print(stage_table(ex))
        if ex.get("message"):
            out.print(ex["message"], highlight=False, markup=False, soft_wrap=True)

    @app.command()
    def logs(
        ctx: typer.Context,
        execution_id: str,
        stage: str,
        follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the stage ends.")] = False,
    ) -> None:
        """Print a stage's log."""
        for row in follow_logs(client_from(ctx), execution_id, stage, follow):
            line = row["line"]
            if row["stream"] == "stderr":
                err.print(line, highlight=False, markup=False, soft_wrap=True)
            else:
                out.print(line, highlight=False, markup=False, soft_wrap=True)

    @app.command()
    def cancel(
        ctx: typer.Context,
        execution_id: str,
        reason: Annotated[str | None, typer.Option(parser=options.text, help="Why (recorded).")] = None,
    ) -> None:
        """Cancel an execution; running commands are terminated."""
        client_from(ctx).cancel(execution_id, reason)
        out.print(f"canceled {execution_id}", markup=False)

    @app.command()
    def pause(ctx: typer.Context, execution_id: str) -> None:
        """Pause an execution (running tasks finish their step; nothing new starts)."""
        client_from(ctx).pause(execution_id)
        out.print(f"paused {execution_id}", markup=False)

    @app.command()
    def resume(ctx: typer.Context, execution_id: str) -> None:
        """Resume a paused execution."""
        client_from(ctx).resume(execution_id)
        out.print(f"resumed {execution_id}", markup=False)

    @app.command()
    def restart(ctx: typer.Context, execution_id: str, stage: str) -> None:
        """Restart a finished stage and every stage after it."""
        client_from(ctx).restart(execution_id, stage)
        out.print(f"restarting {stage} of {execution_id}", markup=False)

    @app.command()
    def skip(ctx: typer.Context, execution_id: str, stage: str) -> None:
        """Skip the rest of a wait stage."""
        client_from(ctx).skip(execution_id, stage)
        out.print(f"skipped {stage} of {execution_id}", markup=False)

    @app.command()
    def judge(
        ctx: typer.Context,
        execution_id: str,
        stage: str,
        choice: Annotated[str, typer.Option(parser=options.name, help="The judgment, e.g. approve or reject.")],
        comment: Annotated[str | None, typer.Option(parser=options.text, help="Why (recorded).")] = None,
    ) -> None:
        """Judge a manual judgment stage."""
        client_from(ctx).judge(execution_id, stage, choice, comment)
        out.print(f"judged {stage} of {execution_id}: {choice}", markup=False)

    @pipelines_app.command("register")
    def register_(ctx: typer.Context, files: list[Path]) -> None:
        """Register pipeline files so they can be started by name (and from the console)."""
        client = client_from(ctx)
        for f in files:
            info = client.register(str(f))
            out.print(f"registered {info['name']} ({info['stages']} stages)", markup=False)

    @pipelines_app.command("list")
    def pipelines_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """List pipelines known to Gennaker."""
        rows = client_from(ctx).pipelines()
        if as_json:
            print_json(rows)
            return
        for r in rows:
            out.print(
                f"{r['name']}  ({r['application']})  {'registered' if r['registered'] else 'run from file'}",
                highlight=False,
                markup=False,
            )
            for line in r.get("triggers") or []:
                out.print(f"    trigger: {line}", highlight=False, markup=False)
            if r.get("last_fired"):
                last = r["last_fired"]
                out.print(f"    last fired: {last['label']} → {last['execution_id']}", highlight=False, markup=False)
