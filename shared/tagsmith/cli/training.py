"""``tagsmith train`` and ``tagsmith models``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tagsmith.cli.common import (
    JsonOpt,
    Target,
    TargetOpt,
    TenantOpt,
    err,
    open_session,
    out,
    run_or_exit,
)
from tagsmith.keys import validate_tenant

app = typer.Typer()

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

    run_or_exit(go)


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

    run_or_exit(go)
