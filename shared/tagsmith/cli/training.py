"""``tagsmith train``, ``tagsmith status``, ``tagsmith models`` (list, versions, rollback, report) and
``tagsmith taxonomy`` (show, set).

Size: over 600 lines because each command's options, help and printing live beside it, and the
commands share the outcome and report printers; a split by command group (``train``/``status``
and ``models``/``taxonomy``) is the next step if it grows.

Examples::

    tagsmith train -t acme -m product -e ./examples            # folder of tag folders
    tagsmith train -t acme -m product -e labels.manifest       # Ground Truth / Rekognition manifest
    tagsmith train -t acme -m product -e s3://b/p/ --corrections --submit   # as a job (status: pending)
    tagsmith status -t acme
    tagsmith models versions -t acme -m product
    tagsmith models rollback -t acme -m product --to 20261122-061500-3f9a
    tagsmith models target -t acme -m product --precision 0.95   # no retraining; the library is re-routed
    tagsmith models report -t acme -m product --out report.html
    tagsmith taxonomy set -t acme -m product labels.json
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

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
from tagsmith.errors import NotFoundError, TagsmithError
from tagsmith.keys import validate_model_id, validate_tenant

app = typer.Typer()
models_app = typer.Typer(help="A tenant's tag models and their versions.", invoke_without_command=True)
taxonomy_app = typer.Typer(help="A model's tag labels per language, and synonyms.")
app.add_typer(models_app, name="models")
app.add_typer(taxonomy_app, name="taxonomy")

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="model id, e.g. product or shot-type")]
REINDEX_HINT = (
    "labels are stored; the search index still holds the old ones: run `tagsmith reindex --tenant {t}`"
)


def _jobs(c: Any) -> Any:
    from tagsmith.trainjobs import TrainingJobs

    return TrainingJobs(
        store=c.store,
        data_bucket=c.settings.data_bucket,
        trainer=c.trainer,
        records=c.records,
        assets_bucket=c.settings.assets_bucket,
    )


@app.command()
def train(
    tenant: TenantOpt,
    model: ModelOpt,
    examples: Annotated[
        list[str] | None,
        typer.Option(
            "--examples",
            "-e",
            metavar="FOLDER|S3-PREFIX|MANIFEST",
            help="[required unless --corrections] a folder with one sub-folder of photos per tag (the "
            "sub-folder's name is the tag), the same under s3://bucket/prefix/, or a manifest (.csv, "
            ".jsonl, Ground Truth / Rekognition .manifest); repeat to combine",
        ),
    ] = None,
    corrections: Annotated[
        bool, typer.Option("--corrections", help="add the tags reviewers confirmed for this model")
    ] = False,
    kind: Annotated[str, typer.Option(help="exclusive (one tag per asset) or multilabel")] = "exclusive",
    threshold: Annotated[
        float | None,
        typer.Option(
            help="apply every tag at or above this confidence without review "
            "(default: thresholds calibrated per tag for 98% precision)"
        ),
    ] = None,
    review_floor: Annotated[
        float | None,
        typer.Option(
            help="confidence below which a tag is not even suggested (default: every model's default floor)",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="make the new version active even if it is worse than the active one"),
    ] = False,
    allow_near_duplicates: Annotated[
        bool,
        typer.Option(
            "--allow-near-duplicates",
            help="allow nearly identical photos under different tags (a warning, not an error)",
        ),
    ] = False,
    label_attribute: Annotated[
        str | None,
        typer.Option(
            help="Ground Truth manifests: the label attribute to read (default: every classification)"
        ),
    ] = None,
    text: Annotated[
        bool | None,
        typer.Option(
            "--text/--no-text",
            help="also learn from the text printed on the examples (OCR, about 1 s per new photo; "
            "uploads are then read by OCR too); default: as the active version does",
        ),
    ] = None,
    augment: Annotated[
        int | None,
        typer.Option(
            help="augmented views of each example photo to train on (0: none; default 2; cached, "
            "so a retrain embeds nothing twice)",
        ),
    ] = None,
    submit: Annotated[
        bool, typer.Option("--submit", help="do not wait: write a training request for the train handler")
    ] = False,
    report_out: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="write the HTML report to this file (default: reports/ in the local data folder)",
        ),
    ] = None,
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Train (or retrain) a tag model from example photos.

    The new version becomes active only if it is not worse than the active one. Prints what will
    happen to uploads, where the report is and what to do next.
    """
    from tagsmith.tagmodels import ModelKind
    from tagsmith.tagmodels.model import DEFAULT_REVIEW_FLOOR
    from tagsmith.trainer import validate_augment
    from tagsmith.trainjobs import TrainingRequest

    def go() -> None:
        validate_tenant(tenant)
        validate_model_id(model)
        if not examples and not corrections:
            raise TagsmithError(
                "nothing to train on: give --examples (folder, s3:// prefix or manifest) and/or --corrections"
            )
        try:
            model_kind = ModelKind(kind)
        except ValueError:
            raise TagsmithError(f"--kind must be exclusive or multilabel, got {kind!r}") from None
        s = open_session(target)
        jobs = _jobs(s.components)
        req = TrainingRequest(
            tenant=tenant,
            model=model,
            examples=tuple(examples or ()),
            kind=model_kind,
            threshold=threshold,
            review_floor=DEFAULT_REVIEW_FLOOR if review_floor is None else review_floor,
            force=force,
            corrections=corrections,
            label_attribute=label_attribute,
            allow_near_duplicates=allow_near_duplicates,
            text=text,
            augment=None if augment is None else validate_augment(augment),
        )
        if submit:
            local = [e for e in req.examples if not e.startswith("s3://")]
            if local:
                raise TagsmithError(
                    f"--submit needs s3:// examples the train handler can read; upload these first: {', '.join(local)}"
                )
            key = jobs.submit(req)
            if as_json:
                print(json.dumps({"state": "pending", "request": key}))
            else:
                out.print(
                    f"[green]submitted[/] {key} ({s.where}); follow it with `tagsmith status -t {tenant} -m {model}`"
                )
            return
        if not as_json:
            err.print(
                f"training {tenant}/{model} from {', '.join(req.examples) or 'corrections'} ({s.where})"
            )
        with training_progress(s.components, req, enabled=not as_json) as on_examples:
            status = jobs.train_now(req, local_paths=True, keep_failure=False, on_examples=on_examples)
        if status["state"] != "trained":
            active = s.components.models.active_version(tenant, model)
            kept = f"version {active} stays active" if active else "nothing was saved"
            raise TagsmithError(f"training {tenant}/{model} failed ({kept}): {status.get('error')}")
        report = status["report"]
        html = s.components.models.version_file(tenant, model, status["version"], "report.html") or b""
        report_file = report_out or default_report_path(tenant, model, status["version"])
        report_file.parent.mkdir(parents=True, exist_ok=True)
        report_file.write_bytes(html)
        outlook = _active_outlook(s.components, tenant, model)
        if as_json:
            print(
                json.dumps(
                    {**report, "report_file": str(report_file), "outlook": outlook.to_dict()},
                    ensure_ascii=False,
                )
            )
            return
        _print_report(report, None)
        _print_outlook(outlook, report)
        out.print(f"report: {report_file}  (open it in a browser)", soft_wrap=True, highlight=False)
        _print_next_steps(s, tenant, model)

    run_or_exit(go)


def default_report_path(tenant: str, model: str, version: str) -> Path:
    """Where ``train`` writes the HTML report when ``--report`` is not given: a file a person can
    open, in the local data folder (``var/reports/`` unless ``TAGSMITH_HOME`` moves it)."""
    from tagsmith.local.stack import StackConfig

    return (StackConfig.from_env().home / "reports" / f"{tenant}-{model}-{version}.html").resolve()


@contextmanager
def training_progress(c: Any, req: Any, *, enabled: bool) -> Iterator[Callable[[Any], None]]:
    """A bar over the slow part of training, embedding the photos (and their augmented views);
    yields the hook that learns how many there are once the examples are listed."""
    from tagsmith.cli.progress import ProgressEncoder, ProgressOcr, progress_bar
    from tagsmith.trainer import DEFAULT_AUGMENT_VIEWS, views_per_example

    trainer = c.trainer
    tagger = trainer.tagger  # the trainer embeds through its tagger's encoders
    photos = 0
    with progress_bar(enabled=enabled) as bar:
        task = bar.add_task("loading the image encoder", total=None)
        plain = tagger.encoders
        tagger.encoders = plain.wrapped(lambda e: ProgressEncoder(e, lambda n: bar.advance(task, n)))
        reading: list[Any] = []  # the OCR bar, made on the first photo read (--text only)

        def on_read() -> None:
            if not reading:
                reading.append(bar.add_task(f"reading the print on up to {photos} photos", total=photos))
            bar.advance(reading[0])

        if trainer.ocr is not None:
            trainer.ocr = ProgressOcr(trainer.ocr, on_read)

        def on_examples(examples: Any) -> None:
            nonlocal photos
            augment = DEFAULT_AUGMENT_VIEWS if req.augment is None else req.augment
            views = sum(views_per_example([ex.tags for ex in examples.examples], augment))
            photos = len(examples.examples)
            what = f"embedding {photos} photos" + (f" and {views} augmented views" if views else "")
            recipes = len(plain.candidates)  # each is embedded once per candidate recipe
            if recipes > 1:
                what += f" ({recipes} recipes to compare)"
            bar.update(task, description=what, total=(photos + views) * recipes)

        try:
            yield on_examples
        finally:
            tagger.encoders = plain
            if isinstance(trainer.ocr, ProgressOcr):
                trainer.ocr = trainer.ocr.inner


def _active_outlook(c: Any, tenant: str, model: str) -> Any:
    from tagsmith.outlook import upload_outlook

    return upload_outlook(c.models.load_active(tenant, model))


def _print_report(report: dict[str, Any], report_file: Path | str | None) -> None:
    for w in report["warnings"]:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    cv = report.get("cv_accuracy")
    judged = (
        f"; {cv:.0%} of the examples were recognised by a model trained without them (cross-validation)"
        if cv is not None
        else ""
    )
    out.print(
        f"[green]trained[/] {report['tenant']}/{report['model_id']} version [bold]{report['version']}[/]: "
        f"{len(report['tags'])} tags, {report['examples']} examples ({report['embedded']} embedded, "
        f"{report['cached']} from cache) in {report['seconds']:.1f} s{judged}",
        highlight=False,
    )
    recipes = report.get("recipes") or {}
    if len(recipes) > 1:
        # which recipe the examples chose, and by how much (cross-validated accuracy of each)
        ranked = sorted(recipes.items(), key=lambda kv: -(kv[1] or 0.0))
        shown = ", ".join(f"{name} {v:.0%}" if v is not None else f"{name} n/a" for name, v in ranked)
        out.print(
            f"recipe: {report['encoder_id']} (cross-validated: {shown})", highlight=False, soft_wrap=True
        )
    weak = [(t, m) for t, m in report["per_tag"].items() if m["recall"] < 0.8 or m["precision"] < 0.8]
    for tag, m in weak[:10]:
        out.print(f"  {tag}: precision {m['precision']:.0%}, recall {m['recall']:.0%}", highlight=False)
    for pair in report["confused"][:5]:
        out.print(
            f"  confused: {pair['tag']} taken for {pair['predicted_as']} {pair['count']} time(s)",
            highlight=False,
        )
    promotion = report.get("promotion") or {}
    colour = "green" if promotion.get("promoted") else "yellow"
    word = "active" if promotion.get("promoted") else "NOT promoted"
    out.print(f"[{colour}]{word}[/]: {promotion.get('reason', '')}", highlight=False)
    if report_file:
        out.print(f"report: {report_file}  (open it in a browser)", soft_wrap=True, highlight=False)


def _print_outlook(outlook: Any, report: dict[str, Any]) -> None:
    promoted = (report.get("promotion") or {}).get("promoted")
    who = "" if promoted else " (still tagged by the active version)"
    out.print(f"uploads{who}: {outlook.sentence()}", highlight=False)


def _print_next_steps(s: Any, tenant: str, model: str) -> None:
    active = s.components.models.load_active(tenant, model)
    languages = {lang for t in (active.taxonomy.tags if active else ()) for lang in t.labels}
    steps = []
    if s.stack is not None or s.where.startswith("AWS"):
        steps.append((f"tagsmith upload -t {tenant} photo.jpg ...", "tag new photos as they are uploaded"))
    else:
        steps.append((f"tagsmith tag -t {tenant} photo.jpg", "try the model on a photo (nothing stored)"))
        steps.append(("make run", "start the local stack, then `tagsmith upload` photos"))
    console = f" (or {s.stack.console_url}/review)" if s.stack is not None and s.stack.console_url else ""
    steps.append((f"tagsmith review list -t {tenant}", f"what waits for a reviewer{console}"))
    if languages <= {"en"}:
        steps.append(
            (
                f"tagsmith taxonomy show -t {tenant} -m {model} --json > labels.json",
                'then add labels in other languages ("fr": "chapeau")',
            )
        )
        steps.append(
            (
                f"tagsmith taxonomy set -t {tenant} -m {model} labels.json",
                "so search finds them in those words",
            )
        )
    out.print("next:", highlight=False)
    width = max(len(c) for c, _ in steps)
    for command, why in steps:
        out.print(f"  {command:<{width}}  # {why}", soft_wrap=True, highlight=False)


@app.command()
def status(
    tenant: TenantOpt,
    model: Annotated[str | None, typer.Option("--model", "-m", help="one model (default: all)")] = None,
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Training status of a tenant's models.

    Pending, training, trained or failed (and why).
    """
    from tagsmith.trainjobs import describe_status

    def go() -> None:
        validate_tenant(tenant)
        c = open_session(target).components
        ids = [validate_model_id(model)] if model else c.models.known_model_ids(tenant)
        rows = [(mid, c.models.read_status(tenant, mid)) for mid in ids]
        if as_json:
            for mid, st in rows:
                d = {k: v for k, v in (st or {"state": None}).items() if k != "report"}
                print(json.dumps({"model": mid, **d}, ensure_ascii=False))
            return
        if not rows:
            out.print(f"tenant {tenant} has no models yet: train one with `tagsmith train`")
        for mid, st in rows:
            out.print(f"[bold]{mid}[/]: {describe_status(st)}")
            for w in (st or {}).get("warnings", [])[:5]:
                out.print(f"  [yellow]warning:[/] {w.splitlines()[0]}")

    run_or_exit(go)


@models_app.callback()
def models(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="tenant id")] = None,
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """List a tenant's tag models with their active version and training status."""
    from tagsmith.trainjobs import describe_status

    if ctx.invoked_subcommand is not None:
        return

    def go() -> None:
        if tenant is None:
            raise TagsmithError("give --tenant (or a sub-command: versions, rollback, report, delete)")
        validate_tenant(tenant)
        c = open_session(target).components
        current_encoder = c.encoder.encoder_id
        rows: list[dict[str, Any]] = []
        for mid in c.models.known_model_ids(tenant):
            m = c.models.load_active(tenant, mid)
            st = c.models.read_status(tenant, mid)
            # A model trained for another encoder tags nothing here (tagging.py): say so, loudly.
            stale = m is not None and m.encoder_id != current_encoder
            status = describe_status(st)
            if stale and m is not None:
                note = f"trained for encoder {m.encoder_id}: retrain (docs/training.md)"
                status = f"{note}; {status}" if status else note
            rows.append(
                {
                    "model": mid,
                    "active": m.version if m else None,
                    "kind": m.kind.value if m else None,
                    "tags": list(m.tags) if m else [],
                    "versions": c.models.versions(tenant, mid),
                    "metrics": m.metrics if m else {},
                    "state": (st or {}).get("state"),
                    "status": status,
                    "encoder_id": m.encoder_id if m else None,
                    "needs_retrain": stale,
                }
            )
        if as_json:
            for r in rows:
                print(json.dumps(r, ensure_ascii=False))
            return
        table = Table("model", "kind", "active version", "tags", "versions", "status")
        for r in rows:
            table.add_row(
                r["model"],
                r["kind"] or "-",
                r["active"] or "-",
                str(len(r["tags"])),
                str(len(r["versions"])),
                r["status"],
            )
        out.print(table)

    run_or_exit(go)


@models_app.command("versions")
def versions(
    tenant: TenantOpt, model: ModelOpt, target: TargetOpt = Target.AUTO, as_json: JsonOpt = False
) -> None:
    """Every version of a model, oldest first.

    With its figures and the promotion decision.
    """

    def go() -> None:
        validate_tenant(tenant)
        c = open_session(target).components
        rows = c.models.version_summaries(tenant, validate_model_id(model))
        if not rows:
            raise NotFoundError(_no_versions(c, tenant, model))
        if as_json:
            for r in rows:
                print(json.dumps(r, ensure_ascii=False))
            return
        table = Table("", "version", "created", "tags", "examples", "cv accuracy", "decision")
        for r in rows:
            cv = f"{r['cv_accuracy']:.0%}" if r["cv_accuracy"] is not None else "-"
            table.add_row(
                "*" if r["active"] else "",
                r["version"],
                r["created_at"],
                str(r["tags"]),
                str(r["examples"]),
                cv,
                r["decision"],
            )
        out.print(table)

    run_or_exit(go)


def _no_versions(c: Any, tenant: str, model: str) -> str:
    """Why a model has no version: never trained, or its training is pending or failed."""
    from tagsmith.trainjobs import describe_status

    st = c.models.read_status(tenant, model)
    if st is None:
        return f"tenant {tenant!r} has no model {model!r}: train it with `tagsmith train`"
    return (
        f"model {tenant}/{model} has no version yet; its training {describe_status(st)}. "
        f"Train it again, or remove it with `tagsmith models delete -t {tenant} -m {model}`"
    )


@models_app.command("delete")
def delete(
    tenant: TenantOpt,
    model: ModelOpt,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Delete a model and every version of it.

    Its labels and training status go too. Uploads are no longer tagged by it. Tags it already gave stay on the asset records (human
    decisions are never removed), and its review items stay in the queue until decided.
    """

    def go() -> None:
        validate_tenant(tenant)
        c = open_session(target).components
        known = c.models.versions(tenant, validate_model_id(model))
        if not known and c.models.read_status(tenant, model) is None:
            raise NotFoundError(f"tenant {tenant!r} has no model {model!r}")
        if known and not yes:
            what = f"delete {tenant}/{model} and its {len(known)} version(s)?"
            if not err.is_terminal or not typer.confirm(what, default=False, err=True):
                raise TagsmithError(f"not deleted: {what} Pass --yes to confirm")
        removed = c.models.delete_model(tenant, model)
        c.active_models.invalidate(tenant)
        if as_json:
            print(json.dumps({"model": model, "deleted": True, "versions": len(known), "objects": removed}))
        else:
            out.print(
                f"deleted {tenant}/{model}: {len(known)} version(s); uploads are no longer tagged by it",
                highlight=False,
            )

    run_or_exit(go)


@models_app.command("rollback")
def rollback(
    tenant: TenantOpt,
    model: ModelOpt,
    to: Annotated[
        str, typer.Option("--to", help="the version to make active again (see `tagsmith models versions`)")
    ],
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Make an earlier version active again."""

    def go() -> None:
        validate_tenant(tenant)
        c = open_session(target).components
        known = c.models.versions(tenant, validate_model_id(model))
        if to not in known:
            listed = ", ".join(known[-5:]) or "none"
            raise NotFoundError(f"model {tenant}/{model} has no version {to!r}; recent versions: {listed}")
        previous = c.models.active_version(tenant, model)
        c.models.activate(tenant, model, to, reason=f"rolled back from {previous}")
        if as_json:
            print(json.dumps({"model": model, "active": to, "previous": previous}))
        else:
            out.print(f"[green]{tenant}/{model}[/]: active version is now [bold]{to}[/] (was {previous})")

    run_or_exit(go)


@models_app.command("target")
def set_target(
    tenant: TenantOpt,
    model: ModelOpt,
    precision: Annotated[
        float | None,
        typer.Option(
            help="the precision auto-applied tags must keep, e.g. 0.9, 0.95, 0.98 (default) or 0.99"
        ),
    ] = None,
    max_tags: Annotated[
        int | None,
        typer.Option("--max-tags", help="multi-label models: propose at most this many tags per asset"),
    ] = None,
    no_max_tags: Annotated[bool, typer.Option("--no-max-tags", help="multi-label models: no limit")] = False,
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Change what a model auto-applies, without retraining.

    The thresholds are chosen again from the out-of-fold evidence the active version keeps, as a new
    version; activating it re-tags the library (a backfill), and every human decision is kept.
    """
    from tagsmith.tagmodels.model import KEEP
    from tagsmith.tagmodels.retarget import retarget

    def go() -> None:
        validate_tenant(tenant)
        validate_model_id(model)
        if precision is None and max_tags is None and not no_max_tags:
            raise TagsmithError("give --precision, --max-tags or --no-max-tags")
        c = open_session(target).components
        limit: Any = None if no_max_tags else (max_tags if max_tags is not None else KEEP)
        new = retarget(c.models, tenant, model, target=precision, max_tags=limit, by="tagsmith models target")
        cal = new.metrics.get("calibration") or {}
        if as_json:
            print(json.dumps({"model": model, "active": new.version, "target_precision": new.target_precision,
                              "max_tags": new.max_tags, "calibration": cal}))  # fmt: skip
            return
        out.print(
            f"[green]{tenant}/{model}[/]: version [bold]{new.version}[/] is active, auto-applying at "
            f"{new.target_precision:.0%} precision"
            + (f", at most {new.max_tags} tag(s) per asset" if new.max_tags else "")
        )
        if cal.get("cv_coverage") is not None:
            lower = cal.get("cv_precision_lower")
            out.print(
                f"expected on uploads like the examples: {cal['cv_coverage']:.0%} auto-applied"
                + (f" (out-of-fold precision {cal['cv_precision']:.1%}, 95% lower bound {lower:.1%})" if cal.get("cv_precision") is not None and lower is not None else "")
            )  # fmt: skip
        out.print(
            "the library is re-routed by the backfill this activation starts: `tagsmith backfill status`"
        )

    run_or_exit(go)


@models_app.command("report")
def report(
    tenant: TenantOpt,
    model: ModelOpt,
    version: Annotated[str | None, typer.Option(help="a version (default: the newest)")] = None,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="write the HTML page here (default: reports/ in the local data folder)"),
    ] = None,
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Show a version's training report.

    Also writes its HTML page to a file you can open.
    """

    def go() -> None:
        validate_tenant(tenant)
        c = open_session(target).components
        v = version or next(iter(reversed(c.models.versions(tenant, validate_model_id(model)))), "")
        body = c.models.version_file(tenant, model, v, "report.json") if v else None
        if body is None:
            raise NotFoundError(f"no training report for {tenant}/{model} {v}".rstrip())
        d = json.loads(body)
        for pair in d.get("confused", []):
            pair.pop("thumbnails", None)
        html = c.models.version_file(tenant, model, v, "report.html")
        report_file = None
        if html is not None:
            report_file = out_file or default_report_path(tenant, model, v)
            report_file.parent.mkdir(parents=True, exist_ok=True)
            report_file.write_bytes(html)
        if as_json:
            print(
                json.dumps(
                    {**d, "report_file": str(report_file) if report_file else None}, ensure_ascii=False
                )
            )
            return
        _print_report(d, report_file)

    run_or_exit(go)


@taxonomy_app.command("show")
def taxonomy_show(
    tenant: TenantOpt, model: ModelOpt, target: TargetOpt = Target.AUTO, as_json: JsonOpt = False
) -> None:
    """A model's tags with their labels and synonyms."""

    def go() -> None:
        validate_tenant(tenant)
        c = open_session(target).components
        active = c.models.load_active(tenant, validate_model_id(model))
        taxonomy = c.models.taxonomy(tenant, model)
        if active is not None:
            taxonomy = active.taxonomy  # the stored taxonomy over exactly the model's tags
        if taxonomy is None:
            raise NotFoundError(f"tenant {tenant!r} has no model {model!r} and no taxonomy for it")
        if as_json:
            print(taxonomy.to_json().decode())
            return
        table = Table("tag", "labels", "synonyms")
        for t in taxonomy.tags:
            table.add_row(
                t.id,
                "; ".join(f"{k}: {v}" for k, v in sorted(t.labels.items())),
                "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(t.synonyms.items())),
            )
        out.print(table)

    run_or_exit(go)


@taxonomy_app.command("set")
def taxonomy_set(
    tenant: TenantOpt,
    model: ModelOpt,
    file: Annotated[
        Path, typer.Argument(help='taxonomy JSON: {"tags": [{"id": ..., "labels": {"en": ...}}]}')
    ],
    target: TargetOpt = Target.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Replace a model's labels and synonyms.

    Takes effect without retraining; reindex for search to use them.
    """
    from tagsmith.taxonomy import Taxonomy

    def go() -> None:
        validate_tenant(tenant)
        validate_model_id(model)
        if not file.is_file():
            raise TagsmithError(f"{file} does not exist")
        taxonomy = Taxonomy.from_json(file.read_bytes())
        c = open_session(target).components
        active = c.models.load_active(tenant, model)
        unknown = sorted(set(taxonomy.ids) - set(active.tags)) if active else []
        unlabelled = sorted(set(active.tags) - set(taxonomy.ids)) if active else []
        c.models.save_taxonomy(tenant, model, taxonomy)
        c.active_models.invalidate(tenant)
        hint = REINDEX_HINT.format(t=tenant)
        if as_json:
            print(
                json.dumps(
                    {
                        "model": model,
                        "tags": len(taxonomy.tags),
                        "unknown_tags": unknown,
                        "tags_without_labels": unlabelled,
                        "hint": hint,
                    }
                )
            )
            return
        out.print(f"[green]taxonomy of {tenant}/{model} saved[/]: {len(taxonomy.tags)} tags")
        if unknown:
            err.print(
                f"[yellow]warning:[/] the model does not know these tags (kept for a later training): {', '.join(unknown)}"
            )
        if unlabelled:
            err.print(
                f"[yellow]warning:[/] these tags of the model have no entry (their id is shown): {', '.join(unlabelled)}"
            )
        out.print(hint)

    run_or_exit(go)
