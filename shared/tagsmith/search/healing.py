"""A self-healing index: the documents compared with the records they project, and repaired.

The index is a projection of the records and nothing else notices when it falls behind: a search
server that restarts empty, an outage during which ingestion could not write, a document deleted by
hand. :func:`diagnose` compares what the index holds (:meth:`SearchIndex.revisions`: asset key ->
revision, a scroll of ids) with the records read (pure), and :func:`heal` acts on it:

* ``missing`` (the tenant has no index) or ``empty`` (an index with no document while records
  exist: a restarted server re-created by the first write after it): **rebuild** from the records,
  with the catch-up pass of :func:`~tagsmith.search.reindex.reindex_tenant`;
* ``behind`` (records without a document, documents of an older revision, documents of deleted
  assets): **catch up**, re-indexing or deleting just those;
* ``ok``: nothing.

:mod:`tagsmith.sweep` runs it for every tenant on a schedule (on AWS a scheduled function, locally
a thread of the stack and once at every start), logs a warning naming what was wrong and reports
the numbers as metrics.

>>> from tagsmith.records import AssetRecord, AssetStatus, SourceObject
>>> r = AssetRecord("acme", "a.jpg", SourceObject("b", "acme/a.jpg", "e", 1), AssetStatus.TAGGED, revision=2)
>>> diagnose("acme", {}, {"acme/a.jpg": r}, listed={"acme/a.jpg"}).state
'empty'
>>> diagnose("acme", {"acme/a.jpg": 1}, {"acme/a.jpg": r}, listed={"acme/a.jpg"}).stale
['acme/a.jpg']
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tagsmith.records import AssetRecord
from tagsmith.search.index import SearchIndex, searchable
from tagsmith.search.reindex import RecordSource, reindex_tenant
from tagsmith.taxonomy import Taxonomy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexDiagnosis:
    """How one tenant's index compares with the records that were read."""

    tenant: str
    state: str  # ok | missing | empty | behind
    documents: int
    missing: list[str] = field(default_factory=list)  # searchable records without a document
    stale: list[str] = field(default_factory=list)  # documents of an older revision than the record
    extra: list[str] = field(default_factory=list)  # documents whose asset has no searchable record


@dataclass(frozen=True)
class IndexRepair:
    """What :func:`heal` did."""

    tenant: str
    state: str
    action: str  # none | rebuilt | caught up
    documents: int  # before
    indexed: int = 0  # documents written
    removed: int = 0  # documents deleted
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "state": self.state,
            "action": self.action,
            "documents": self.documents,
            "indexed": self.indexed,
            "removed": self.removed,
            "seconds": round(self.seconds, 3),
        }


def diagnose(
    tenant: str,
    documents: Mapping[str, int] | None,
    records: Mapping[str, AssetRecord],
    *,
    listed: set[str],
) -> IndexDiagnosis:
    """Compare the index's ``documents`` (None: no index) with ``records`` (asset key -> record, the
    ones read) and ``listed`` (every asset key that has a record, read or not). Pure."""
    live = {k: r for k, r in records.items() if searchable(r)}
    if documents is None:
        return IndexDiagnosis(tenant, "missing" if live else "ok", 0, missing=sorted(live))
    missing = sorted(k for k in live if k not in documents)
    stale = sorted(k for k, r in live.items() if k in documents and documents[k] < r.revision)
    dead = {k for k, r in records.items() if not searchable(r)}
    extra = sorted(k for k in documents if k not in listed or k in dead)
    if not documents and missing:
        state = "empty"
    elif missing or stale or extra:
        state = "behind"
    else:
        state = "ok"
    return IndexDiagnosis(tenant, state, len(documents), missing, stale, extra)


def heal(
    *,
    index: SearchIndex,
    diagnosis: IndexDiagnosis,
    records: Mapping[str, AssetRecord],
    source: RecordSource,
    taxonomies: Mapping[str, Taxonomy],
    complete: bool = False,
) -> IndexRepair:
    """Act on ``diagnosis`` (see the module docstring); ``source`` lists every record for a rebuild.
    ``complete``: ``records`` already holds every record of the tenant and nothing writes
    meanwhile (the local stack's start): a rebuild loads them instead of reading them all again."""
    started = time.perf_counter()
    tenant = diagnosis.tenant
    if diagnosis.state == "ok":
        return IndexRepair(tenant, "ok", "none", diagnosis.documents)
    if diagnosis.state in ("missing", "empty"):
        if complete:
            built = index.rebuild(tenant, list(records.values()), taxonomies)
            indexed, removed = built.indexed, 0
        else:
            report = reindex_tenant(index=index, records=source, taxonomies=taxonomies, tenant=tenant)
            indexed, removed = report.indexed + report.caught_up, report.removed
        repair = IndexRepair(
            tenant,
            diagnosis.state,
            "rebuilt",
            diagnosis.documents,
            indexed=indexed,
            removed=removed,
            seconds=time.perf_counter() - started,
        )
        log.warning(
            "search index of tenant %s was %s while %d records have documents: rebuilt from the records "
            "(%d documents)",
            tenant,
            diagnosis.state,
            len(diagnosis.missing),
            repair.indexed,
            extra={"tenant": tenant, **repair.to_dict()},
        )
        return repair
    rewrite = [records[k] for k in (*diagnosis.missing, *diagnosis.stale)]
    errors = index.bulk_upsert(((r, taxonomies) for r in rewrite), tenant) if rewrite else []
    for key in diagnosis.extra:
        dead = records.get(key)
        index.delete(tenant, key, revision=dead.revision if dead is not None else None)
    repair = IndexRepair(
        tenant,
        "behind",
        "caught up",
        diagnosis.documents,
        indexed=len(rewrite) - len(errors),
        removed=len(diagnosis.extra),
        seconds=time.perf_counter() - started,
    )
    log.warning(
        "search index of tenant %s was behind its records: %d documents missing, %d stale, %d of deleted "
        "assets; caught up (%d written, %d deleted, %d errors)",
        tenant,
        len(diagnosis.missing),
        len(diagnosis.stale),
        len(diagnosis.extra),
        repair.indexed,
        repair.removed,
        len(errors),
        extra={"tenant": tenant, **repair.to_dict()},
    )
    return repair
