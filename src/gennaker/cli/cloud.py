"""Cloud commands: ``sandbox`` (simulated AWS seeded with ``shop``) and ``plan`` (what a pipeline's
deploy and cleanup stages would change, without changing anything)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated

import typer

from gennaker.cli import options
from gennaker.cli.render import console
from gennaker.cloud.plan import plan_pipeline, render
from gennaker.spec.config import load_config

out = console()


def register(app: typer.Typer) -> None:
    @app.command()
    def sandbox(
        port: Annotated[
            int | None, typer.Option(parser=options.port, help="Port on 127.0.0.1 (a free one by default).")
        ] = None,
    ) -> None:
        """Run simulated AWS seeded with the sample application 'shop' until Ctrl-C."""
        from gennaker.sandbox import start_sandbox

        box = start_sandbox(port)
        out.print(f"Simulated AWS is listening on [bold]{box.endpoint}[/bold] (loopback only).")
        out.print("Save this as gennaker.yml (or point GENNAKER_CONFIG at it):\n")
        typer.echo(box.config_text)
        out.print("Ctrl-C stops the sandbox; everything in it is forgotten.")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass  # Ctrl-C is how the user asks us to stop
        finally:
            box.stop()
            out.print("sandbox stopped")

    @app.command()
    def plan(
        ctx: typer.Context,
        file: Annotated[Path, typer.Argument(parser=options.file, help="Pipeline file.")],
        param: Annotated[
            list[str] | None, typer.Option("--param", "-p", parser=options.name_value, help="name=value (repeatable).")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Show what each deploy, cleanup and server-group stage would do today, changing nothing."""
        from gennaker.cli.core import parse_params
        from gennaker.cloud.registry import CloudServices
        from gennaker.cloud.tasks import bind_schemas
        from gennaker.engine.operations import bind_parameters
        from gennaker.errors import GennakerError
        from gennaker.spec.pipeline import load_pipeline
        from gennaker.stages import default_registry, stage_schemas

        registry = default_registry()
        config = load_config(getattr(ctx.obj, "config", None))
        pipeline = load_pipeline(str(file), bind_schemas(stage_schemas(registry), config))
        try:
            # Missing and unknown parameters are a usage error, reported as one line (exit 2).
            params = bind_parameters(pipeline, parse_params(param))
        except GennakerError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(2) from None
        services = CloudServices(config)
        plans = plan_pipeline(pipeline, registry, services, params)
        if as_json:
            typer.echo(json.dumps([p.as_dict() for p in plans], indent=2))
        else:
            typer.echo(render(plans), nl=False)
        if any(p.error for p in plans):
            raise typer.Exit(1)
