"""``tagsmith tag``, ``upload`` and ``record``: working with individual assets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

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
from tagsmith.errors import TagsmithError
from tagsmith.keys import validate_tenant

app = typer.Typer()


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
            raise TagsmithError(
                f"tenant {tenant!r} has no active model ({s.where}): train one with `tagsmith train`"
            )
        failed = 0
        ocr = s.components.ocr if tagger.reads_text(tenant) else None  # a model reads the print
        for path in paths:
            result: dict[str, Any] = {"file": str(path)}
            try:
                prepared = tagger.prepare(path.read_bytes())
                texts = None
                if ocr is not None:
                    try:
                        texts = ["\n".join(line.text for line in ocr.read(prepared.decoded.image))]
                        result["text"] = texts[0]
                    except Exception as e:  # as at ingest: the image alone still tags
                        result["ocr_error"] = f"OCR failed ({e}); scored on the image alone"
                proposal = tagger.propose(
                    tenant,
                    tagger.embed(tenant, [prepared]),
                    texts,
                    ocr_engine=ocr.engine_id if ocr is not None else None,
                )[0]
                result["tags"] = [
                    {
                        "model": a.model,
                        "tag": a.tag,
                        "confidence": a.confidence,
                        "state": a.state.value,
                        "threshold": a.threshold,
                        "model_version": a.model_version,
                        "alternatives": [{"tag": x.tag, "confidence": x.confidence} for x in a.alternatives],
                    }
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

    run_or_exit(go)


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
            raise TagsmithError(
                "upload needs a running stack (`make run`) or --target aws: files alone raise no events"
            )
        bucket = s.components.settings.assets_bucket
        for p in paths:
            key = f"{tenant}/{prefix.strip('/')}/{p.name}" if prefix.strip("/") else f"{tenant}/{p.name}"
            s.components.store.put(bucket, key, p.read_bytes())
            out.print(f"uploaded s3://{bucket}/{key}")

    run_or_exit(go)


@app.command()
def record(
    tenant: TenantOpt,
    path: Annotated[str, typer.Argument(help="the asset's path inside the tenant (or its full key)")],
    target: TargetOpt = Target.AUTO,
) -> None:
    """Print an asset record (the source of truth) as JSON; for a long video still being tagged,
    its job's progress (the job status as JSON when there is no record yet)."""
    from tagsmith.keys import AssetKey
    from tagsmith.videojobs import JobStatus, read_job

    def go() -> None:
        validate_tenant(tenant)
        rel = path.removeprefix(f"{tenant}/")
        c = open_session(target).components
        got = c.records.get(AssetKey(tenant, rel))
        job = read_job(c.store, c.settings.data_bucket, tenant, rel)
        if got is None and job is None:
            raise TagsmithError(f"no record for {tenant}/{rel}")
        if got is None:
            assert job is not None
            print(job.to_json().decode())  # a long video's first upload: the job is all there is
            return
        print(got[0].to_json().decode())
        if job is not None and job.source.etag != got[0].source.etag and job.status is not JobStatus.DONE:
            typer.echo(f"video job for a newer upload (ETag {job.source.etag}): {job.summary()}", err=True)

    run_or_exit(go)
