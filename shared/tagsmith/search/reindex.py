"""Reindexing a tenant from its records with no downtime and no lost writes; mapping migrations.

:meth:`~tagsmith.search.SearchIndex.rebuild` loads a new index and swaps the alias atomically, but a
write that reaches the alias *while* the new index is loading lands in the old index, which the swap
then discards. :func:`reindex_tenant` closes that gap with a catch-up pass:

1. list the tenant's records, noting each one's revision, and rebuild from them (alias swap);
2. after the swap every write lands in the new index, so list the records again and re-index each
   one whose revision differs from the one loaded (changed or created during step 1), and delete the
   documents of records that disappeared meanwhile.

Ingestion writes the record *before* the index, so a change missed by step 1 is always visible to
step 2. Revisions, not clocks, decide what changed: no clock skew to allow for. Re-indexing a record
twice is harmless (documents are versioned by revision, ``external_gte``). The price is reading the
records twice.

Tombstones (records of deleted objects, status ``deleted``) are never indexed: the rebuild skips
them, and one tombstoned during step 1 has its document deleted in step 2.

A mapping migration (``MAPPING_VERSION`` raised, e.g. v1 -> v2) is the same operation: the rebuild
creates the new index with the current mapping. :func:`reindex_tenants` with ``only_outdated`` does
just the tenants whose live index has an older mapping.

Example::

    >>> from tagsmith.search import InMemorySearchIndex
    >>> class NoRecords:
    ...     def iter_tenant(self, tenant): return iter(())
    >>> reindex_tenant(index=InMemorySearchIndex(), records=NoRecords(), taxonomies={}, tenant="acme").indexed
    0
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tagsmith.records import AssetRecord
from tagsmith.search.index import BulkItemError, SearchIndex, searchable
from tagsmith.search.mapping import MAPPING_VERSION
from tagsmith.taxonomy import Taxonomy

log = logging.getLogger(__name__)


class RecordSource(Protocol):
    """Where a tenant's asset records are read from (:class:`tagsmith.storage.RecordStore`)."""

    def iter_tenant(self, tenant: str) -> Iterator[AssetRecord]: ...


@dataclass(frozen=True, slots=True)
class ReindexReport:
    """What :func:`reindex_tenant` did for one tenant."""

    tenant: str
    index: str
    mapping_version_before: int | None
    mapping_version: int
    indexed: int
    caught_up: int
    removed: int
    errors: list[BulkItemError] = field(default_factory=list)
    deleted_indices: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "index": self.index,
            "mapping_version_before": self.mapping_version_before,
            "mapping_version": self.mapping_version,
            "indexed": self.indexed,
            "caught_up": self.caught_up,
            "removed": self.removed,
            "errors": [e.to_dict() for e in self.errors],
            "deleted_indices": list(self.deleted_indices),
            "seconds": round(self.seconds, 3),
        }


def reindex_tenant(
    *,
    index: SearchIndex,
    records: RecordSource,
    taxonomies: Mapping[str, Taxonomy],
    tenant: str,
) -> ReindexReport:
    """Rebuild ``tenant``'s index from ``records`` (alias swap), then catch up on writes made meanwhile."""
    started = time.perf_counter()
    before = index.mapping_version(tenant)
    loaded: dict[str, int] = {}

    def listing() -> Iterator[AssetRecord]:
        for record in records.iter_tenant(tenant):
            loaded[record.key] = record.revision
            yield record

    rebuilt = index.rebuild(tenant, listing(), taxonomies)
    # From here on the alias points at the new index: every new write lands there.
    changed: list[AssetRecord] = []
    deleted: list[AssetRecord] = []  # tombstoned meanwhile: their document may have been loaded
    present: set[str] = set()
    for record in records.iter_tenant(tenant):
        present.add(record.key)
        if loaded.get(record.key) != record.revision:
            (changed if searchable(record) else deleted).append(record)
    errors = list(rebuilt.errors)
    if changed:
        errors += index.bulk_upsert(((r, taxonomies) for r in changed), tenant)
    for record in deleted:
        index.delete(tenant, record.key, revision=record.revision)
    gone = sorted(set(loaded) - present)
    for key in gone:
        index.delete(tenant, key)
    report = ReindexReport(
        tenant=tenant,
        index=rebuilt.index,
        mapping_version_before=before,
        mapping_version=MAPPING_VERSION,
        indexed=rebuilt.indexed,
        caught_up=len(changed),
        removed=len(gone) + len(deleted),
        errors=errors,
        deleted_indices=rebuilt.deleted_indices,
        seconds=time.perf_counter() - started,
    )
    log.info(
        "reindexed tenant %s into %s (mapping v%s -> v%s): %d documents, %d caught up, %d removed, %d errors",
        tenant,
        report.index,
        before,
        MAPPING_VERSION,
        report.indexed,
        report.caught_up,
        report.removed,
        len(errors),
        extra={"tenant": tenant},
    )
    return report


def reindex_tenants(
    *,
    index: SearchIndex,
    records: RecordSource,
    taxonomies_for: Callable[[str], Mapping[str, Taxonomy]],
    tenants: Iterable[str],
    only_outdated: bool = False,
) -> list[ReindexReport]:
    """:func:`reindex_tenant` for each tenant in turn; ``only_outdated``: skip tenants whose live index
    already has the current mapping version (a migration after ``MAPPING_VERSION`` was raised)."""
    reports = []
    for tenant in tenants:
        if only_outdated and index.mapping_version(tenant) == MAPPING_VERSION:
            log.info("tenant %s is already on mapping v%d", tenant, MAPPING_VERSION, extra={"tenant": tenant})
            continue
        reports.append(
            reindex_tenant(index=index, records=records, taxonomies=taxonomies_for(tenant), tenant=tenant)
        )
    return reports
