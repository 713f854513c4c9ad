"""Asset records in the data bucket, read and written with optimistic concurrency."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import replace

from tagsmith.errors import NotFoundError
from tagsmith.keys import AssetKey, asset_from_record_key, record_key, records_prefix
from tagsmith.records import AssetRecord, Cause, RecordChange, carry_changes, tag_changes, utc_now
from tagsmith.storage.base import ObjectStore
from tagsmith.storage.cas import UNKNOWN, JsonDocument

#: ETags of records this store wrote last, kept so that stamping a record as published right after
#: writing it needs no second read (a stamp is a conditional PUT on that ETag).
ETAGS_KEPT = 4096


class RecordStore:
    """Reads and writes :class:`AssetRecord` JSON; every write is a compare-and-swap on the ETag, so
    a reviewer's decision and a reprocessing that race can never silently overwrite each other."""

    def __init__(self, *, store: ObjectStore, bucket: str) -> None:
        self.store = store
        self.bucket = bucket
        self._etags: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._lock = threading.Lock()

    def _document(self, asset: AssetKey) -> JsonDocument[AssetRecord]:
        return JsonDocument(
            self.store,
            self.bucket,
            record_key(asset),
            decode=AssetRecord.from_json,
            encode=AssetRecord.to_json,
            what=f"record for {asset.key}",
        )

    def get(self, asset: AssetKey) -> tuple[AssetRecord, str] | None:
        return self._document(asset).get()

    def update(
        self,
        asset: AssetKey,
        change: Callable[[AssetRecord | None], AssetRecord | None],
        *,
        cause: RecordChange | Cause = Cause.OTHER,
        attempts: int = 5,
        known: tuple[AssetRecord, str] | object | None = UNKNOWN,
    ) -> AssetRecord | None:
        """Read-modify-write: ``change`` gets the current record (or None) and returns the new one
        (or None to leave it as it is); every write bumps the revision and records what changed and
        why (``cause``, see :class:`RecordChange`). Retried on a lost race, re-reading each time
        (see :meth:`JsonDocument.update` for ``known``)."""
        why = cause if isinstance(cause, RecordChange) else RecordChange(cause)
        doc = self._document(asset)
        record, wrote = doc.update(
            change, stamp=lambda new, old: _next_revision(new, old, why), attempts=attempts, known=known
        )
        if wrote and record is not None and doc.last_etag is not None:
            self._remember(record, doc.last_etag)
        return record

    def mark_published(self, record: AssetRecord) -> bool:
        """Stamp ``record.revision`` as published (``published_revision``) if the stored record is
        still that revision: no revision bump, no change of its own. Returns whether it wrote. One
        conditional PUT when this store wrote the revision; a lost race (a newer revision was
        written meanwhile, which will be published in its turn) re-reads once and gives up."""
        asset = AssetKey(record.tenant, record.path)
        with self._lock:
            etag = self._etags.get((record.key, record.revision))
        known: tuple[AssetRecord, str] | object = (record, etag) if etag else UNKNOWN

        def stamp(current: AssetRecord | None) -> AssetRecord | None:
            if current is None or current.revision != record.revision:
                return None
            if current.published_revision >= current.revision:
                return None
            return replace(current, published_revision=current.revision)

        doc = self._document(asset)
        stamped, wrote = doc.update(stamp, attempts=2, known=known)
        if wrote and stamped is not None and doc.last_etag is not None:
            self._remember(stamped, doc.last_etag)
        return wrote

    def _remember(self, record: AssetRecord, etag: str) -> None:
        with self._lock:
            self._etags[(record.key, record.revision)] = etag
            self._etags.move_to_end((record.key, record.revision))
            while len(self._etags) > ETAGS_KEPT:
                self._etags.popitem(last=False)

    def iter_tenant(self, tenant: str, *, start_after: str = "") -> Iterator[AssetRecord]:
        """Every record of the tenant in key order; after the record of asset path ``start_after``
        if given (how a long export resumes)."""
        prefix = records_prefix(tenant)
        start = f"{prefix}{start_after}.json" if start_after else ""
        for info in self.store.list(self.bucket, prefix, start_after=start):
            try:
                yield AssetRecord.from_json(self.store.get(self.bucket, info.key).body)
            except NotFoundError:
                continue  # deleted while listing

    def asset_keys(self, tenant: str) -> Iterator[AssetKey]:
        for info in self.store.list(self.bucket, records_prefix(tenant)):
            yield asset_from_record_key(info.key)


def _next_revision(new: AssetRecord, old: AssetRecord | None, why: RecordChange) -> AssetRecord:
    """What every write adds: the next revision, and what changed since ``old`` and why. Changes of
    ``old`` that were never published are carried into this revision's."""
    if old is None:
        change = replace(why, tags=tag_changes((), new.tags), status_before=None)
        return replace(new, change=change, published_revision=0)
    fresh = tag_changes(old.tags, new.tags)
    unpublished = old.change is not None and old.published_revision < old.revision
    pending = old.change.tags if unpublished and old.change is not None else ()
    status_before = old.status if old.status is not new.status else None
    if unpublished and old.change is not None and old.change.status_before is not None:
        status_before = old.change.status_before if old.change.status_before is not new.status else None
    change = replace(why, tags=carry_changes(pending, fresh), status_before=status_before)
    return replace(
        new,
        revision=old.revision + 1,
        created_at=old.created_at,
        updated_at=utc_now(),
        change=change,
        published_revision=old.published_revision,
    )
