"""Review items: durable records (the truth the console reads) plus a queue message (a nudge).

One item per asset and model, with a deterministic id, so re-processing the same asset updates the
same item instead of piling up duplicates, and an at-least-once redelivery adds nothing.

**The queue order, kept in key order.** Every pending item also has an empty *entry* object under
``tenants/<t>/review-queue/`` whose key sorts exactly as the console orders the queue and carries
what the console filters on::

    <10000 - informativeness x 10000, 5 digits>~<created_at>~<item id>~<model>~<tag>~<confidence>

so one page of the queue is a listing from a cursor (``list(prefix, start_after=...)``) plus one
GET per item shown, whatever the backlog, and counts and the backlog come from the keys alone. The
order is exact, not approximate: :func:`informativeness` depends only on the item's own confidences
(rounded to 4 decimals, as the key), and ties fall back to age then id, as in ``order_queue``.

:meth:`ReviewStore.put` keeps entries in step, entry first: (1) put the new entry, (2) put the item,
(3) delete the previous entry. A crash leaves at worst an extra entry, never a pending item without
one; readers GET each item and skip an entry that no longer matches it (a stale entry costs one GET
until the sweep, :meth:`ReviewStore.rebuild_queue_index` or the next change of that item removes
it: :meth:`ReviewStore.drop_superseded_entries`). Tenants
whose items predate the entries get them on first use (:meth:`ReviewStore.ensure_queue_index`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from types import EllipsisType
from typing import Any

from tagsmith.errors import NotFoundError
from tagsmith.keys import ITEM_ID, review_item_key, reviews_prefix, tenant_prefix
from tagsmith.records import Alternative, utc_now
from tagsmith.storage.base import ObjectStore


class ReviewStatus(StrEnum):
    PENDING = "pending"
    DECIDED = "decided"
    SUPERSEDED = "superseded"  # a later prediction no longer needs a human


def review_item_id(tenant: str, path: str, model: str) -> str:
    return hashlib.sha1(f"{tenant}\0{path}\0{model}".encode()).hexdigest()[:24]


def informativeness(item: ReviewItem) -> float:
    """0..1, higher = a human answer teaches more (1 = the model could not choose at all): margin
    sampling, ``1 - (confidence - best alternative)``, the alternative counting as 0 when none was
    listed (see :mod:`tagsmith.console.queue` for why the threshold is not used)."""
    runner_up = max((a.confidence for a in item.alternatives), default=0.0)
    return round(max(0.0, min(1.0, 1.0 - (item.confidence - runner_up))), 4)


ENTRY_SEP = "~"  # in no tenant, model or tag id, nor in item ids or timestamps
QUEUE_BUILT = "~built.json"  # sorts after every entry (entries start with a digit)


def review_queue_prefix(tenant: str) -> str:
    return tenant_prefix(tenant) + "review-queue/"


def queue_entry_name(item: ReviewItem) -> str:
    """The entry's key below :func:`review_queue_prefix`: sorts most informative first, then oldest."""
    rank = 10_000 - round(informativeness(item) * 10_000)
    fields = (f"{rank:05d}", item.created_at, item.id, item.model, item.suggestion, f"{item.confidence:.4f}")
    return ENTRY_SEP.join(fields)


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One pending item as its queue entry's key tells it (no GET needed)."""

    name: str  # the key below the tenant's review-queue prefix: the paging cursor
    item_id: str
    model: str
    tag: str
    confidence: float
    informativeness: float
    created_at: str

    @classmethod
    def parse(cls, name: str) -> QueueEntry | None:
        parts = name.split(ENTRY_SEP)
        if len(parts) != 6 or not parts[0].isdigit():
            return None  # the built marker, or something that is not an entry
        rank, created_at, item_id, model, tag, confidence = parts
        try:
            return cls(
                name, item_id, model, tag, float(confidence), (10_000 - int(rank)) / 10_000, created_at
            )
        except ValueError:
            return None


@dataclass(frozen=True)
class ReviewItem:
    id: str
    tenant: str
    asset_path: str
    model: str
    model_version: str
    suggestion: str
    confidence: float
    threshold: float
    alternatives: tuple[Alternative, ...] = ()
    asset_etag: str = ""
    status: ReviewStatus = ReviewStatus.PENDING
    created_at: str = field(default_factory=utc_now)
    decided_by: str | None = None
    decided_at: str | None = None
    decision: dict[str, Any] | None = None
    # videos: where to look (seconds from the start) and a frame of it in the data bucket
    timestamp: float | None = None
    thumbnail_key: str | None = None

    def to_json(self) -> bytes:
        d = asdict(self)
        d["status"] = self.status.value
        for optional in ("timestamp", "thumbnail_key"):  # images have neither: keep their JSON as it was
            if d[optional] is None:
                del d[optional]
        return json.dumps(d, ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ReviewItem:
        d = json.loads(data)
        d["status"] = ReviewStatus(d["status"])
        d["alternatives"] = tuple(Alternative(**a) for a in d.get("alternatives", ()))
        return cls(**d)


class ReviewStore:
    def __init__(self, *, store: ObjectStore, bucket: str) -> None:
        self.store = store
        self.bucket = bucket

    def put(self, item: ReviewItem, *, known: ReviewItem | EllipsisType | None = ...) -> None:
        """Write the item and keep its queue entry in step (entry first; see the module docstring).
        ``known``: the item as the caller just read it (None: there was none), saving a read."""
        previous = self.get(item.tenant, item.id) if known is ... else known
        old = queue_entry_name(previous) if previous and previous.status is ReviewStatus.PENDING else None
        new = queue_entry_name(item) if item.status is ReviewStatus.PENDING else None
        prefix = review_queue_prefix(item.tenant)
        if new is not None and new != old:
            self.store.put(self.bucket, prefix + new, b"")
        self.store.put(
            self.bucket,
            review_item_key(item.tenant, item.id),
            item.to_json(),
            content_type="application/json",
        )
        if old is not None and old != new:
            self.store.delete(self.bucket, prefix + old)

    def get(self, tenant: str, item_id: str) -> ReviewItem | None:
        """The item, or None when there is none; an id that is not an item id (``..``, a path) is
        never read and answers None, exactly as an unknown id."""
        if not ITEM_ID.match(item_id):
            return None
        try:
            return ReviewItem.from_json(self.store.get(self.bucket, review_item_key(tenant, item_id)).body)
        except NotFoundError:
            return None

    def iter_tenant(self, tenant: str) -> Iterator[ReviewItem]:
        """Every item of the tenant, whatever its status: one GET each (audits, exports)."""
        for info in self.store.list(self.bucket, reviews_prefix(tenant)):
            try:
                yield ReviewItem.from_json(self.store.get(self.bucket, info.key).body)
            except NotFoundError:
                continue

    def pending(self, tenant: str) -> list[ReviewItem]:
        """Every pending item in the console's order (reads every item: for tests, demos, audits;
        the console pages through :meth:`pending_page`)."""
        items = [i for i in self.iter_tenant(tenant) if i.status is ReviewStatus.PENDING]
        return sorted(items, key=lambda i: (-informativeness(i), i.created_at, i.id))

    # --- the queue entries ---------------------------------------------------------------------
    def entries(self, tenant: str, *, after: str = "") -> Iterator[QueueEntry]:
        """Pending items' entries in queue order, from just after the entry named ``after``."""
        prefix = review_queue_prefix(tenant)
        start = prefix + after if after else ""
        for info in self.store.list(self.bucket, prefix, start_after=start):
            entry = QueueEntry.parse(info.key[len(prefix) :])
            if entry is not None:
                yield entry

    def entry_times(self, tenant: str) -> dict[str, str | None]:
        """Every queue entry's name with the time it was written (what the store lists), one
        listing: the sweep leaves entries younger than its settle time alone."""
        prefix = review_queue_prefix(tenant)
        return {
            info.key[len(prefix) :]: info.last_modified
            for info in self.store.list(self.bucket, prefix)
            if QueueEntry.parse(info.key[len(prefix) :]) is not None
        }

    def drop_superseded_entries(self, tenant: str, names: Iterable[str]) -> list[str]:
        """Delete, among ``names``, the entries of an item that has more than one: all but the one
        its current state names (all of them when it is no longer pending). Two writers of one
        item at once (a redelivered upload repairing it while a backfill rewrites it) each put
        their entry before the item, and the item keeps only the last; readers skip the other, so
        it is harmless but never goes away by itself. One GET per item with several entries;
        returns the names deleted. ``names`` must leave out entries so young that a :meth:`put` may
        be between its steps (the sweep passes entries older than its settle time)."""
        by_item: dict[str, list[str]] = {}
        for name in names:
            entry = QueueEntry.parse(name)
            if entry is not None:
                by_item.setdefault(entry.item_id, []).append(name)
        prefix = review_queue_prefix(tenant)
        dropped = []
        for item_id, group in sorted(by_item.items()):
            if len(group) < 2:
                continue
            item = self.get(tenant, item_id)
            keep = (
                queue_entry_name(item) if item is not None and item.status is ReviewStatus.PENDING else None
            )
            for name in sorted(group):
                if name != keep:
                    self.store.delete(self.bucket, prefix + name)
                    dropped.append(name)
        return dropped

    def pending_page(
        self,
        tenant: str,
        *,
        match: Callable[[QueueEntry], bool] = lambda e: True,
        check: Callable[[ReviewItem], bool] = lambda i: True,
        after: str = "",
        skip: int = 0,
        limit: int = 50,
    ) -> tuple[list[ReviewItem], str | None]:
        """Up to ``limit`` pending items whose entries ``match``, in queue order, after the entry
        ``after`` and past the first ``skip`` matches; returns them and the cursor of the next page
        (None at the end). Reads ``limit`` items, plus one per stale entry met, at most ``limit + 50``.
        ``check`` is applied to each item read (the key rounds the confidence to 4 decimals).
        """
        items: list[ReviewItem] = []
        reads = 0
        last: str | None = None
        for entry in self.entries(tenant, after=after):
            if not match(entry):
                continue
            if skip:
                skip -= 1
                continue
            if len(items) == limit or reads >= limit + 50:
                return items, last  # there is more: the next page starts after the last one read
            reads += 1
            last = entry.name
            item = self.get(tenant, entry.item_id)
            if (
                item is not None
                and item.status is ReviewStatus.PENDING
                and queue_entry_name(item) == entry.name
                and check(item)
            ):
                items.append(item)
        return items, None

    def ensure_queue_index(self, tenant: str) -> int:
        """Give every pending item its entry once per tenant (items written before entries existed);
        returns how many entries were written (0 when the index was already built)."""
        if self.store.head(self.bucket, review_queue_prefix(tenant) + QUEUE_BUILT) is not None:
            return 0
        return self.rebuild_queue_index(tenant)

    def rebuild_queue_index(self, tenant: str) -> int:
        """Rewrite the tenant's entries from the items (one GET per item) and drop stale ones."""
        prefix = review_queue_prefix(tenant)
        wanted = {queue_entry_name(i) for i in self.iter_tenant(tenant) if i.status is ReviewStatus.PENDING}
        present = {info.key[len(prefix) :] for info in self.store.list(self.bucket, prefix)}
        for name in sorted(wanted - present):
            self.store.put(self.bucket, prefix + name, b"")
        for name in sorted(present - wanted - {QUEUE_BUILT}):
            self.store.delete(self.bucket, prefix + name)
        self.store.put(self.bucket, prefix + QUEUE_BUILT, b"{}", content_type="application/json")
        return len(wanted - present)
