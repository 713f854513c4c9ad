"""``tagsmith webhooks ...``, ``tagsmith export`` and ``tagsmith republish``: tags out of Tagsmith."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tagsmith.cli.common import JsonOpt, Target, TargetOpt, TenantOpt, err, open_session, out, run_or_exit
from tagsmith.keys import validate_tenant

app = typer.Typer()
webhooks_app = typer.Typer(help="Webhooks: change events POSTed, signed, to your URL.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("add")
def add(
    tenant: TenantOpt,
    url: Annotated[str, typer.Option(help="where to POST the events (https)")],
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", help="only events of this kind (repeatable): applied, review, confirmed, ..."),
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="only events touching this model (repeatable)")
    ] = None,
    description: Annotated[str, typer.Option(help="a note for you")] = "",
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Subscribe a URL to the tenant's change events.

    Prints the signing secret once (keep it: it is not shown again).
    """

    def go() -> None:
        s = open_session(target)
        sub = s.components.webhooks.subscriptions.add(
            validate_tenant(tenant), url, kinds=kind or (), models=model or (), description=description,
            allow_private=s.components.settings.webhooks_allow_private,
        )  # fmt: skip
        if as_json:
            print(json.dumps({**sub.public(), "secret": sub.secret}))
            return
        out.print(f"webhook [bold]{sub.id}[/] -> {sub.url} ({', '.join(sub.kinds) or 'every kind'})")
        out.print(f"signing secret (shown once): [bold]{sub.secret}[/]")

    run_or_exit(go)


@webhooks_app.command("list")
def list_(tenant: TenantOpt, target: TargetOpt = Target.AUTO, as_json: JsonOpt = False) -> None:
    """The tenant's webhooks (secrets masked)."""

    def go() -> None:
        subs = open_session(target).components.webhooks.subscriptions.list(validate_tenant(tenant))
        for sub in subs:
            if as_json:
                print(json.dumps(sub.public()))
            else:
                out.print(
                    f"{sub.id}  {sub.url}  kinds: {', '.join(sub.kinds) or 'all'}  models: {', '.join(sub.models) or 'all'}"
                )
        if not subs and not as_json:
            out.print(f"tenant {tenant} has no webhooks; add one with `tagsmith webhooks add`")

    run_or_exit(go)


@webhooks_app.command("remove")
def remove(
    tenant: TenantOpt,
    webhook_id: Annotated[str, typer.Argument(help="wh_... from `webhooks list`")],
    target: TargetOpt = Target.AUTO,
) -> None:
    """Stop a webhook (deliveries already queued for it are dropped)."""
    run_or_exit(
        lambda: open_session(target).components.webhooks.subscriptions.remove(
            validate_tenant(tenant), webhook_id
        )
    )
    out.print(f"removed {webhook_id}")


@webhooks_app.command("rotate")
def rotate(
    tenant: TenantOpt,
    webhook_id: Annotated[str, typer.Argument(help="wh_...")],
    target: TargetOpt = Target.AUTO,
) -> None:
    """A new signing secret (the old one stops working at once)."""
    sub = run_or_exit(
        lambda: open_session(target).components.webhooks.subscriptions.rotate(
            validate_tenant(tenant), webhook_id
        )
    )
    out.print(f"new signing secret of {sub.id} (shown once): [bold]{sub.secret}[/]")


@app.command("export")
def export(
    tenant: TenantOpt,
    output: Annotated[Path, typer.Option("--out", "-o", help="a file (csv, jsonl) or a folder (xmp)")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, jsonl or xmp")] = "csv",
    lang: Annotated[
        list[str] | None, typer.Option("--lang", help="label languages (repeatable; default: the tenant's)")
    ] = None,
    restart: Annotated[bool, typer.Option(help="ignore a checkpoint left by an interrupted export")] = False,
    target: TargetOpt = Target.AUTO,
) -> None:
    """Write a tenant's tags to a file or folder.

    CSV, JSON lines or XMP sidecars; an interrupted export resumes where it stopped.
    """
    from tagsmith.cli.progress import progress_bar, record_count
    from tagsmith.outbound.export import export_tenant

    def go() -> None:
        c = open_session(target).components
        validate_tenant(tenant)
        taxonomies = {m.model_id: m.taxonomy for m in c.active_models.for_tenant(tenant)}
        languages = lang or list(c.output_settings.for_tenant(tenant).languages)
        with progress_bar() as bar:
            total = None if bar.disable else record_count(c, tenant)  # one listing: an end and an ETA
            task = bar.add_task(f"exporting {tenant}", total=total)
            result = export_tenant(
                c.records, tenant, fmt, output, taxonomies=taxonomies, languages=languages, restart=restart,
                progress=lambda n: bar.update(task, completed=n),
            )  # fmt: skip
        resumed = f" (resumed after {result.resumed_after})" if result.resumed_after else ""
        out.print(f"exported {result.assets} assets of {tenant} to {result.out}{resumed}")

    run_or_exit(go)


@app.command("republish")
def republish(
    tenant: TenantOpt,
    everything: Annotated[
        bool,
        typer.Option(
            "--all",
            help="every record, not only unpublished changes (after turning object tags or sidecars on)",
        ),
    ] = False,
    target: TargetOpt = Target.AUTO,
) -> None:
    """Publish the record changes a crash left unpublished.

    Change events, S3 object tags and XMP sidecars.
    """

    from tagsmith.cli.progress import progress_bar

    def go() -> None:
        c = open_session(target).components
        with progress_bar() as bar:
            task = bar.add_task(f"checking {tenant}", total=None)
            counts = c.outbound.repair_tenant(
                validate_tenant(tenant),
                everything=everything,
                progress=lambda n: bar.update(task, completed=n),
            )
        out.print(f"checked {counts.checked} records: published {counts.published}, failed {counts.failed}")
        for line in counts.errors[:10]:
            err.print(f"  {line}")

    run_or_exit(go)
