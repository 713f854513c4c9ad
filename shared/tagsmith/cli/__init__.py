"""``tagsmith``: train, tag, search, review and run the local stack from the command line.

Each feature adds its commands in its own module; this one only assembles them.
"""

from __future__ import annotations

import typer

from tagsmith.cli import assets, backfill, dashboards, local, outputs, review, searching, training

app = typer.Typer(
    help="Tagsmith: custom few-shot auto-tagging for digital asset libraries.", no_args_is_help=True
)
for module in (training, assets, searching, local, backfill, review, dashboards, outputs):
    app.registered_commands.extend(module.app.registered_commands)
    app.registered_groups.extend(module.app.registered_groups)

__all__ = ["app"]
