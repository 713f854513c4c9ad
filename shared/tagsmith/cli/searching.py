"""``tagsmith search``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from tagsmith.cli.common import (
    JsonOpt,
    Target,
    TargetOpt,
    TenantOpt,
    open_session,
    out,
    run_or_exit,
)
from tagsmith.keys import validate_tenant

app = typer.Typer()

@app.command()
def search(
    query: Annotated[str, typer.Argument(help="free text in any configured language")],
    tenant: TenantOpt,
    tags: Annotated[list[str] | None, typer.Option("--tag", help="filter: model/tag (repeatable)")] = None,
    size: Annotated[int, typer.Option(help="results per page (max 100)")] = 10,
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Search a tenant's assets (the stack's OpenSearch, or the records themselves offline)."""
    from tagsmith.search import SearchQuery

    def go() -> None:
        validate_tenant(tenant)
        s = open_session(target)
        c = s.components
        if s.stack is None and not c.settings.opensearch_url:
            # offline: the index is a projection, so build it from the records right here
            models = [m for mid in c.models.model_ids(tenant) if (m := c.models.load_active(tenant, mid))]
            c.index.rebuild(tenant, list(c.records.iter_tenant(tenant)), {m.model_id: m.taxonomy for m in models})
        page = c.index.search(tenant, SearchQuery(text=query or None, tags=tuple(tags or ()), size=size))
        if as_json:
            print(json.dumps(page.to_dict(), ensure_ascii=False))
            return
        out.print(f"{page.total} match(es) for [bold]{query!r}[/] in {tenant} ({s.where})")
        for hit in page.hits:
            shown = ", ".join(
                f"{t['model']}/{t['tag']}" + (f" {t['confidence']:.2f}" if t.get("confidence") is not None else "")
                for t in hit.tags if t.get("state") in ("applied", "confirmed")
            )
            out.print(f"  {hit.asset_key}  [dim]{shown}[/]")

    run_or_exit(go)
