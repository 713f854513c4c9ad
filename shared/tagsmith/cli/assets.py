"""``tagsmith tag``, ``upload`` and ``record``: working with individual assets."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

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
from tagsmith.errors import NotFoundError, TagsmithError
from tagsmith.keys import asset_named, parse_asset_key, validate_tenant

app = typer.Typer()


@app.command()
def tag(
    tenant: TenantOpt,
    paths: Annotated[list[Path], typer.Argument(metavar="PHOTO", help="photos to tag (nothing is stored)")],
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Tag photos on this machine; nothing is stored.

    Each photo is scored by the tenant's active models exactly as the ingest handler would score
    an upload: a dry run before uploading.
    """

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
                prepared = tagger.prepare(read_local_media(path, videos=False))
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


MEDIA_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic"}
    | {f".{e}" for e in ("mp4", "m4v", "mov", "qt", "webm", "mkv", "avi")}
)


def read_local_media(path: Path, *, videos: bool = True) -> bytes:
    """The bytes of a local photo (or video), or an error that says what is wrong with the file
    itself: missing, a folder, empty, not a photo, truncated. Worded for a file on this machine,
    where the ingest handler's "upload it again" would not make sense."""
    from tagsmith.encoder import decode_image
    from tagsmith.errors import InvalidInputError
    from tagsmith.video.sniff import MediaKind, sniff_media

    if not path.exists():
        raise TagsmithError(f"{path} does not exist")
    if path.is_dir():
        raise TagsmithError(f"{path} is a folder: give the photos in it (e.g. {path}/*.jpg)")
    data = path.read_bytes()
    if not data:
        raise TagsmithError(f"{path} is empty (0 bytes)")
    if sniff_media(data[:64], key=path.name) is MediaKind.VIDEO:
        if videos:
            return data
        raise TagsmithError(f"{path} is a video: `tagsmith tag` reads photos; upload it to tag a video")
    try:
        decode_image(data, draft_size=64)
    except InvalidInputError as e:
        # the decoder's advice is for objects in a bucket ("...; upload the file again")
        reason = re.sub(r";\s*upload .*$", "", str(e))
        raise TagsmithError(f"{path} is not a photo Tagsmith can read: {reason}") from None
    return data


def _files_to_upload(paths: list[Path]) -> list[tuple[Path, str]]:
    """(file, path inside the upload prefix) for each argument; a folder adds the photos and
    videos under it, keeping their relative paths."""
    out = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MEDIA_SUFFIXES)
            if not found:
                raise TagsmithError(f"{p} holds no photos or videos ({', '.join(sorted(MEDIA_SUFFIXES))})")
            out += [(f, f.relative_to(p).as_posix()) for f in found if not f.name.startswith(".")]
        else:
            out.append((p, p.name))
    return out


@app.command()
def upload(
    tenant: TenantOpt,
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE|FOLDER", help="photos or videos to upload; a folder uploads what it holds"
        ),
    ],
    prefix: Annotated[str, typer.Option(help="folder inside the tenant's prefix")] = "uploads",
    target: TargetOpt = Target.AUTO,
) -> None:
    """Upload photos and videos; the upload event tags them.

    Each asset is then named TENANT/PREFIX/FILE (for a folder's files, FILE is the path inside it).
    A file that is not a photo or video Tagsmith can read is refused, and the others still go.
    """
    from tagsmith.cli.progress import progress_bar

    def go() -> None:
        validate_tenant(tenant)
        if prefix.strip("/"):  # an empty, "." or ".." segment in --prefix: refused before any upload
            parse_asset_key(f"{tenant}/{prefix.strip('/')}/file")
        s = open_session(target)
        if s.stack is None and target is not Target.AWS:
            raise TagsmithError(
                "upload needs a running stack (`make run`) or --target aws: files alone raise no events"
            )
        bucket = s.components.settings.assets_bucket
        folder = prefix.strip("/")
        uploaded: list[str] = []
        refused = 0
        files = _files_to_upload(paths)
        with progress_bar(enabled=len(files) > 1) as bar:
            task = bar.add_task("uploading", total=len(files))
            for path, name in files:
                try:
                    data = read_local_media(path)
                except TagsmithError as e:
                    err.print(f"[red]refused[/] {e}", highlight=False)
                    refused += 1
                    continue
                asset = parse_asset_key(f"{tenant}/{folder}/{name}" if folder else f"{tenant}/{name}")
                s.components.store.put(bucket, asset.key, data)
                uploaded.append(asset.key)
                out.print(f"uploaded {asset.key}", highlight=False)
                bar.advance(task)
        if uploaded:
            out.print(
                f"{len(uploaded)} uploaded to s3://{bucket}/ ({s.where}); the ingest handler tags each "
                "within seconds:",
                highlight=False,
                soft_wrap=True,
            )
            out.print(
                f"  tagsmith record -t {tenant} {uploaded[0]}   # its tags", highlight=False, soft_wrap=True
            )
            out.print(f"  tagsmith review list -t {tenant}   # what waits for a reviewer", highlight=False)
        if refused:
            raise TagsmithError(f"{refused} file(s) refused (not uploaded); the others were")

    run_or_exit(go)


@app.command()
def record(
    tenant: TenantOpt,
    name: Annotated[
        str,
        typer.Argument(
            metavar="ASSET",
            help="the asset, as search prints it (TENANT/PATH), as S3 names it (s3://BUCKET/TENANT/PATH) "
            "or by its PATH inside the tenant",
        ),
    ],
    target: TargetOpt = Target.AUTO,
) -> None:
    """Print an asset's record, the source of truth for its tags.

    For a long video still being tagged, its job's progress (the job status as JSON when there is
    no record yet).
    """
    from tagsmith.video.jobstate import JobStatus, read_job

    def go() -> None:
        validate_tenant(tenant)
        s = open_session(target)
        c = s.components
        asset = asset_named(tenant, name, assets_bucket=c.settings.assets_bucket)
        got = c.records.get(asset)
        job = read_job(c.store, c.settings.data_bucket, tenant, asset.path)
        if got is None and job is None:
            if c.store.head(c.settings.assets_bucket, asset.key) is not None:
                raise NotFoundError(
                    f"{asset.key} is uploaded but has no record yet: the ingest handler records it within "
                    "seconds of the upload (is the stack running?)"
                )
            raise NotFoundError(
                f"no asset {asset.key} ({s.where}): `tagsmith search -t {tenant}` lists the tenant's assets"
            )
        if got is None:
            assert job is not None
            print(job.to_json().decode())  # a long video's first upload: the job is all there is
            return
        print(got[0].to_json().decode())
        if job is not None and job.source.etag != got[0].source.etag and job.status is not JobStatus.DONE:
            typer.echo(f"video job for a newer upload (ETag {job.source.etag}): {job.summary()}", err=True)

    run_or_exit(go)
