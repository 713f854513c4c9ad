"""``tagsmith review``: the review queue from the command line, reviewer tokens, the console.

Examples::

    tagsmith review list -t acme --model product --max-confidence 0.6
    tagsmith review backlog -t acme
    tagsmith review decide -t acme 3f9a... --accept            # or --reject, --pick TAG, --none
    tagsmith review token -t acme --name ana --lifetime 30d    # a reviewer token (default 90d)
    tagsmith review tokens -t acme                             # list: id, holder, expiry, status
    tagsmith review revoke -t acme 1f0c2a9e                    # revoke by id (8+ hex digits)
    tagsmith review retrain -t acme -m product                 # retrain on the corrections now
"""

from __future__ import annotations

import getpass
import json
from typing import Annotated

import typer
from rich.table import Table

from tagsmith.cli.common import JsonOpt, Target, TargetOpt, TenantOpt, fail, open_session, out, run_or_exit
from tagsmith.keys import validate_tenant
from tagsmith.records import NONE_TAG

app = typer.Typer()
review_app = typer.Typer(help="The review queue: list, decide, backlog, tokens, retrain.")
app.add_typer(review_app, name="review")


def _services(target: Target):  # type: ignore[no-untyped-def]
    from tagsmith.console import ConsoleServices

    session = open_session(target)
    return session, ConsoleServices.from_components(session.components)


@review_app.command("list")
def list_items(
    tenant: TenantOpt,
    model: Annotated[str | None, typer.Option("--model", "-m", help="only this model")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="only items suggesting this tag")] = None,
    min_confidence: Annotated[float | None, typer.Option(help="only items at or above")] = None,
    max_confidence: Annotated[float | None, typer.Option(help="only items at or below")] = None,
    limit: Annotated[int, typer.Option(help="how many (most informative first)")] = 20,
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Pending review items, most informative first."""
    from tagsmith.console import QueueFilter, informativeness
    from tagsmith.console.queue import pending_queue_page

    def go() -> None:
        validate_tenant(tenant)
        _, s = _services(target)
        flt = QueueFilter(model=model, tag=tag, min_confidence=min_confidence, max_confidence=max_confidence)
        queue = pending_queue_page(s.reviews, tenant, flt, limit=limit)
        page = queue.items
        if as_json:
            for i in page:
                print(
                    json.dumps(
                        {
                            "id": i.id,
                            "asset_key": f"{tenant}/{i.asset_path}",
                            "model": i.model,
                            "suggestion": i.suggestion,
                            "confidence": i.confidence,
                            "alternatives": [a.tag for a in i.alternatives],
                            "informativeness": informativeness(i),
                        },
                        ensure_ascii=False,
                    )
                )
            return
        table = Table(title=f"review queue of {tenant}")
        table.add_column("id", no_wrap=True)  # what `review decide` takes: never cut
        table.add_column("asset", overflow="fold")  # a full name to copy, folded rather than cut
        for name in ("model", "suggestion", "confidence", "alternatives"):
            table.add_column(name, overflow="fold")
        for i in page:
            alts = ", ".join(f"{a.tag} {a.confidence:.2f}" for a in i.alternatives)
            table.add_row(
                i.id, f"{tenant}/{i.asset_path}", i.model, i.suggestion, f"{i.confidence:.2f}", alts
            )
        out.print(table)
        out.print(f"{queue.total} item(s) match", highlight=False)
        if page:
            out.print(
                f"decide one: tagsmith review decide -t {tenant} {page[0].id} --accept   "
                "(or --reject, --pick TAG, --none)",
                highlight=False,
                soft_wrap=True,
            )

    run_or_exit(go)


@review_app.command()
def backlog(tenant: TenantOpt, target: TargetOpt = Target.AUTO, as_json: JsonOpt = False) -> None:
    """Pending items per model and suggested tag.

    Counted from the queue's entries, without reading the items.
    """
    from tagsmith.console import QueueFilter
    from tagsmith.console.queue import pending_queue_page

    def go() -> None:
        validate_tenant(tenant)
        _, s = _services(target)
        entries = pending_queue_page(s.reviews, tenant, QueueFilter(), limit=1).backlog
        if as_json:
            for b in entries:
                print(json.dumps({"tenant": tenant, "model": b.model, "tag": b.tag, "pending": b.pending}))
            return
        table = Table("model", "tag", "pending", title=f"review backlog of {tenant}")
        for b in entries:
            table.add_row(b.model, b.tag, str(b.pending))
        out.print(table)

    run_or_exit(go)


@review_app.command()
def decide(
    tenant: TenantOpt,
    item_id: Annotated[str, typer.Argument(help="the review item id (see `tagsmith review list`)")],
    accept: Annotated[bool, typer.Option("--accept", help="the suggestion is right")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="the suggestion is wrong")] = False,
    pick: Annotated[str | None, typer.Option("--pick", help="this other tag is right")] = None,
    none: Annotated[bool, typer.Option("--none", help="none of the model's tags fits")] = False,
    reviewer: Annotated[str | None, typer.Option(help="who decides (default: your user name)")] = None,
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Decide one review item, exactly as the console would."""
    chosen = [
        a
        for a, on in (("accept", accept), ("reject", reject), ("pick", pick is not None), ("none", none))
        if on
    ]
    if len(chosen) != 1:
        fail("choose exactly one of --accept, --reject, --pick TAG, --none")

    def go() -> None:
        validate_tenant(tenant)
        _, s = _services(target)
        outcome = s.decisions.decide(
            tenant, item_id, chosen[0], tag=pick, reviewer=reviewer or getpass.getuser()
        )
        if as_json:
            print(json.dumps(outcome.to_dict(), ensure_ascii=False))
            return
        tags = ", ".join(
            f"none of the model's tags ({t['state']})"
            if t["tag"] == NONE_TAG
            else f"{t['tag']} ({t['state']})"
            for t in outcome.tags
        )
        out.print(
            f"{outcome.asset_key}: {tags}" + ("" if outcome.changed else "  [dim](already recorded)[/]"),
            highlight=False,
        )
        for reason in outcome.stale:
            out.print(f"[yellow]stale item, decision applied anyway:[/] {reason}")
        if outcome.retrain:
            out.print(f"retrain requested: {outcome.retrain['key']}")

    run_or_exit(go)


@review_app.command()
def token(
    tenant: TenantOpt,
    name: Annotated[str, typer.Option(help="who the token is for")],
    role: Annotated[str, typer.Option(help="reader, reviewer or admin")] = "reviewer",
    lifetime: Annotated[
        str, typer.Option(help="how long it works: 30m, 12h, 90d, 2w, or 'never' (ask for it explicitly)")
    ] = "90d",
    target: TargetOpt = Target.AUTO,
) -> None:
    """Issue a token for the console and the search API.

    It is printed once; only its hash is stored.
    """
    from tagsmith.auth import parse_lifetime, token_id

    def go() -> None:
        validate_tenant(tenant)
        span = parse_lifetime(lifetime)
        session, s = _services(target)
        issued = s.tokens.issue(tenant, name=name, role=role, lifetime=span)
        print(issued)
        out.print(
            f"[dim]id {token_id(issued)}, "
            + (f"expires in {lifetime}" if span is not None else "never expires")
            + f"; revoke with: tagsmith review revoke -t {tenant} {token_id(issued)}[/]",
            soft_wrap=True,
        )
        if session.stack is not None and session.stack.console_url:
            out.print(f"[dim]console: {session.stack.console_url}/review#token={issued}[/]", soft_wrap=True)

    run_or_exit(go)


@review_app.command("tokens")
def list_tokens(tenant: TenantOpt, target: TargetOpt = Target.AUTO, as_json: JsonOpt = False) -> None:
    """List the tenant's tokens and whether each still works.

    Id, holder, role, issued, expires and status; the tokens themselves are never stored.
    """
    from datetime import UTC, datetime

    def go() -> None:
        validate_tenant(tenant)
        _, s = _services(target)
        now = datetime.now(UTC)
        infos = s.tokens.list_tokens(tenant)
        if as_json:
            for t in infos:
                print(json.dumps(t.to_dict(now), ensure_ascii=False))
            return
        table = Table("id", "name", "role", "issued", "expires", "status", title=f"tokens of {tenant}")
        for t in infos:
            expires = t.expires_at or ("legacy, never expires" if t.legacy else "never")
            status = t.status(now) + (f" {t.revoked_at}" if t.revoked_at else "")
            table.add_row(t.id, t.name, t.role, t.created_at, expires, status)
        out.print(table)

    run_or_exit(go)


@review_app.command()
def revoke(
    tenant: TenantOpt,
    token_id: Annotated[
        str, typer.Argument(help="the token's id (8+ hex digits, from 'tagsmith review tokens')")
    ],
    target: TargetOpt = Target.AUTO,
) -> None:
    """Revoke a token: it stops working at once.

    It stays listed, as revoked.
    """

    def go() -> None:
        validate_tenant(tenant)
        _, s = _services(target)
        done = s.tokens.revoke(tenant, token_id)
        out.print(f"token {done.id}: {done.status}")

    run_or_exit(go)


@review_app.command()
def retrain(
    tenant: TenantOpt,
    model: Annotated[str, typer.Option("--model", "-m", help="the model to retrain")],
    target: TargetOpt = Target.AUTO,
) -> None:
    """Retrain a model on its examples and every correction now."""

    def go() -> None:
        validate_tenant(tenant)
        _, s = _services(target)
        request = s.corrections.request_retrain(tenant, model)
        out.print(f"training request written: {request['key']} (the train handler picks it up)")

    run_or_exit(go)
