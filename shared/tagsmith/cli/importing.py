"""``tagsmith import``: bring an existing library in, down the same path as an upload
(:mod:`tagsmith.libraryimport`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tagsmith.cli.common import JsonOpt, Target, TargetOpt, TenantOpt, err, open_session, out, run_or_exit
from tagsmith.errors import TagsmithError
from tagsmith.keys import parse_asset_key, validate_tenant

if TYPE_CHECKING:
    from tagsmith.cli.common import Session
    from tagsmith.libraryimport import ImportSource, ImportSummary, ItemResult, LibraryImport

app = typer.Typer()

#: A non-interactive run (a pipe, a log file, CI) prints a progress line this often instead of a bar.
PLAIN_PROGRESS_SECONDS = 10.0


@app.command("import")
def import_library(
    tenant: TenantOpt,
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE",
            help="a folder on this machine, or s3://BUCKET/PREFIX: another bucket (copied server-side), "
            "or the assets bucket itself (objects there that were never tagged)",
        ),
    ],
    prefix: Annotated[
        str | None,
        typer.Option(help="folder inside the tenant's prefix the library goes to (default: uploads)"),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait", help="wait until every asset is tagged (default), or return once sent"
        ),
    ] = True,
    timeout: Annotated[
        float, typer.Option(help="stop waiting after this many seconds in which no asset got tagged")
    ] = 300.0,
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Import a library (a folder, an S3 prefix) as uploads.

    A folder's photos and videos are uploaded to TENANT/PREFIX/ (keeping their paths), another
    bucket's are copied there without downloading, and objects already in the assets bucket under
    TENANT/ that have no record get the event they never raised. Run the same command again to
    resume: what is imported and recorded is skipped, nothing is sent twice.
    """

    def go() -> None:
        validate_tenant(tenant)
        s = open_session(target)
        if s.stack is None and target is not Target.AWS:
            raise TagsmithError(
                "import needs a running stack (`make run`) or --target aws: files alone raise no events"
            )
        job = _job(s, tenant, source, prefix)
        took: dict[str, float] = {}  # seconds per phase: listing, sending, waiting
        try:
            summary = _run(job, wait=wait, timeout=timeout, as_json=as_json, took=took)
        except KeyboardInterrupt:
            err.print("interrupted: what was sent is kept; run the same command again to continue")
            raise typer.Exit(130) from None
        _report(s, job, summary, as_json=as_json, waited=wait, took=took)

    run_or_exit(go)


def _job(s: Session, tenant: str, source: str, prefix: str | None) -> LibraryImport:
    """The import SOURCE names, or an error that says what is wrong with it."""
    from tagsmith.backfill import SqsDelayQueue
    from tagsmith.cli.assets import MEDIA_SUFFIXES, _files_to_upload, read_local_media
    from tagsmith.libraryimport import BucketSource, FolderSource, LibraryImport, relative_names

    c = s.components
    assets = c.settings.assets_bucket
    folder = (prefix if prefix is not None else "uploads").strip("/")
    destination = f"{tenant}/{folder}/" if folder else f"{tenant}/"
    if folder:  # an empty, "." or ".." segment is refused before anything is sent
        parse_asset_key(f"{destination}file")
    src: ImportSource
    if source.startswith("s3://"):
        bucket, _, key_prefix = source.removeprefix("s3://").partition("/")
        if not bucket:
            raise TagsmithError(f"{source!r} names no bucket: give s3://BUCKET/PREFIX")
        if bucket == c.settings.data_bucket:
            raise TagsmithError(
                f"{source} is Tagsmith's data bucket (records, models), not a library: give the bucket "
                "that holds the photos"
            )
        in_place = bucket == assets
        if in_place:
            # already where the ingest handler looks: imported where they are
            destination = relative_names(key_prefix)
            if not destination.startswith(f"{tenant}/"):
                raise TagsmithError(
                    f"{source} is outside tenant {tenant!r}'s prefix: objects of the assets bucket are "
                    f"imported where they are, so give s3://{assets}/{tenant}/..."
                )
            if prefix is not None:
                raise TagsmithError(
                    "--prefix moves a folder's or another bucket's objects; objects of the assets bucket "
                    f"stay where they are ({destination})"
                )
            parse_asset_key(f"{destination}file")

        def media(key: str) -> bool:
            return Path(key).suffix.lower() in MEDIA_SUFFIXES and not Path(key).name.startswith(".")

        src = BucketSource(store=c.store, bucket=bucket, prefix=key_prefix, accepts=media, in_place=in_place)
    else:
        root = Path(source).expanduser()
        if not root.exists():
            raise TagsmithError(f"{root} does not exist: give a folder of photos or s3://BUCKET/PREFIX")
        if not root.is_dir():
            raise TagsmithError(f"{root} is a file: `tagsmith upload` sends files, `import` takes a folder")
        src = FolderSource(store=c.store, root=root, files=_files_to_upload([root]), read=read_local_media)
    events = (
        SqsDelayQueue(client=c.sqs, url=c.settings.ingest_queue_url) if c.settings.ingest_queue_url else None
    )
    return LibraryImport(
        source=src,
        store=c.store,
        assets_bucket=assets,
        data_bucket=c.settings.data_bucket,
        tenant=tenant,
        destination=destination,
        events=events,
    )


def _run(
    job: LibraryImport, *, wait: bool, timeout: float, as_json: bool, took: dict[str, float]
) -> ImportSummary:
    """Send, then (with ``wait``) poll the records until each import is recorded or nothing
    moved for ``timeout`` seconds; two bars, sent and tagged, each with its ETA."""
    from tagsmith.cli.progress import progress_bar
    from tagsmith.libraryimport import BucketSource, ImportSummary, pending

    if not as_json:
        err.print(f"listing {job.source.where} and s3://{job.assets_bucket}/{job.destination} ...")
    started = time.monotonic()
    survey = job.survey()
    took["listing"] = time.monotonic() - started
    total = len(survey.entries)
    results: list[ItemResult] = []
    wanted: set[str] = set()
    poll_every, last_poll, last_line = 1.0, 0.0, time.monotonic()

    def poll() -> int:
        nonlocal poll_every, last_poll
        polled = time.monotonic()
        waiting = pending(results, job.watch.poll(wanted))
        # a listing of a large prefix takes a while: never spend more than a third of the time on it
        poll_every = max(1.0, 3 * (time.monotonic() - polled))
        last_poll = time.monotonic()
        return waiting

    with progress_bar(enabled=not as_json) as bar:
        sending = bar.add_task("sent", total=total)
        tagging = bar.add_task("tagged", total=total) if wait else None

        def show(waiting: int) -> None:
            nonlocal last_line
            done = sum(r.action is not None for r in results) - waiting
            if tagging is not None:
                bar.update(tagging, completed=done)
            if bar.disable and not as_json and time.monotonic() - last_line >= PLAIN_PROGRESS_SECONDS:
                err.print(f"sent {len(results)}/{total}" + (f", tagged {done}" if wait else ""))
                last_line = time.monotonic()

        for r in job.run(survey):
            results.append(r)
            if r.key is not None and r.action is not None:
                wanted.add(r.key)
            if r.error is not None and not as_json:
                err.print(
                    f"[red]{'refused' if r.refused else 'not sent'}[/] {r.error}",
                    highlight=False,
                    soft_wrap=True,
                )
            bar.advance(sending)
            if wait and time.monotonic() - last_poll >= poll_every:
                show(poll())
        took["sending"] = time.monotonic() - started - took["listing"]
        if wait:
            assert tagging is not None
            bar.update(tagging, total=sum(r.action is not None for r in results))
            waiting, moved = poll(), time.monotonic()
            show(waiting)
            while waiting and time.monotonic() - moved < timeout:
                time.sleep(poll_every)
                now = poll()
                if now < waiting:
                    moved = time.monotonic()
                waiting = now
                show(waiting)
    took["waiting"] = time.monotonic() - started - took["listing"] - took["sending"]
    left_out = job.source.left_out if isinstance(job.source, BucketSource) else 0
    return ImportSummary.of(results, job.watch.seen, left_out=left_out)


def _report(
    s: Session,
    job: LibraryImport,
    summary: ImportSummary,
    *,
    as_json: bool,
    waited: bool,
    took: dict[str, float],
) -> None:
    from tagsmith.libraryimport import BucketSource

    dlq = _dead_letters(s) if summary.waiting and waited else 0
    if as_json:
        seconds = {k: round(v, 2) for k, v in took.items()}
        print(json.dumps({**summary.to_dict(), "dead_letters": dlq, "seconds": seconds}, ensure_ascii=False))
    else:
        moved = "copied" if isinstance(job.source, BucketSource) else "uploaded"
        out.print(
            f"{summary.entries} photos and videos from {job.source.where} into "
            f"s3://{job.assets_bucket}/{job.destination} ({s.where}):",
            highlight=False,
            soft_wrap=True,
        )
        out.print(
            f"  {summary.sent} {moved}, {summary.announced} already in the bucket (their events sent), "
            f"{summary.skipped} already imported (skipped)"
            + (
                f", {summary.left_out} objects left out (not photos or videos by name)"
                if summary.left_out
                else ""
            ),
            highlight=False,
            soft_wrap=True,
        )
        out.print(
            f"  {summary.tagged} tagged, {summary.waiting_review} of them waiting for review"
            f"{f' (tagsmith review list -t {job.tenant})' if summary.waiting_review else ''}, "
            f"{len(summary.failed)} failed, {summary.waiting} not tagged yet",
            highlight=False,
            soft_wrap=True,
        )
        phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in took.items())
        out.print(f"  took {sum(took.values()):.1f} s ({phases})", highlight=False)
        for key, why in summary.failed[:10]:
            out.print(f"  [red]failed[/] {key}: {why}", highlight=False, soft_wrap=True)
    problems = []
    if summary.refused or summary.errors:
        problems.append(f"{len(summary.refused) + len(summary.errors)} not sent")
    if summary.failed:
        problems.append(f"{len(summary.failed)} failed (the reason is on each record)")
    if summary.waiting and not waited:
        if not as_json:
            out.print(
                "  the ingest handler tags them as it can: run the same command again to wait for them "
                "(it sends nothing twice)",
                highlight=False,
            )
    elif summary.waiting:
        where = f"; the ingest dead-letter queue holds {dlq} messages" if dlq else ""
        problems.append(f"{summary.waiting} not tagged yet (still queued, or the stack is down{where})")
    if problems:
        raise TagsmithError(
            ", ".join(problems) + ": run the same command again to send what did not go and wait again"
        )


def _dead_letters(s: Session) -> int:
    """Messages in the ingest dead-letter queue (all tenants': SQS cannot count one tenant's)."""
    url = s.components.settings.ingest_dlq_url
    if not url:
        return 0
    try:
        got = s.components.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(got["Attributes"]["ApproximateNumberOfMessages"])
    except Exception:  # a count for the summary: never the reason an import fails
        return 0
