"""Asset records in the data bucket, read and written with optimistic concurrency."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

from tagsmith.errors import NotFoundError
from tagsmith.keys import AssetKey, asset_from_record_key, record_key, records_prefix
from tagsmith.records import AssetRecord, utc_now
from tagsmith.storage.base import ObjectStore
from tagsmith.storage.cas import UNKNOWN, JsonDocument


class RecordStore:
    """Reads and writes :class:`AssetRecord` JSON; every write is a compare-and-swap on the ETag, so
    a reviewer's decision and a reprocessing that race can never silently overwrite each other."""

    def __init__(self, *, store: ObjectStore, bucket: str) -> None:
        self.store = store
        self.bucket = bucket

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
        attempts: int = 5,
        known: tuple[AssetRecord, str] | object | None = UNKNOWN,
    ) -> AssetRecord | None:
        """Read-modify-write: ``change`` gets the current record (or None) and returns the new one
        (or None to leave it as it is); every write bumps the revision. Retried on a lost race,
        re-reading each time (see :meth:`JsonDocument.update` for ``known``)."""
        record, _ = self._document(asset).update(change, stamp=_next_revision, attempts=attempts, known=known)
        return record

    def iter_tenant(self, tenant: str) -> Iterator[AssetRecord]:
        for info in self.store.list(self.bucket, records_prefix(tenant)):
            try:
                yield AssetRecord.from_json(self.store.get(self.bucket, info.key).body)
            except NotFoundError:
                continue  # deleted while listing

    def asset_keys(self, tenant: str) -> Iterator[AssetKey]:
        for info in self.store.list(self.bucket, records_prefix(tenant)):
            yield asset_from_record_key(info.key)


def _next_revision(new: AssetRecord, old: AssetRecord | None) -> AssetRecord:
    if old is None:
        return new
    return replace(new, revision=old.revision + 1, created_at=old.created_at, updated_at=utc_now())
