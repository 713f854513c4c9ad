"""The review queue as the console shows it: pure ordering, filtering and backlog counting over the
durable review items (never over queue messages, which expire and repeat).

Most informative first: the item whose top two tags are closest (``margin = confidence - best
alternative``, the alternative counting as 0 when none was listed) teaches the model most when a
human settles it (margin sampling). Closeness to the item's threshold is *not* used: a tag whose
calibration never reached the target precision has a threshold above 1, so a near-certain item sat
"close" to it and the queue used to lead with photos the model already had right (the review-loop
benchmark in docs/benchmarks.md measured it: 99% of the first 500 answers were "accept").

>>> from tagsmith.review import ReviewItem
>>> from tagsmith.records import Alternative
>>> close = ReviewItem("a", "acme", "a.jpg", "sku", "v1", "milk", 0.45, 0.8, (Alternative("juice", 0.44),))
>>> clear = ReviewItem("b", "acme", "b.jpg", "sku", "v1", "milk", 0.75, 0.8, (Alternative("juice", 0.1),))
>>> [i.id for i in order_queue([clear, close])]
['a', 'b']
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tagsmith.errors import InvalidInputError
from tagsmith.review import QueueEntry, ReviewItem, ReviewStatus, ReviewStore, informativeness


def order_queue(items: Iterable[ReviewItem]) -> list[ReviewItem]:
    """Most informative first; ties by age (oldest first), then id, so the order is stable."""
    return sorted(items, key=lambda i: (-informativeness(i), i.created_at, i.id))


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """What a reviewer narrowed the queue to; every field is optional and they combine with AND."""

    model: str | None = None
    tag: str | None = None  # the suggested tag
    min_confidence: float | None = None
    max_confidence: float | None = None
    status: ReviewStatus = ReviewStatus.PENDING

    def __post_init__(self) -> None:
        for name in ("min_confidence", "max_confidence"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"{name} {value} must be between 0 and 1")
        if (
            self.min_confidence is not None
            and self.max_confidence is not None
            and self.min_confidence > self.max_confidence
        ):
            raise InvalidInputError("min_confidence is above max_confidence: nothing could match")

    def matches_entry(self, entry: QueueEntry) -> bool:
        """:meth:`matches` for a pending item's queue entry (its key carries every field used)."""
        return (
            self.status is ReviewStatus.PENDING
            and (self.model is None or entry.model == self.model)
            and (self.tag is None or entry.tag == self.tag)
            and (self.min_confidence is None or entry.confidence >= self.min_confidence)
            and (self.max_confidence is None or entry.confidence <= self.max_confidence)
        )

    def matches(self, item: ReviewItem) -> bool:
        return (
            item.status is self.status
            and (self.model is None or item.model == self.model)
            and (self.tag is None or item.suggestion == self.tag)
            and (self.min_confidence is None or item.confidence >= self.min_confidence)
            and (self.max_confidence is None or item.confidence <= self.max_confidence)
        )


@dataclass(frozen=True, slots=True)
class BacklogEntry:
    model: str
    tag: str
    pending: int


def backlog(items: Iterable[ReviewItem]) -> list[BacklogEntry]:
    """Pending items per model and suggested tag (the tenant is the caller's), largest first."""
    counts = Counter((i.model, i.suggestion) for i in items if i.status is ReviewStatus.PENDING)
    return [BacklogEntry(m, t, n) for (m, t), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def select(
    items: Sequence[ReviewItem], flt: QueueFilter, *, offset: int = 0, limit: int = 50
) -> list[ReviewItem]:
    """One page of the filtered queue, in queue order."""
    if not 1 <= limit <= 200:
        raise InvalidInputError(f"limit {limit} is out of range: use 1 to 200")
    if offset < 0:
        raise InvalidInputError("offset must not be negative")
    return order_queue(i for i in items if flt.matches(i))[offset : offset + limit]


COUNT_CAP = 100_000  # entries counted per request at most (keys only: about 100 S3 LIST requests)


@dataclass(frozen=True)
class QueuePage:
    """One page of the pending queue with its counts (``counts_exact`` is False past the cap)."""

    items: list[ReviewItem]
    next_cursor: str | None
    total: int | None  # pending items matching the filter (None when counts were not asked for)
    pending: int | None  # pending items of the tenant
    backlog: list[BacklogEntry]
    counts_exact: bool = True


def encode_cursor(entry_name: str) -> str:
    return base64.urlsafe_b64encode(entry_name.encode()).decode()


def decode_cursor(cursor: str) -> str:
    """The entry name a cursor stands for; only an entry's shape is accepted (never a path)."""
    try:
        name = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        name = ""
    if QueueEntry.parse(name) is None or "/" in name:
        raise InvalidInputError("cursor is not one this API returned; start from the first page")
    return name


def pending_queue_page(
    reviews: ReviewStore,
    tenant: str,
    flt: QueueFilter,
    *,
    cursor: str | None = None,
    offset: int = 0,
    limit: int = 50,
    counts: bool = True,
    count_cap: int = COUNT_CAP,
) -> QueuePage:
    """The pending queue from its entries (:mod:`tagsmith.review`): ``limit`` item reads per page
    however long the backlog; with ``counts``, one listing of the entry keys (no item reads) for
    the totals and the backlog, up to ``count_cap`` entries."""
    if flt.status is not ReviewStatus.PENDING:
        raise ValueError("pending_queue_page serves the pending queue only")
    if not 1 <= limit <= 200:
        raise InvalidInputError(f"limit {limit} is out of range: use 1 to 200")
    if offset < 0:
        raise InvalidInputError("offset must not be negative")
    after = decode_cursor(cursor) if cursor else ""
    reviews.ensure_queue_index(tenant)
    total = pending = None
    per_tag: Counter[tuple[str, str]] = Counter()
    exact = True
    if counts:
        total = pending = 0
        for n, entry in enumerate(reviews.entries(tenant)):
            if n >= count_cap:
                exact = False
                break
            pending += 1
            per_tag[(entry.model, entry.tag)] += 1
            total += flt.matches_entry(entry)
    items, nxt = reviews.pending_page(
        tenant, match=flt.matches_entry, check=flt.matches, after=after, skip=offset, limit=limit
    )
    entries = [BacklogEntry(m, t, n) for (m, t), n in sorted(per_tag.items(), key=lambda kv: (-kv[1], kv[0]))]
    return QueuePage(
        items=items,
        next_cursor=encode_cursor(nxt) if nxt else None,
        total=total,
        pending=pending,
        backlog=entries,
        counts_exact=exact,
    )
