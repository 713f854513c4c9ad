"""``make run``: the local stack, the demo tenant, and a friendly summary. Serves until Ctrl-C."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tagsmith.keys import AssetKey, model_prefix
from tagsmith.local import demo
from tagsmith.local.httpapi import LocalHttpApi
from tagsmith.local.stack import LocalStack, StackConfig
from tagsmith.logs import function_logger, send_function_logs_to
from tagsmith.outlook import upload_outlook
from tagsmith.records import NONE_TAG, AssetRecord, AssetStatus, TagState
from tagsmith.wiring import Components, build


def _send_function_logs_to(path: Path) -> None:
    """Handlers log JSON to stdout as on Lambda; locally that goes to a file so the demo stays readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    send_function_logs_to(path.open("a", encoding="utf-8", buffering=1))


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}; see var/logs/functions.jsonl")


def train_demo_model(c: Components, console: Console) -> None:
    """Train the demo model through the training handler, unless the state kept from the last run
    has one for this deployment's encoder (after an encoder upgrade it is trained again)."""
    if c.models.active_version(demo.TENANT, demo.MODEL):
        active = c.models.load_active(demo.TENANT, demo.MODEL)
        encoder = c.tagger.encoder.encoder_id
        if active is not None and active.encoder_id == encoder:
            console.print(
                f"  model [bold]{demo.TENANT}/{demo.MODEL}[/] already trained (state kept from the last run)"
            )
            return
        console.print(
            f"  model [bold]{demo.TENANT}/{demo.MODEL}[/] was trained for encoder "
            f"{active.encoder_id if active else 'unknown'}, not {encoder}: retraining it"
        )
    bucket = c.settings.data_bucket
    base = f"tenants/{demo.TENANT}/examples/{demo.MODEL}/"
    sets = demo.training_set()
    for tag, images in sets.items():
        for i, data in enumerate(images):
            c.store.put(bucket, f"{base}{tag}/{i:02d}.jpg", data, content_type="image/jpeg")
    c.store.put(bucket, base + "taxonomy.json", demo.taxonomy_json(), content_type="application/json")
    n = sum(len(v) for v in sets.values())
    console.print(f"  uploaded {n} example photos of {len(sets)} tags to s3://{bucket}/{base}")
    request = {
        "model": demo.MODEL,
        "examples": f"s3://{bucket}/{base}",
        "kind": "exclusive",
    }
    status_key = model_prefix(demo.TENANT, demo.MODEL) + "status.json"
    before = c.store.get(bucket, status_key).body if c.store.head(bucket, status_key) else None
    # One request per encoder: the training consumer is idempotent, so re-writing the same request
    # (same key, same bytes) after an encoder upgrade would be taken for a duplicate delivery.
    name = f"demo-{c.tagger.encoder.encoder_id}.train.json"
    c.store.put(bucket, f"tenants/{demo.TENANT}/training-requests/{name}", json.dumps(request).encode())
    console.print("  wrote a training request; the train handler picks it up from SQS ...")

    def done() -> bool:
        # a status written by this training (not the last run's), that says it has ended
        if c.store.head(bucket, status_key) is None:
            return False
        body = c.store.get(bucket, status_key).body
        return body != before and json.loads(body)["state"] in ("trained", "failed")

    _wait(done, 300, "the training job")
    status = json.loads(c.store.get(bucket, status_key).body)
    if status["state"] != "trained":
        raise RuntimeError(f"demo training failed: {status.get('error')}")
    report = status["report"]
    cv = report.get("cv_accuracy")
    console.print(
        f"  [green]trained[/] version {report['version']} in {report['seconds']:.1f} s"
        + (f", cross-validated accuracy {cv:.0%}" if cv is not None else "")
    )
    outlook = upload_outlook(c.models.load_active(demo.TENANT, demo.MODEL))
    console.print(f"  uploads: {outlook.sentence()}", highlight=False)


def upload_demo_assets(c: Components, console: Console) -> list[str]:
    bucket = c.settings.assets_bucket
    keys = []
    for path, data in demo.uploads().items():
        key = f"{demo.TENANT}/{path}"
        keys.append(key)
        if c.store.head(bucket, key) is None:
            c.store.put(bucket, key, data)
    console.print(
        f"  {len(keys)} photos in s3://{bucket}/{demo.TENANT}/uploads/ (one ambiguous, one not an image)"
    )
    return keys


def show_records(c: Components, keys: list[str], console: Console) -> None:
    records: dict[str, AssetRecord] = {}

    def all_recorded() -> bool:
        for key in keys:
            if key not in records:
                tenant, _, path = key.partition("/")
                got = c.records.get(AssetKey(tenant, path))
                if got:
                    records[key] = got[0]
        return len(records) == len(keys)

    _wait(all_recorded, 180, "the ingest handler to record every upload")
    table = Table("asset", "result", title="What the ingest handler did")
    for key in keys:
        r = records[key]
        if r.status is AssetStatus.FAILED:
            assert r.failure is not None
            table.add_row(key, f"[red]failed[/]: {r.failure.message}")
            continue
        cells = []
        for t in r.tags:
            if t.tag == NONE_TAG:
                continue  # a reviewer's "none of these": no tag to show
            colour = {"applied": "green", "review": "yellow", "confirmed": "cyan", "rejected": "red"}[
                t.state.value
            ]
            what = {"applied": "applied", "review": "sent to review"}.get(t.state.value, t.state.value)
            conf = f" {t.confidence:.2f}" if t.confidence is not None else ""
            cells.append(f"[{colour}]{t.tag}{conf} {what}[/]")
        table.add_row(key, ", ".join(cells) or "[dim]no tag above the review floor[/]")
    console.print(table)
    # The ingest handler writes the record first and the review item after it (through the review
    # queue): wait for the items of this run's uploads, so the count agrees with the table above.
    sent = {(r.path, t.model) for r in records.values() for t in r.tags if t.state is TagState.REVIEW}

    def queued() -> bool:
        return sent <= {(i.asset_path, i.model) for i in c.reviews.pending(demo.TENANT)}

    deadline = time.monotonic() + 60
    while not queued() and time.monotonic() < deadline:  # past it, show the queue as it is
        time.sleep(0.3)
    pending = c.reviews.pending(demo.TENANT)
    console.print(
        f"  review queue: {len(pending)} item(s) pending for {demo.TENANT}"
        + "".join(
            f"\n    - {demo.TENANT}/{i.asset_path}: is it {i.suggestion}? (confidence {i.confidence:.2f})"
            for i in pending
        ),
        highlight=False,
    )


def show_searches(c: Components, console: Console) -> None:
    from tagsmith.search import SearchQuery

    for text, lang in (
        ("storm blue jacket", "English"),
        ("veste bleu orage", "French"),
        ("トートバッグ", "Japanese"),
    ):
        page = c.index.search(demo.TENANT, SearchQuery(text=text, size=10))
        found = ", ".join(h.asset_key.split("/")[-1] for h in page.hits) or "nothing"
        console.print(f"  search [bold]{text!r}[/] ({lang}): {page.total} hit(s): {found}")


def run_local(*, run_demo: bool = True, serve: bool = True, console: Console | None = None) -> int:
    console = console or Console()
    config = StackConfig.from_env()
    stack = LocalStack(config=config, progress=lambda m: console.print(f"[dim]•[/] {m}"))
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    console.print("[bold]Tagsmith local stack[/]")
    review = None
    logs = config.home / "logs" / "functions.jsonl"
    _send_function_logs_to(logs)  # every function's logger, including those the stack loads
    function_logger("tagsmith-stack", process_default=True)  # restart reconcile, sweeps, watchdog
    try:
        info = stack.start()
        # the HTTP API's functions (GET /v1/search): their logs go to the file too
        api = LocalHttpApi.from_definition(config.functions_dir, config.definition)
        c = build(info.settings())
        console.print("[dim]•[/] loading the image encoder (built from the pinned weights on first use)")
        _ = c.encoder.dim
        if run_demo:
            _run_demo(c, console)
        review = _start_review_console(c, stack, config.home, api)
        _print_endpoints(info, console, review.banner(), config.home / "logs" / "functions.jsonl")
        if not serve:
            return 0
        console.print(f"\nServing. Press Ctrl-C to stop (state is saved to {config.home}).")
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        console.print("[dim]stopping: saving state ...[/]")
        if review is not None:
            review.stop()
        stack.stop()
        console.print(f"stopped; state saved in {config.home}", highlight=False)
    return 0


def _start_review_console(c: Components, stack: LocalStack, home: Path, api: LocalHttpApi) -> Any:
    """The review console, and the HTTP API routes of functions without a queue (GET /v1/search),
    served beside the stack; its URL recorded in stack.json."""
    from tagsmith.console.local import start_local_console

    review = start_local_console(c, home=home, tenant=demo.TENANT, routes=api)
    if stack.info is not None:
        stack.info.console_url = review.url
        stack.write_info()
    return review


def _run_demo(c: Components, console: Console) -> None:
    console.rule(f"demo tenant '{demo.TENANT}'")
    console.print("[bold]1. train[/] a tag model from example photos")
    train_demo_model(c, console)
    console.print("[bold]2. upload[/] new photos to the assets bucket; S3 events trigger the ingest handler")
    keys = upload_demo_assets(c, console)
    show_records(c, keys, console)
    console.print("[bold]3. search[/] in several languages (OpenSearch API)")
    show_searches(c, console)


def _print_endpoints(info: Any, console: Console, review_banner: list[str], logs: Path) -> None:
    console.rule("ready")
    console.print(
        f"S3 and SQS (moto):  {info.endpoint_url}   buckets {info.assets_bucket}, {info.data_bucket}"
    )
    console.print(f"OpenSearch (osmem): {info.opensearch_url}   alias tagsmith-assets-<tenant>")
    console.print("\n".join(review_banner), soft_wrap=True, highlight=False)
    console.print(f"Function logs:      {logs}", soft_wrap=True, highlight=False)
    console.print("\nTry it with your own photos (in another terminal):")
    for command, what in (
        ("tagsmith train -t shop -m garment -e path/to/examples/", "one sub-folder of photos per tag"),
        ("tagsmith tag -t acme path/to/photo.jpg", "dry run with the demo model: prints the tags"),
        ("tagsmith upload -t acme path/to/photo.jpg", "upload: the ingest handler tags it"),
        ("tagsmith import -t acme path/to/library/", "a whole folder or s3://bucket/prefix; resumable"),
        ("tagsmith record -t acme acme/uploads/photo.jpg", "its asset record (JSON)"),
        ('tagsmith search -t acme "veste bleu"', "search, in any language"),
        ("tagsmith review list -t acme", "what waits for a reviewer"),
    ):
        console.print(f"  .venv/bin/{command:<55} # {what}", soft_wrap=True, highlight=False)
