"""Writing an asset: what ingestion, video jobs, deletion and backfill share.

* :class:`IngestOutcome` (what became of one object), :func:`log_outcome` (its one INFO line) and
  :func:`failure_code` (the code a ``failed`` record carries);
* :class:`AssetWriter`: the record after tagging (model proposals merged with what the record
  holds, human decisions win: :func:`tagsmith.records.merge_tags`), a ``failed`` record, and what is
  written around a record, in order: thumbnails before it; review items, the search document and
  the deletion of stale thumbnails after it; the outbound projections (change event, object tags,
  sidecar) last.

Imports point down from here: :mod:`tagsmith.ingest` and :mod:`tagsmith.videojobs` both use this
module and neither imports the other's internals (video jobs get their dependencies injected).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tagsmith.errors import TagsmithError
from tagsmith.keys import AssetKey
from tagsmith.previews import delete_stale_thumbnails
from tagsmith.records import AssetRecord, AssetStatus, Cause, Failure, SourceObject, merge_tags
from tagsmith.storage import ObjectStore, RecordStore

if TYPE_CHECKING:
    from tagsmith.outbound import Outbound
    from tagsmith.projections import Projections
    from tagsmith.tagging import Proposal
    from tagsmith.video import VideoAnalysis

__all__ = ["AssetWriter", "Current", "IngestOutcome", "failure_code", "log_outcome"]

log = logging.getLogger(__name__)
Current = tuple[AssetRecord, str] | None  # a record as read, with its ETag (None: no record yet)


@dataclass(frozen=True)
class IngestOutcome:
    key: str
    # tagged | unchanged | failed | rejected | skipped | queued (a long video's job started);
    # removals: deleted | skipped | ...
    status: str
    tenant: str | None = None
    record: AssetRecord | None = None
    message: str = ""


def log_outcome(kind: str, outcome: IngestOutcome) -> None:
    """One INFO line per object and outcome, ``unchanged`` included: a redelivery that changes
    nothing is visible in the logs too."""
    log.info(
        "%s %s%s",
        kind,
        outcome.status,
        f": {outcome.message}" if outcome.message else "",
        extra={"tenant": outcome.tenant, "key": outcome.key, "outcome": outcome.status},
    )


def failure_code(error: TagsmithError) -> str:
    """The code a ``failed`` record carries for ``error``: the one its class declares."""
    return error.code


class AssetWriter:
    """Writes asset records and what follows them; shared by every path that writes one."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        records: RecordStore,
        projections: Projections,
        encoder_key: Callable[[str], str],
        outbound: Outbound | None = None,
    ) -> None:
        self.store = store
        self.records = records
        self.projections = projections
        self.encoder_key = encoder_key  # the tenant's encoder id(s), stamped on a tagged record
        self.outbound = outbound  # change events, object tags, sidecars (None: none of them)

    @property
    def bucket(self) -> str:
        return self.records.bucket

    # --- records ----------------------------------------------------------------------------------
    def tagged_record(
        self,
        asset: AssetKey,
        source: SourceObject,
        proposal: Proposal,
        record: AssetRecord | None,
        **facts: Any,
    ) -> AssetRecord:
        """The record after tagging: the models' proposals merged with what ``record`` holds (human
        decisions win, see :func:`merge_tags`), plus the media facts of this object version."""
        tags = merge_tags(
            record.tags if record else (),
            proposal.assignments,
            models_run=set(proposal.models),
            exclusive_models=proposal.exclusive_models,
        )
        return AssetRecord(
            tenant=asset.tenant,
            path=asset.path,
            source=source,
            status=AssetStatus.TAGGED,
            encoder_id=self.encoder_key(asset.tenant),
            models=dict(proposal.models),
            tags=tags,
            **facts,
        )

    def deleted_meanwhile(self, record: AssetRecord | None, source: SourceObject) -> bool:
        """Whether the record became a tombstone for the object version this ingestion read: writing
        would bring a deleted asset back to life. Only a tombstone costs a HEAD: an upload after the
        deletion finds its object there and revives the asset as usual."""
        if record is None or record.status is not AssetStatus.DELETED:
            return False
        info = self.store.head(source.bucket, source.key)
        return info is None or info.etag != source.etag

    def skipped_deleted(self, asset: AssetKey, record: AssetRecord) -> IngestOutcome:
        log.info(
            "object deleted while it was being tagged: the tombstone stays",
            extra={"tenant": asset.tenant, "key": asset.key},
        )
        return IngestOutcome(asset.key, "skipped", asset.tenant, record, "deleted while it was being tagged")

    def fail(
        self, asset: AssetKey, source: SourceObject, error: TagsmithError, cause: Cause = Cause.UPLOAD
    ) -> IngestOutcome:
        """A ``failed`` record saying why (``error``'s code and message; human tags kept), and its
        projections. ``error`` is an input error, or a video job that gave up."""
        failure = Failure(failure_code(error), str(error))
        log.warning(
            "asset cannot be tagged: %s",
            failure.message,
            extra={"tenant": asset.tenant, "key": asset.key, "code": failure.code},
        )

        def change(record: AssetRecord | None) -> AssetRecord | None:
            if self.deleted_meanwhile(record, source):
                return None
            tags = record.tags if record else ()
            return AssetRecord(
                tenant=asset.tenant,
                path=asset.path,
                source=source,
                status=AssetStatus.FAILED,
                tags=tuple(t for t in tags if t.is_human),
                failure=failure,
            )

        record = self.records.update(asset, change, cause=cause)
        if record is not None and record.status is AssetStatus.DELETED:
            return self.skipped_deleted(asset, record)
        if record is not None:
            self.projections.project(record)
        return IngestOutcome(asset.key, "failed", asset.tenant, record, failure.message)

    # --- videos -----------------------------------------------------------------------------------
    def commit_video(
        self,
        asset: AssetKey,
        source: SourceObject,
        current: Current,
        analysis: VideoAnalysis,
        ocr_engine: str | None,
        *,
        cause: Cause = Cause.UPLOAD,
    ) -> IngestOutcome:
        """Write a video's analysis: thumbnails, then the record (compare-and-swap), review items,
        the index, the thumbnails of older versions that no record points at any more, and last
        the outbound projections (change event, object tags, sidecar)."""
        log.info(
            "video %.1f s: %d frames, %d segments (decode %.2f s, embed %.2f s, OCR %.2f s)",
            analysis.duration, analysis.frames, len(analysis.segments),
            analysis.seconds.get("decode", 0.0), analysis.seconds.get("embed", 0.0),
            analysis.seconds.get("ocr", 0.0),
            extra={"tenant": asset.tenant, "key": asset.key},
        )  # fmt: skip
        for key, jpeg in analysis.thumbnails.items():  # written before the record that points at them
            self.store.put(self.bucket, key, jpeg, content_type="image/jpeg")
        proposal, info = analysis.proposal, analysis.info

        def change(record: AssetRecord | None) -> AssetRecord | None:
            if self.deleted_meanwhile(record, source):
                return None
            return self.tagged_record(
                asset, source, proposal, record,
                media_type=info.mime, width=info.width, height=info.height,
                duration=analysis.duration, segments=analysis.segments,
                text_lines=analysis.text_lines or (),
                ocr_engine=ocr_engine if analysis.text_lines is not None else None,
            )  # fmt: skip

        record = self.records.update(asset, change, cause=cause, known=current)
        assert record is not None
        if record.status is AssetStatus.DELETED:
            for key in analysis.thumbnails:  # nothing will ever point at them
                self.store.delete(self.bucket, key)
            return self.skipped_deleted(asset, record)
        self.projections.sync_reviews(record, current[0] if current else None, set(proposal.models))
        self.projections.project(record)
        self.delete_stale_thumbnails(record)
        return self.publish_one(IngestOutcome(asset.key, "tagged", asset.tenant, record))

    def fail_video(
        self, asset: AssetKey, source: SourceObject, error: TagsmithError, cause: Cause = Cause.UPLOAD
    ) -> IngestOutcome:
        """A video that cannot be tagged: a ``failed`` record, then its old thumbnails go."""
        outcome = self.fail(asset, source, error, cause)
        if outcome.record is not None:
            self.delete_stale_thumbnails(outcome.record)
        return self.publish_one(outcome)

    # --- after the record -------------------------------------------------------------------------
    def publish(self, record: AssetRecord) -> None:
        """The outbound projections of ``record`` if its revision is not published yet (a video
        job that finds its record already written); raises the error to retry."""
        self.publish_one(IngestOutcome(record.key, "unchanged", record.tenant, record))

    def publish_one(self, outcome: IngestOutcome) -> IngestOutcome:
        if self.outbound is not None and outcome.record is not None:
            errors = self.outbound.after_write([outcome.record])
            if errors:
                raise next(iter(errors.values()))
        return outcome

    def delete_stale_thumbnails(self, record: AssetRecord) -> int:
        """See :func:`tagsmith.previews.delete_stale_thumbnails`."""
        return delete_stale_thumbnails(self.store, self.bucket, record)
