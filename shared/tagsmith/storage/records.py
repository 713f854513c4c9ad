"""Asset records in the data bucket, read and written with optimistic concurrency."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

from tagsmith.errors import NotFoundError, TransientError
from tagsmith.keys import AssetKey, asset_from_record_key, record_key, records_prefix
from tagsmith.records import AssetRecord, utc_now
from tagsmith.storage.base import ObjectStore, PreconditionFailedError

UNKNOWN = object()  # ``update(known=...)`` default: read the record first


class RecordStore:
    """Reads and writes :class:`AssetRecord` JSON; every write is a compare-and-swap on the ETag, so
    a reviewer's decision and a reprocessing that race can never silently overwrite each other."""

    def __init__(self, *, store: ObjectStore, bucket: str) -> None:
        self.store = store
        self.bucket = bucket

    def get(self, asset: AssetKey) -> tuple[AssetRecord, str] | None:
        try:
            obj = self.store.get(self.bucket, record_key(asset))
        except NotFoundError:
            return None
        return AssetRecord.from_json(obj.body), obj.info.etag

    def update(
        self,
        asset: AssetKey,
        change: Callable[[AssetRecord | None], AssetRecord | None],
        *,
        attempts: int = 5,
        known: tuple[AssetRecord, str] | object | None = UNKNOWN,
    ) -> AssetRecord | None:
        """Read-modify-write: ``change`` gets the current record (or None) and returns the new one
        (or None to leave it as it is). Retried on a lost race, re-reading each time.

        ``known`` is what the caller read a moment ago (``get``'s result, None included): the first
        attempt trusts it instead of reading again; the compare-and-swap still catches any change.
        """
        for attempt in range(attempts):
            current = known if attempt == 0 and known is not UNKNOWN else self.get(asset)
            assert current is None or isinstance(current, tuple)
            record, etag = current if current else (None, None)
            new = change(record)
            if new is None or new == record:
                return record
            if record is not None:
                new = replace(
                    new, revision=record.revision + 1, created_at=record.created_at, updated_at=utc_now()
                )
            try:
                self.store.put(
                    self.bucket,
                    record_key(asset),
                    new.to_json(),
                    content_type="application/json",
                    if_match=etag,
                    if_none_match=etag is None,
                )
            except PreconditionFailedError:
                continue
            return new
        raise TransientError(f"record for {asset.key} kept changing under us; retry later")

    def iter_tenant(self, tenant: str) -> Iterator[AssetRecord]:
        for info in self.store.list(self.bucket, records_prefix(tenant)):
            try:
                yield AssetRecord.from_json(self.store.get(self.bucket, info.key).body)
            except NotFoundError:
                continue  # deleted while listing

    def asset_keys(self, tenant: str) -> Iterator[AssetKey]:
        for info in self.store.list(self.bucket, records_prefix(tenant)):
            yield asset_from_record_key(info.key)
