"""``tagsmith search`` and ``tagsmith reindex``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from tagsmith.cli.common import (
    JsonOpt,
    Target,
    TargetOpt,
    TenantOpt,
    open_session,
    out,
    run_or_exit,
)
from tagsmith.errors import InvalidInputError, TagsmithError
from tagsmith.keys import validate_tenant
from tagsmith.records import NONE_TAG
from tagsmith.taxonomy import Taxonomy

if TYPE_CHECKING:
    from tagsmith.search.waiting import WaitingForReview
    from tagsmith.wiring import Components

app = typer.Typer()


def active_taxonomies(c: Components, tenant: str) -> dict[str, Taxonomy]:
    """Model id -> taxonomy of every active model of ``tenant`` (what documents are shaped with)."""
    models = [m for mid in c.models.model_ids(tenant) if (m := c.models.load_active(tenant, mid))]
    return {m.model_id: m.taxonomy for m in models}


def known_tenants(c: Components) -> list[str]:
    """Every tenant with data (records, models...) in the data bucket."""
    return sorted({info.key.split("/")[1] for info in c.store.list(c.settings.data_bucket, "tenants/")})


@app.command()
def search(
    tenant: TenantOpt,
    query: Annotated[str, typer.Argument(help="free text in any configured language")] = "",
    lang: Annotated[
        list[str] | None, typer.Option("--lang", help="search these languages only (repeatable)")
    ] = None,
    tags: Annotated[list[str] | None, typer.Option("--tag", help="filter: model/tag (repeatable)")] = None,
    model: Annotated[str | None, typer.Option(help="filter: a visible tag of this model")] = None,
    min_confidence: Annotated[
        float | None, typer.Option(help="filter: a visible tag at least this sure")
    ] = None,
    source: Annotated[str | None, typer.Option(help="filter: a visible tag from 'ai' or 'human'")] = None,
    media_type: Annotated[str | None, typer.Option(help="filter: e.g. image/jpeg")] = None,
    review_state: Annotated[str | None, typer.Option(help="filter: 'pending' or 'clear'")] = None,
    uploaded_from: Annotated[str | None, typer.Option(help="filter: uploaded on/after (ISO date)")] = None,
    uploaded_to: Annotated[str | None, typer.Option(help="filter: uploaded on/before (ISO date)")] = None,
    size: Annotated[int, typer.Option(help="results per page (max 100)")] = 10,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page")] = None,
    include_review: Annotated[
        bool,
        typer.Option(
            "--include-review",
            help="also find assets whose tag named by the text still waits for review (not searchable "
            "by default: a reviewer has not seen it yet)",
        ),
    ] = False,
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Search a tenant's assets, in any language.

    Matches the labels of their tags, the text read on them and their path.

    Works against the stack's OpenSearch, AWS, or offline (the records are indexed first). --json
    prints the same object as the HTTP API (see docs/search.md), plus waiting_for_review.
    """
    from tagsmith.search import LANGUAGES, SearchQuery, search_with_waiting
    from tagsmith.search.query import decode_cursor

    def go() -> None:
        validate_tenant(tenant)
        q = SearchQuery(
            text=query or None,
            languages=tuple(lang) if lang else LANGUAGES,
            tags=tuple(tags or ()),
            model=model,
            min_confidence=min_confidence,
            source=source,
            media_type=media_type,
            review_state=review_state,
            uploaded_from=uploaded_from,
            uploaded_to=uploaded_to,
            size=size,
            search_after=decode_cursor(cursor) if cursor else None,
        )
        s = open_session(target)
        c = s.components
        if s.stack is None and not c.settings.opensearch_url:
            # offline: the index is a projection, so build it from the records right here
            c.index.rebuild(tenant, list(c.records.iter_tenant(tenant)), active_taxonomies(c, tenant))
        page, waiting = search_with_waiting(
            c.index, tenant, q, active_taxonomies(c, tenant), include=include_review
        )
        if as_json:
            body = page.to_dict()
            body["waiting_for_review"] = waiting.to_dict() if waiting else None
            print(json.dumps(body, ensure_ascii=False))
            return
        found = f"{page.total} match{'' if page.total == 1 else 'es'}"
        what = f" for [bold]{escape(repr(query))}[/]" if query else ""
        out.print(f"{found}{what} in {tenant} ({s.where})", highlight=False)
        for hit in page.hits:
            out.print(f"  {hit.asset_key}  [dim]{escape(describe_tags(hit.tags))}[/]", highlight=False)
        if page.next_search_after:
            out.print(f"[dim]more: --cursor {page.to_dict()['next_cursor']}[/]", highlight=False)
        if waiting is not None and waiting.count:
            _print_waiting(waiting, tenant)

    run_or_exit(go)


def describe_tags(tags: list[dict[str, Any]]) -> str:
    """A hit's tags for a person: visible ones with their confidence, those waiting for review
    marked so; rejected tags and "none of these" answers are not shown."""
    shown = []
    for t in tags:
        if t.get("tag") == NONE_TAG or t.get("state") not in ("applied", "confirmed", "review"):
            continue
        conf = (
            f" {t['confidence']:.2f}" if t.get("confidence") is not None and t["state"] != "confirmed" else ""
        )
        note = {"confirmed": " (confirmed)", "review": " (waiting for review)"}.get(t["state"], "")
        shown.append(f"{t['model']}/{t['tag']}{conf}{note}")
    return ", ".join(shown)


def _print_waiting(waiting: WaitingForReview, tenant: str) -> None:
    tags = ", ".join(waiting.tags)
    assets = f"{waiting.count} asset{'' if waiting.count == 1 else 's'}"
    if waiting.included:
        out.print(f"({assets} of these only have {tags} waiting for review)", highlight=False)
        return
    out.print(
        f"{waiting.count} more {'asset has' if waiting.count == 1 else 'assets have'} {tags} waiting for "
        "review (not searchable until a reviewer confirms it):",
        highlight=False,
        soft_wrap=True,
    )
    out.print("  add --include-review to list them too, or review them:", highlight=False)
    for t in waiting.tags[:3]:
        model, _, tag = t.partition("/")
        out.print(f"  tagsmith review list -t {tenant} --model {model} --tag {tag}", highlight=False)


@app.command()
def reindex(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="the tenant to reindex")] = None,
    all_tenants: Annotated[bool, typer.Option("--all", help="every tenant with data")] = False,
    outdated: Annotated[
        bool, typer.Option("--outdated", help="with --all: only tenants whose index has an older mapping")
    ] = False,
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild search indices from the asset records.

    No downtime: a new index, an alias swap, then a catch-up pass for writes made meanwhile. Also
    how a new mapping version is rolled out.
    """
    from tagsmith.cli.progress import progress_bar
    from tagsmith.search import MAPPING_VERSION, reindex_tenants

    def go() -> None:
        if (tenant is None) == (not all_tenants):
            raise InvalidInputError("give either --tenant T or --all")
        if outdated and not all_tenants:
            raise InvalidInputError("--outdated goes with --all")
        s = open_session(target)
        c = s.components
        if s.stack is None and not c.settings.opensearch_url:
            raise TagsmithError(
                "no search cluster to reindex: start the local stack (`make run`), or use --target aws "
                "with TAGSMITH_OPENSEARCH_URL set"
            )
        tenants = [validate_tenant(tenant)] if tenant else known_tenants(c)
        with progress_bar(enabled=not as_json) as bar:
            reports = reindex_tenants(
                index=c.index,
                records=_RecordsWithProgress(c, bar) if not bar.disable else c.records,
                taxonomies_for=lambda t: active_taxonomies(c, t),
                tenants=tenants,
                only_outdated=outdated,
            )
        for report in reports:
            if as_json:
                print(json.dumps(report.to_dict(), ensure_ascii=False))
                continue
            out.print(
                f"{report.tenant}: {report.indexed} documents into {report.index} "
                f"(mapping v{report.mapping_version_before} -> v{report.mapping_version}), "
                f"{report.caught_up} caught up, {report.removed} removed, {len(report.errors)} errors, "
                f"{report.seconds:.1f} s ({s.where})"
            )
            for e in report.errors[:10]:
                out.print(f"  [red]{e.asset_key}[/]: {e.error_type} {e.reason}")
        if not as_json and len(reports) < len(tenants):
            out.print(f"{len(tenants) - len(reports)} tenant(s) already on mapping v{MAPPING_VERSION}")
        if any(r.errors for r in reports):
            raise typer.Exit(1)

    run_or_exit(go)


class _RecordsWithProgress:
    """A tenant's records for the reindex, advancing a bar per record of the rebuild (the first
    pass; the catch-up pass reads them again without it). Counting them first costs one listing."""

    def __init__(self, c: Components, bar: Any) -> None:
        self.c = c
        self.bar = bar
        self.seen: set[str] = set()

    def iter_tenant(self, tenant: str) -> Iterator[Any]:
        from tagsmith.cli.progress import record_count

        if tenant in self.seen:
            yield from self.c.records.iter_tenant(tenant)
            return
        self.seen.add(tenant)
        task = self.bar.add_task(f"reindexing {tenant}", total=record_count(self.c, tenant))
        for record in self.c.records.iter_tenant(tenant):
            self.bar.advance(task)
            yield record
