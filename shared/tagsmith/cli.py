"""``tagsmith``: train, tag, search and run the local stack from the command line.

Where it works (``--target``):

* ``auto`` (default): the running local stack if there is one, else the local data directory;
* ``files``: the local data directory (``var/s3``) with no server running;
* ``stack``: the running local stack (moto + osmem on 127.0.0.1);
* ``aws``: real AWS, configured by ``TAGSMITH_DATA_BUCKET``, ``TAGSMITH_ASSETS_BUCKET``,
  ``TAGSMITH_OPENSEARCH_URL`` and the usual AWS credentials.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tagsmith.config import Settings
from tagsmith.errors import TagsmithError
from tagsmith.keys import validate_tenant
from tagsmith.local.stack import StackConfig, StackInfo
from tagsmith.wiring import Components, build

app = typer.Typer(help="Tagsmith: custom few-shot auto-tagging for digital asset libraries.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


class Target(StrEnum):
    AUTO = "auto"
    FILES = "files"
    STACK = "stack"
    AWS = "aws"


TargetOpt = Annotated[Target, typer.Option("--target", help="where to work: auto, files, stack or aws")]
TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="tenant id (lower-case letters, digits, '-')")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output: one JSON object per line")]


@dataclass
class Session:
    components: Components
    where: str
    stack: StackInfo | None = None


def open_session(target: Target) -> Session:
    home = StackConfig.from_env().home
    running = StackInfo.read(home) if target in (Target.AUTO, Target.STACK) else None
    if target is Target.STACK and running is None:
        raise TagsmithError(f"no local stack is running (looked in {home}/stack.json): start one with `make run`")
    if running is not None:
        return Session(build(running.settings()), f"local stack at {running.endpoint_url}", running)
    if target is Target.AWS:
        settings = Settings.from_env()
        return Session(build(settings), f"AWS (data bucket {settings.data_bucket})")
    from tagsmith.local.resources import STACK
    from tagsmith.search import InMemorySearchIndex
    from tagsmith.storage import FileObjectStore

    settings = Settings(
        data_bucket=STACK.bucket_name("data"), assets_bucket=STACK.bucket_name("assets"),
        encoder_cache_dir=home / "cache",
    )
    store = FileObjectStore(root=home / "s3")
    return Session(build(settings, store=store, index=InMemorySearchIndex()), f"local files in {home / 's3'}")


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _run(fn: Any) -> Any:
    try:
        return fn()
    except TagsmithError as e:
        fail(str(e))


@app.command()
def train(
    tenant: TenantOpt,
    model: Annotated[str, typer.Option("--model", "-m", help="model id, e.g. product or shot-type")],
    examples: Annotated[str, typer.Option("--examples", "-e", help="folder (or s3://bucket/prefix) with one sub-folder per tag")],
    kind: Annotated[str, typer.Option(help="exclusive (one tag per asset) or multilabel")] = "exclusive",
    threshold: Annotated[float, typer.Option(help="confidence at or above which a tag is applied without review")] = 0.8,
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Train (or retrain) a tag model from example images and make it active."""
    from tagsmith.tagmodels import ModelKind
    from tagsmith.trainer import examples_from_folder, examples_from_prefix

    def go() -> None:
        validate_tenant(tenant)
        s = open_session(target)
        if examples.startswith("s3://"):
            bucket, _, prefix = examples[5:].partition("/")
            exs, taxonomy = examples_from_prefix(s.components.store, bucket, prefix)
        else:
            exs, taxonomy = examples_from_folder(Path(examples))
        if not as_json:
            err.print(f"training {tenant}/{model} on {len(exs)} examples ({s.where})")
        report = s.components.trainer.train(
            tenant=tenant, model_id=model, examples=exs, taxonomy=taxonomy, kind=ModelKind(kind), threshold=threshold
        )
        if as_json:
            print(json.dumps(report.to_dict(), ensure_ascii=False))
            return
        for w in report.warnings:
            err.print(f"[yellow]warning:[/] {w}")
        cv = f"{report.cv_accuracy:.0%}" if report.cv_accuracy is not None else "n/a"
        out.print(f"[green]trained[/] {tenant}/{model} version [bold]{report.version}[/]: {len(report.tags)} tags, "
                  f"cross-validated accuracy {cv}, {report.seconds:.1f} s")

    _run(go)


@app.command()
def tag(
    tenant: TenantOpt,
    paths: Annotated[list[Path], typer.Argument(help="image files to tag (nothing is stored)")],
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Tag local image files with the tenant's active models, exactly as the ingest handler would."""

    def go() -> None:
        validate_tenant(tenant)
        s = open_session(target)
        tagger = s.components.tagger
        if not tagger.active_models(tenant):
            raise TagsmithError(f"tenant {tenant!r} has no active model ({s.where}): train one with `tagsmith train`")
        failed = 0
        for path in paths:
            result: dict[str, Any] = {"file": str(path)}
            try:
                prepared = tagger.prepare(path.read_bytes())
                proposal = tagger.propose(tenant, tagger.embed(tenant, [prepared]))[0]
                result["tags"] = [
                    {"model": a.model, "tag": a.tag, "confidence": a.confidence, "state": a.state.value,
                     "threshold": a.threshold, "model_version": a.model_version,
                     "alternatives": [{"tag": x.tag, "confidence": x.confidence} for x in a.alternatives]}
                    for a in proposal.assignments
                ]
            except (TagsmithError, OSError) as e:
                result["error"] = str(e)
                failed += 1
            if as_json:
                print(json.dumps(result, ensure_ascii=False))
            else:
                _print_tags(result)
        if failed:
            raise typer.Exit(2)

    _run(go)


def _print_tags(result: dict[str, Any]) -> None:
    if "error" in result:
        out.print(f"[red]{result['file']}[/]: {result['error']}")
        return
    parts = [
        f"[{'green' if t['state'] == 'applied' else 'yellow'}]{t['model']}/{t['tag']} {t['confidence']:.2f} "
        f"({'applied' if t['state'] == 'applied' else 'to review'})[/]"
        for t in result["tags"]
    ] or ["[dim]no tag[/]"]
    out.print(f"{result['file']}: " + ", ".join(parts))


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

    _run(go)


@app.command()
def upload(
    tenant: TenantOpt,
    paths: Annotated[list[Path], typer.Argument(help="files to upload to the assets bucket")],
    prefix: Annotated[str, typer.Option(help="folder inside the tenant's prefix")] = "uploads",
    target: TargetOpt = Target.AUTO,
) -> None:
    """Upload files to the assets bucket: the upload event triggers tagging."""

    def go() -> None:
        validate_tenant(tenant)
        s = open_session(target)
        if s.stack is None and target is not Target.AWS:
            raise TagsmithError("upload needs a running stack (`make run`) or --target aws: files alone raise no events")
        bucket = s.components.settings.assets_bucket
        for p in paths:
            key = f"{tenant}/{prefix.strip('/')}/{p.name}" if prefix.strip("/") else f"{tenant}/{p.name}"
            s.components.store.put(bucket, key, p.read_bytes())
            out.print(f"uploaded s3://{bucket}/{key}")

    _run(go)


@app.command()
def record(
    tenant: TenantOpt,
    path: Annotated[str, typer.Argument(help="the asset's path inside the tenant (or its full key)")],
    target: TargetOpt = Target.AUTO,
) -> None:
    """Print an asset record (the source of truth) as JSON."""
    from tagsmith.keys import AssetKey

    def go() -> None:
        validate_tenant(tenant)
        rel = path.removeprefix(f"{tenant}/")
        got = open_session(target).components.records.get(AssetKey(tenant, rel))
        if got is None:
            raise TagsmithError(f"no record for {tenant}/{rel}")
        print(got[0].to_json().decode())

    _run(go)


@app.command()
def models(tenant: TenantOpt, target: TargetOpt = Target.AUTO, as_json: JsonOpt = False) -> None:
    """List a tenant's tag models with their active version."""

    def go() -> None:
        validate_tenant(tenant)
        c = open_session(target).components
        rows = []
        for mid in c.models.model_ids(tenant):
            m = c.models.load_active(tenant, mid)
            if m:
                rows.append({"model": mid, "active": m.version, "kind": m.kind.value, "tags": list(m.tags),
                             "versions": c.models.versions(tenant, mid), "metrics": m.metrics})
        if as_json:
            for r in rows:
                print(json.dumps(r, ensure_ascii=False))
            return
        table = Table("model", "kind", "active version", "tags", "versions")
        for r in rows:
            table.add_row(r["model"], r["kind"], r["active"], ", ".join(r["tags"]), str(len(r["versions"])))
        out.print(table)

    _run(go)


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="run the demo tenant once the stack is ready")] = True,
    serve: Annotated[bool, typer.Option(help="keep serving until Ctrl-C")] = True,
) -> None:
    """Start the local stack (moto S3/SQS, osmem OpenSearch, handlers), run the demo, serve."""
    from tagsmith.local.app import run_local

    try:
        code = run_local(run_demo=demo, serve=serve, console=out)
    except (TagsmithError, RuntimeError) as e:
        fail(str(e))
    raise typer.Exit(code)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
