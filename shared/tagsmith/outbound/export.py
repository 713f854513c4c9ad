"""``tagsmith export``: a tenant's tags as CSV, JSON Lines or XMP sidecars, resumable.

* ``csv``: one row per tag (an asset without tags gets one row with empty tag columns), with a
  ``label_<lang>`` column per language;
* ``jsonl``: one line per asset, exactly the change event of its current revision
  (``schemas/asset-tags-changed.v1.json``);
* ``xmp``: ``<path>.xmp`` per asset in a folder, merged into files already there (their other
  keywords kept, as for the sidecars in the data bucket). Deleted assets are left out.

Records are read in key order. Every :data:`CHECKPOINT_EVERY` assets the output is flushed and a
checkpoint (``<out>.export.json``, or ``.tagsmith-export.json`` inside an XMP folder) records the
last asset and the file size; a run that finds a checkpoint for the same tenant and format cuts
the file back to that size and continues after that asset. The checkpoint is removed at the end.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagsmith.errors import InvalidInputError
from tagsmith.outbound.changes import change_event, labels_for
from tagsmith.outbound.sidecars import sidecar_xmp
from tagsmith.records import AssetRecord, AssetStatus
from tagsmith.storage.records import RecordStore
from tagsmith.taxonomy import Taxonomy

FORMATS = ("csv", "jsonl", "xmp")
CHECKPOINT_EVERY = 200
BASE_COLUMNS = [
    "key", "revision", "status", "model", "tag", "state", "source", "visible", "confidence",
    "model_version", "decided_by", "decided_at",
]  # fmt: skip


@dataclass
class ExportResult:
    assets: int  # exported by this run
    resumed_after: str  # "" when it started from the beginning
    out: Path


def _checkpoint_path(out: Path, fmt: str) -> Path:
    return out / ".tagsmith-export.json" if fmt == "xmp" else out.with_name(out.name + ".export.json")


def _csv_rows(
    record: AssetRecord, taxonomies: dict[str, Taxonomy], languages: Sequence[str]
) -> list[list[Any]]:
    head = [record.key, record.revision, record.status.value]
    if not record.tags:
        return [head + [""] * (len(BASE_COLUMNS) - 3 + len(languages))]
    rows = []
    for t in record.tags:
        labels = labels_for(taxonomies.get(t.model), t.tag, languages)
        rows.append(
            head
            + [t.model, t.tag, t.state.value, t.source.value, t.is_visible,
               "" if t.confidence is None else round(t.confidence, 4), t.model_version or "",
               t.decided_by or "", t.decided_at or ""]
            + [labels.get(lang, "") for lang in languages]
        )  # fmt: skip
    return rows


def export_tenant(
    records: RecordStore,
    tenant: str,
    fmt: str,
    out: Path,
    *,
    taxonomies: dict[str, Taxonomy],
    languages: Sequence[str],
    restart: bool = False,
    progress: Callable[[int], None] = lambda n: None,
) -> ExportResult:
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    langs = list(languages) or sorted({lang for t in taxonomies.values() for lang in t.languages()}) or ["en"]
    if fmt == "xmp":
        out.mkdir(parents=True, exist_ok=True)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = _checkpoint_path(out, fmt)
    state: dict[str, Any] = {}
    if checkpoint.exists() and not restart:
        state = json.loads(checkpoint.read_text())
        if (state.get("tenant"), state.get("format")) != (tenant, fmt):
            raise InvalidInputError(
                f"{checkpoint} belongs to an export of {state.get('tenant')} as {state.get('format')}: "
                "pass --restart or another output"
            )
    after = str(state.get("last", ""))
    handle = None
    if fmt != "xmp":
        if after:
            with open(out, "r+b") as f:  # cut what was written after the last checkpoint
                f.truncate(int(state["size"]))
            handle = open(out, "a", newline="", encoding="utf-8")  # noqa: SIM115 (closed in finally)
        else:
            handle = open(out, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed in finally)
            if fmt == "csv":
                csv.writer(handle).writerow(BASE_COLUMNS + [f"label_{lang}" for lang in langs])
    done = 0

    def save(last: str) -> None:
        size = 0
        if handle is not None:
            handle.flush()
            size = out.stat().st_size
        checkpoint.write_text(json.dumps({"tenant": tenant, "format": fmt, "last": last, "size": size}))

    try:
        last = after
        for record in records.iter_tenant(tenant, start_after=after):
            if fmt == "csv":
                assert handle is not None
                csv.writer(handle).writerows(_csv_rows(record, taxonomies, langs))
            elif fmt == "jsonl":
                assert handle is not None
                event = change_event(record, taxonomies=taxonomies, languages=langs)
                handle.write(json.dumps(event, ensure_ascii=False) + "\n")
            elif record.status is not AssetStatus.DELETED:
                path = out / f"{record.path}.xmp"
                path.parent.mkdir(parents=True, exist_ok=True)
                existing = path.read_bytes() if path.exists() else None
                path.write_bytes(sidecar_xmp(existing, record, taxonomies=taxonomies, languages=langs))
            done += 1
            last = record.path
            progress(done)
            if done % CHECKPOINT_EVERY == 0:
                save(last)
    except BaseException:
        save(last)  # an interrupted run resumes from here
        raise
    finally:
        if handle is not None:
            handle.close()
    checkpoint.unlink(missing_ok=True)
    return ExportResult(done, after, out)
