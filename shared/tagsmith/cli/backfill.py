"""``tagsmith backfill start|status|list``: re-tag a tenant's library with its active models."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from tagsmith.cli.common import JsonOpt, Target, TargetOpt, TenantOpt, err, open_session, out, run_or_exit
from tagsmith.errors import TagsmithError
from tagsmith.keys import validate_tenant

app = typer.Typer()
backfill_app = typer.Typer(
    help="Re-tag a tenant's existing library (runs on the backfill queue).", no_args_is_help=True
)
app.add_typer(backfill_app, name="backfill")

IdOpt = Annotated[
    str | None,
    typer.Option(
        "--id", help="backfill id (default: start: from the active model versions; status: the latest)"
    ),
]


def _print_status(d: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(d, ensure_ascii=False))
        return
    colour = "green" if d["state"] == "complete" else "yellow"
    out.print(
        f"backfill [bold]{d['id']}[/] of {d['tenant']}: [{colour}]{d['state']}[/] "
        f"listed {d['listed']}, done {d['done']}, failed {d['failed']}, pending {d['pending']}"
        + (f", [red]{d['errors']} retrying[/]" if d["errors"] else "")
    )


@backfill_app.command("start")
def start(
    tenant: TenantOpt,
    backfill_id: IdOpt = None,
    rate: Annotated[
        float | None,
        typer.Option(help="at most this many assets per second are queued (default TAGSMITH_BACKFILL_RATE)"),
    ] = None,
    keys_per_message: Annotated[int, typer.Option(help="assets per SQS message")] = 25,
    wait: Annotated[bool, typer.Option(help="print progress until the backfill completes")] = False,
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Start (or resume, with the id of an unfinished one) a backfill of every asset of the tenant."""
    from tagsmith.backfill import BackfillOptions

    def go() -> None:
        validate_tenant(tenant)
        s = open_session(target)
        if not s.components.settings.backfill_queue_url:
            raise TagsmithError(
                "a backfill runs on the backfill queue: start the local stack (`make run`) or use "
                "--target aws with TAGSMITH_BACKFILL_QUEUE_URL set"
            )
        svc = s.components.backfill
        progress = svc.start(
            tenant,
            backfill_id=backfill_id,
            options=BackfillOptions(rate=rate or svc.default_options.rate, keys_per_message=keys_per_message),
        )
        if not as_json:
            err.print(f"backfill {progress.id} of {tenant} ({s.where}) for models {progress.models}")
        status = svc.status(tenant, progress.id)
        if status.complete and not as_json:
            err.print("[yellow]that backfill is already complete[/]: pass --id NEW-ID to run another")
        while wait and not status.complete:
            _print_status(status.to_dict(), as_json)
            time.sleep(2)
            status = svc.status(tenant, progress.id)
        _print_status(status.to_dict(), as_json)

    run_or_exit(go)


@backfill_app.command("status")
def status(
    tenant: TenantOpt, backfill_id: IdOpt = None, target: TargetOpt = Target.AUTO, as_json: JsonOpt = False
) -> None:
    """Progress of a backfill: listed, done, failed and pending assets."""

    def go() -> None:
        validate_tenant(tenant)
        _print_status(open_session(target).components.backfill.status(tenant, backfill_id).to_dict(), as_json)

    run_or_exit(go)


@backfill_app.command("list")
def list_backfills(tenant: TenantOpt, target: TargetOpt = Target.AUTO, as_json: JsonOpt = False) -> None:
    """Every backfill of the tenant, oldest first."""

    def go() -> None:
        validate_tenant(tenant)
        svc = open_session(target).components.backfill
        for backfill_id in svc.list_ids(tenant):
            _print_status(svc.status(tenant, backfill_id).to_dict(), as_json)

    run_or_exit(go)
