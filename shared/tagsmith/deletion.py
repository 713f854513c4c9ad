"""Deleted objects: the record becomes a tombstone, the document leaves the index, review closes.

An ``ObjectRemoved:*`` notification (``ObjectRemoved:DeleteMarkerCreated`` on a versioned bucket) or
an EventBridge "Object Deleted" event reaches the ingest queue like any upload;
:func:`tagsmith.sqsbatch.storage_sqs_batch` hands creations to ingestion and removals to :class:`DeletionService`.

What a deletion does, in this order (the record is the truth, so it is written first):

1. the record becomes a **tombstone** (:func:`tombstone`): status ``deleted``, ``deleted_at``, the
   last object version it described (for audit), and every **human decision kept**; the AI tags,
   video segments and OCR text, which described the deleted bytes, are dropped. If the same key is
   uploaded again, ingestion merges the new predictions with those decisions exactly as for any
   re-upload (a confirmed tag stays, a rejected tag never comes back);
2. the search document is deleted, versioned by the tombstone's revision;
3. the asset's pending review items are closed (``superseded``, with the reason in ``decision``);
4. a video's segment thumbnails are deleted;
5. the outbound projections: a "deleted" change event, the sidecar loses our keywords
   (:mod:`tagsmith.outbound`).

Order-safe and idempotent, without trusting event order: a removal event is only a hint. The
object is looked up (``head``) first; if it exists (a late delete of an older version, the delete of
a non-current version, or a re-upload since), nothing is deleted and the key goes through ingestion,
which makes the record describe what is really there. After the tombstone is written the object is
looked up again, and if it came back meanwhile it is re-ingested, which revives the record. A
repeated removal finds the tombstone and only redoes steps 2-4 (which repairs a crash between
steps). A creation arriving after the removal revives the asset through ordinary ingestion
(a tombstone is never "up to date": its ``encoder_id`` is cleared).

Outcomes (``IngestOutcome.status``): ``deleted`` (tombstoned now or before), ``skipped`` (no
record: nothing was ever ingested), ``rejected`` (a key outside any tenant), or whatever ingestion
answered when the object turned out to exist.

Example::

    >>> from tagsmith.records import AssetRecord, AssetStatus, SourceObject
    >>> r = AssetRecord("acme", "a.jpg", SourceObject("assets", "acme/a.jpg", "e1", 3), AssetStatus.TAGGED)
    >>> dead = tombstone(r, deleted_at="2026-11-22T09:00:00.000Z")
    >>> (dead.status.value, dead.deleted_at, dead.source.etag)
    ('deleted', '2026-11-22T09:00:00.000Z', 'e1')
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from tagsmith.assetwriter import IngestOutcome, log_outcome
from tagsmith.errors import InvalidKeyError
from tagsmith.events import ObjectRef
from tagsmith.keys import parse_asset_key
from tagsmith.previews import delete_stale_thumbnails
from tagsmith.records import AssetRecord, AssetStatus, Cause, utc_now
from tagsmith.review import ReviewStatus, ReviewStore, review_item_id
from tagsmith.sqsbatch import IngestFn
from tagsmith.storage.base import ObjectStore
from tagsmith.storage.records import RecordStore

log = logging.getLogger(__name__)


class DocumentIndex(Protocol):
    """What deletion needs from :class:`tagsmith.search.SearchIndex`."""

    def delete(self, tenant: str, asset_key: str, *, revision: int | None = None) -> None: ...


def tombstone(record: AssetRecord, *, deleted_at: str) -> AssetRecord:
    """``record`` after its object was deleted (pure): human decisions kept, model output dropped.

    ``encoder_id`` is cleared on purpose: ingestion treats a record as up to date only when it was
    made with the current encoder, so a re-upload of the very same bytes (same ETag) is re-tagged
    and revives the asset instead of being taken for a redelivery.
    """
    return replace(
        record,
        status=AssetStatus.DELETED,
        deleted_at=deleted_at,
        tags=tuple(t for t in record.tags if t.is_human),
        encoder_id=None,
        failure=None,
        segments=(),
        text_lines=(),
        ocr_engine=None,
    )


def is_tombstone(record: AssetRecord | None) -> bool:
    return record is not None and record.status is AssetStatus.DELETED


class DeletionService:
    """Handles removal events; see the module docstring for the order of steps and why."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        records: RecordStore,
        reviews: ReviewStore,
        index: DocumentIndex,
        ingest: IngestFn,
        clock: Callable[[], str] = utc_now,
        outbound: Any = None,  # tagsmith.outbound.Outbound: the "deleted" change event, the sidecar
    ) -> None:
        self.outbound = outbound
        self.store = store
        self.records = records
        self.reviews = reviews
        self.index = index
        self.ingest = ingest
        self.clock = clock

    @classmethod
    def from_components(cls, c: Any) -> DeletionService:
        """From :class:`tagsmith.wiring.Components` (ingestion, and so the encoder, loads lazily)."""
        return cls(
            store=c.store,
            records=c.records,
            reviews=c.reviews,
            index=c.index,
            ingest=lambda refs: c.ingest.ingest(refs),
            outbound=c.outbound,
        )

    def remove(self, refs: Sequence[ObjectRef]) -> list[IngestOutcome | Exception]:
        """One outcome (or the transient exception, to retry) per removal, in order."""
        results: list[IngestOutcome | Exception] = []
        for ref in refs:
            try:
                outcome = self._remove(ref)
                log_outcome("removal", outcome)
                results.append(outcome)
            except Exception as e:  # transient (or a bug): this message alone is retried
                log.exception("deletion failed; will be retried", extra={"key": ref.key})
                results.append(e)
        return results

    def _remove(self, ref: ObjectRef) -> IngestOutcome:
        try:
            asset = parse_asset_key(ref.key)
        except InvalidKeyError as e:
            log.warning("removal outside any tenant ignored: %s", e, extra={"key": ref.key})
            return IngestOutcome(ref.key, "rejected", message=str(e))
        if self.store.head(ref.bucket, ref.key) is not None:
            log.info(
                "removal event for an object that exists (late, version-specific or re-uploaded): "
                "re-checking it through ingestion instead of deleting",
                extra={"tenant": asset.tenant, "key": ref.key, "version_id": ref.version_id},
            )
            return self._reingest(ref)
        deleted_at = self.clock()

        def change(record: AssetRecord | None) -> AssetRecord | None:
            if record is None or is_tombstone(record) or record.source.bucket != ref.bucket:
                return None
            return tombstone(record, deleted_at=deleted_at)

        record = self.records.update(asset, change, cause=Cause.DELETION)
        if record is None or not is_tombstone(record):
            # no record (never ingested), or it describes another bucket's object: nothing of ours
            log.info("removal of an object without a record: nothing to do", extra={"key": ref.key})
            return IngestOutcome(ref.key, "skipped", asset.tenant, record, "no record for this object")
        # idempotent follow-ups: a redelivered removal redoes them (repairs a crash in between)
        self.index.delete(asset.tenant, asset.key, revision=record.revision)
        closed = self._close_reviews(record)
        if self.store.head(ref.bucket, ref.key) is not None:
            log.info("object came back while it was being deleted: reviving", extra={"key": ref.key})
            return self._reingest(ref)
        thumbnails = delete_stale_thumbnails(self.store, self.records.bucket, record)
        if self.outbound is not None:  # last: consumers hear of it once everything else is done
            errors = self.outbound.after_write([record])
            if errors:
                raise next(iter(errors.values()))  # retried: a redelivered removal redoes steps 2-5
        log.info(
            "asset deleted: record kept as a tombstone with %d human decisions, %d review items closed, "
            "%d video thumbnails deleted",
            len(record.tags),
            closed,
            thumbnails,
            extra={"tenant": asset.tenant, "key": asset.key, "deleted_at": record.deleted_at},
        )
        return IngestOutcome(asset.key, "deleted", asset.tenant, record)

    def _reingest(self, ref: ObjectRef) -> IngestOutcome:
        result = self.ingest([ObjectRef(ref.bucket, ref.key)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def _close_reviews(self, record: AssetRecord) -> int:
        closed = 0
        models = set(record.models) | {t.model for t in record.tags}
        for model in sorted(models):
            item = self.reviews.get(record.tenant, review_item_id(record.tenant, record.path, model))
            if item is None or item.status is not ReviewStatus.PENDING:
                continue
            note = {"closed": "asset deleted", "deleted_at": record.deleted_at}
            self.reviews.put(replace(item, status=ReviewStatus.SUPERSEDED, decision=note))
            closed += 1
        return closed


__all__ = [
    "DeletionService",
    "DocumentIndex",
    "is_tombstone",
    "tombstone",
]
