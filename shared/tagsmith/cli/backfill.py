"""``tagsmith backfill start|status|list``: re-tag a tenant's library with its active models."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from tagsmith.cli.common import JsonOpt, Target, TargetOpt, TenantOpt, err, open_session, out, run_or_exit
from tagsmith.errors import TagsmithError
from tagsmith.keys import validate_tenant

app = typer.Typer()
backfill_app = typer.Typer(
    help="Re-tag a tenant's existing library (on the backfill queue).", no_args_is_help=True
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
    wait: Annotated[
        bool, typer.Option("--wait", help="show the progress until the backfill completes")
    ] = False,
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Re-tag every asset of the tenant with its active models.

    With --id of an unfinished backfill, resume it.
    """
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
        if wait and not status.complete:
            status = _wait(svc, tenant, progress.id, status, as_json)
        _print_status(status.to_dict(), as_json)

    run_or_exit(go)


def _wait(svc: Any, tenant: str, backfill_id: str, status: Any, as_json: bool) -> Any:
    """Poll until the backfill completes: a progress bar on a terminal, else a line per change
    (JSON lines with --json)."""
    from tagsmith.cli.progress import progress_bar

    with progress_bar(enabled=not as_json) as bar:
        task = bar.add_task(f"backfill {backfill_id}", total=None)
        last = None
        while not status.complete:
            d = status.to_dict()
            bar.update(task, completed=d["done"] + d["failed"], total=d["listed"] or None)
            if bar.disable and (d["listed"], d["done"], d["failed"]) != last:
                _print_status(d, as_json)
                last = (d["listed"], d["done"], d["failed"])
            time.sleep(2)
            status = svc.status(tenant, backfill_id)
    return status


@backfill_app.command("status")
def status(
    tenant: TenantOpt, backfill_id: IdOpt = None, target: TargetOpt = Target.AUTO, as_json: JsonOpt = False
) -> None:
    """Progress of a backfill: listed, done, failed, pending."""

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
