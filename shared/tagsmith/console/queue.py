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

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tagsmith.errors import InvalidInputError
from tagsmith.review import ReviewItem, ReviewStatus


def informativeness(item: ReviewItem) -> float:
    """0..1, higher = a human answer teaches more (1 = the model could not choose at all)."""
    runner_up = max((a.confidence for a in item.alternatives), default=0.0)
    return round(max(0.0, min(1.0, 1.0 - (item.confidence - runner_up))), 4)


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
