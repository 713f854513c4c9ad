"""``tagsmith up``: the local stack."""

from __future__ import annotations

from typing import Annotated

import typer

from tagsmith.cli.common import (
    fail,
    out,
)
from tagsmith.errors import TagsmithError

app = typer.Typer()


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="run the demo tenant once the stack is ready")] = True,
    serve: Annotated[bool, typer.Option(help="keep serving until Ctrl-C")] = True,
) -> None:
    """Start the local stack, run the demo, serve until Ctrl-C.

    moto (S3, SQS), osmem (OpenSearch API), the handlers and the review console, on 127.0.0.1;
    this is what `make run` runs.
    """
    from tagsmith.local.app import run_local

    try:
        code = run_local(run_demo=demo, serve=serve, console=out)
    except (TagsmithError, RuntimeError) as e:
        fail(str(e))
    raise typer.Exit(code)
