"""Every projection of an asset record, written after it and repaired from it.

The record is the one source of truth. What is derived from it is written *after* it, so a crash,
a Lambda timeout or a killed process between the two writes leaves a projection behind:

* the **review items** its ``review`` tags ask for (one per model) and their **queue entries**
  (:mod:`tagsmith.review`);
* items the record no longer asks for, still pending (closed: ``decided`` when a human decided
  that model's tags since, else ``superseded``);
* the **search document** (:mod:`tagsmith.search`);
* the **preview** of an image (:mod:`tagsmith.previews`) and the video thumbnails of versions the
  record no longer points at.

:meth:`Projections.ensure` brings all of them in line with a record, idempotently: it only writes
what is missing or behind. It is the one function every path calls when it holds a record that may
have lost its projections: a redelivered event whose record is already current (the ingest path,
:meth:`tagsmith.ingest.IngestService.ingest`, and any pipelined ingest built later), the local
stack's restart reconcile and the scheduled sweep (:mod:`tagsmith.sweep`).

Cost for a record that needs nothing: one GET per model with a review tag, one HEAD per pending
item's queue entry, one GET per other model that ran (skipped when the caller passes the tenant's
queue ``entries``, as the sweep does), one HEAD for an image's preview, one LIST of its thumbnails
and one idempotent index write.

>>> from tagsmith.records import AssetRecord, AssetStatus, SourceObject
>>> r = AssetRecord("acme", "a.jpg", SourceObject("b", "acme/a.jpg", "e", 1), AssetStatus.TAGGED)
>>> wanted_review_items(r)
{}
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tagsmith.errors import TagsmithError, TransientError
from tagsmith.keys import thumbnails_prefix
from tagsmith.previews import PreviewMaker, delete_stale_thumbnails, record_preview_key
from tagsmith.records import Alternative, AssetRecord, AssetStatus, Segment, TagAssignment
from tagsmith.review import (
    QueueEntry,
    ReviewItem,
    ReviewStatus,
    ReviewStore,
    queue_entry_name,
    review_item_id,
    review_queue_prefix,
)
from tagsmith.storage.base import ObjectStore
from tagsmith.taxonomy import Taxonomy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProjectionRepair:
    """What :meth:`Projections.ensure` had to write (all zero: every projection was in place)."""

    review_items: int = 0  # items written because they were missing or asked another question
    queue_entries: int = 0  # entries of pending items that had none
    closed: int = 0  # pending items the record no longer asks for
    previews: int = 0
    thumbnails: int = 0  # stale thumbnails deleted

    @property
    def total(self) -> int:
        return self.review_items + self.queue_entries + self.closed + self.previews + self.thumbnails

    def __add__(self, other: ProjectionRepair) -> ProjectionRepair:
        return ProjectionRepair(
            self.review_items + other.review_items,
            self.queue_entries + other.queue_entries,
            self.closed + other.closed,
            self.previews + other.previews,
            self.thumbnails + other.thumbnails,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "review_items": self.review_items,
            "queue_entries": self.queue_entries,
            "closed": self.closed,
            "previews": self.previews,
            "thumbnails": self.thumbnails,
        }


def wanted_review_items(record: AssetRecord) -> dict[str, ReviewItem]:
    """model -> the pending review item ``record``'s ``review`` tags ask for (pure)."""
    if record.status is not AssetStatus.TAGGED:
        return {}
    pending: dict[str, list[TagAssignment]] = {}
    for t in record.pending_review():
        pending.setdefault(t.model, []).append(t)
    items = {}
    for model, tags in pending.items():
        top = max(tags, key=lambda t: t.confidence or 0.0)
        others = tuple(Alternative(t.tag, t.confidence or 0.0) for t in tags if t is not top)
        segment = _best_segment(record, model, top.tag)
        items[model] = ReviewItem(
            id=review_item_id(record.tenant, record.path, model),
            tenant=record.tenant,
            asset_path=record.path,
            model=model,
            model_version=top.model_version or "",
            suggestion=top.tag,
            confidence=top.confidence or 0.0,
            threshold=top.threshold or 0.0,
            alternatives=others + top.alternatives,
            asset_etag=record.source.etag,
            timestamp=segment.peak_time if segment else None,
            thumbnail_key=segment.thumbnail_key if segment else None,
        )
    return items


def same_question(a: ReviewItem, b: ReviewItem) -> bool:
    """Whether two items ask a reviewer the same thing (same object version, model version, tag)."""
    return (a.asset_etag, a.model_version, a.suggestion) == (b.asset_etag, b.model_version, b.suggestion)


class Projections:
    """Writes and repairs the projections of asset records (see the module docstring)."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        data_bucket: str,
        reviews: ReviewStore,
        index: Any,  # tagsmith.search.SearchIndex
        taxonomies: Callable[[str], Mapping[str, Taxonomy]],
        previews: PreviewMaker | None = None,
    ) -> None:
        self.store = store
        self.data_bucket = data_bucket
        self.reviews = reviews
        self.index = index
        self.taxonomies = taxonomies
        self.previews = previews

    # --- after a commit ------------------------------------------------------------------------
    def sync_reviews(self, record: AssetRecord, previous: AssetRecord | None, models_run: set[str]) -> None:
        """Review items after ``record`` was written by a tagging that ran ``models_run``: the items
        its review tags ask for (a redelivery finds them and adds nothing), and the pending items of
        ``previous`` that those models no longer ask for are superseded."""
        wanted = wanted_review_items(record)
        for item in wanted.values():
            existing = self.reviews.get(record.tenant, item.id)
            if (
                existing is not None
                and existing.status is ReviewStatus.PENDING
                and same_question(existing, item)
            ):
                continue  # a redelivery: the item already exists
            self.reviews.put(item, known=existing)
        had_review = {t.model for t in (previous.pending_review() if previous else [])}
        for model in (had_review & models_run) - set(wanted):
            stale = self.reviews.get(record.tenant, review_item_id(record.tenant, record.path, model))
            if stale is not None and stale.status is ReviewStatus.PENDING:
                self.reviews.put(replace(stale, status=ReviewStatus.SUPERSEDED), known=stale)

    def project(self, record: AssetRecord) -> None:
        """The search document of ``record`` (a tombstone's is deleted)."""
        self.index.upsert(record, self.taxonomies(record.tenant))

    def project_many(self, records: Sequence[AssetRecord]) -> dict[str, Exception]:
        """The search documents of a batch's records, one bulk request per tenant instead of one
        request each; returns the error of each record whose document was not written (by asset
        key), so that only its message is retried. Never raises."""
        errors: dict[str, Exception] = {}
        by_tenant: dict[str, list[AssetRecord]] = {}
        for record in records:
            by_tenant.setdefault(record.tenant, []).append(record)
        for tenant, batch in by_tenant.items():
            try:
                taxonomies = self.taxonomies(tenant)
                failed = self.index.bulk_upsert([(r, taxonomies) for r in batch], tenant)
            except Exception as e:  # the index is down: every document of the tenant waits
                log.warning("indexing %d documents failed: %s", len(batch), e, extra={"tenant": tenant})
                errors.update({r.key: e for r in batch})
                continue
            for item in failed:
                # a retry may succeed where the cluster was busy; anything else is kept for the
                # message's retries, then the DLQ, with OpenSearch's reason
                kind = TransientError if item.status == 429 or item.status >= 500 else TagsmithError
                errors[item.asset_key] = kind(
                    f"indexing {item.asset_key} failed: {item.status} {item.error_type}: {item.reason}"
                )
                log.warning(
                    "indexing failed: %s %s", item.status, item.reason,
                    extra={"tenant": tenant, "key": item.asset_key},
                )  # fmt: skip
        return errors

    # --- repair --------------------------------------------------------------------------------
    def ensure(
        self, record: AssetRecord, *, entries: set[str] | None = None, index: bool = True
    ) -> ProjectionRepair:
        """Bring every projection of ``record`` (as read a moment ago) in line with it.

        ``entries``: the names of the tenant's review-queue entries, listed once by a caller that
        repairs many records (the sweep); without it each pending item's entry is checked with a
        HEAD and each model that ran with a GET. ``index=False`` leaves the search document to the
        caller (the sweep compares the whole index at once, :mod:`tagsmith.search.healing`).
        """
        items, entries_written, closed = self._ensure_reviews(record, entries)
        # one listing of the asset's thumbnails folder answers both: is the preview there, and
        # which thumbnails are stale (a HEAD of the preview was a fifth of a sweep's requests)
        listing = list(self.store.list(self.data_bucket, thumbnails_prefix(record.tenant, record.path)))
        previews = self._ensure_preview(record, {i.key for i in listing})
        thumbnails = delete_stale_thumbnails(self.store, self.data_bucket, record, listing)
        if index:
            self.project(record)
        repair = ProjectionRepair(items, entries_written, closed, previews, thumbnails)
        if repair.total:
            log.warning(
                "repaired projections of a record: %s",
                ", ".join(f"{n} {what}" for what, n in repair.to_dict().items() if n),
                extra={"tenant": record.tenant, "key": record.key, **repair.to_dict()},
            )
        return repair

    def _ensure_reviews(self, record: AssetRecord, entries: set[str] | None) -> tuple[int, int, int]:
        written = entries_written = closed = 0
        wanted = wanted_review_items(record)
        prefix = review_queue_prefix(record.tenant)
        for item in wanted.values():
            existing = self.reviews.get(record.tenant, item.id)
            if existing is not None and same_question(existing, item):
                if existing.status is not ReviewStatus.PENDING:
                    continue  # already answered (or closed on purpose): never reopened by a repair
                name = queue_entry_name(existing)
                present = (
                    name in entries
                    if entries is not None
                    else self.store.head(self.data_bucket, prefix + name)
                )
                if not present:
                    self.store.put(self.data_bucket, prefix + name, b"")
                    entries_written += 1
                continue
            self.reviews.put(item, known=existing)
            written += 1
        ran = set(record.models) | {t.model for t in record.tags}
        pending_ids = (
            {entry.item_id for name in entries if (entry := QueueEntry.parse(name)) is not None}
            if entries is not None
            else None
        )
        for model in sorted(ran - set(wanted)):
            item_id = review_item_id(record.tenant, record.path, model)
            if pending_ids is not None and item_id not in pending_ids:
                continue  # no entry: not pending (entries are written before their items)
            stale = self.reviews.get(record.tenant, item_id)
            if stale is None or stale.status is not ReviewStatus.PENDING:
                continue
            self.reviews.put(_closed(stale, record), known=stale)
            closed += 1
        return written, entries_written, closed

    def _ensure_preview(self, record: AssetRecord, present: set[str]) -> int:
        if (
            self.previews is None
            or record.status is not AssetStatus.TAGGED
            or (record.media_type or "").startswith("video/")
        ):
            return 0
        if record_preview_key(record) in present:
            return 0
        from tagsmith.errors import InvalidInputError, NotFoundError

        try:
            self.previews.ensure(record)
        except (InvalidInputError, NotFoundError) as e:
            log.info(
                "no preview for %s: %s", record.key, e, extra={"tenant": record.tenant, "key": record.key}
            )
            return 0
        return 1


def _closed(item: ReviewItem, record: AssetRecord) -> ReviewItem:
    """A pending item its record no longer asks for: ``decided`` when a human decided one of the
    model's tags (the decision reached the record, then the process stopped before the item), else
    ``superseded`` (a later prediction no longer needs a human)."""
    if record.status is AssetStatus.DELETED:
        note = {"closed": "asset deleted", "deleted_at": record.deleted_at}
        return replace(item, status=ReviewStatus.SUPERSEDED, decision=note)
    human = [t for t in record.tags if t.model == item.model and t.is_human]
    if human:
        last = max(human, key=lambda t: t.decided_at or "")
        return replace(
            item,
            status=ReviewStatus.DECIDED,
            decided_by=last.decided_by,
            decided_at=last.decided_at,
            decision=item.decision or {"action": "recorded", "tag": last.tag, "state": last.state.value},
        )
    return replace(item, status=ReviewStatus.SUPERSEDED)


def _best_segment(record: AssetRecord, model: str, tag: str) -> Segment | None:
    """A video's most confident segment of ``tag``: where a reviewer should look."""
    found = [s for s in record.segments if s.model == model and s.tag == tag]
    return max(found, key=lambda s: s.peak_confidence) if found else None
