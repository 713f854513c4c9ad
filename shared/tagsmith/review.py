"""Review items: durable records (the truth the console reads) plus a queue message (a nudge).

One item per asset and model, with a deterministic id, so re-processing the same asset updates the
same item instead of piling up duplicates, and an at-least-once redelivery adds nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from tagsmith.errors import NotFoundError
from tagsmith.keys import review_item_key, reviews_prefix
from tagsmith.records import Alternative, utc_now
from tagsmith.storage.base import ObjectStore


class ReviewStatus(StrEnum):
    PENDING = "pending"
    DECIDED = "decided"
    SUPERSEDED = "superseded"  # a later prediction no longer needs a human


def review_item_id(tenant: str, path: str, model: str) -> str:
    return hashlib.sha1(f"{tenant}\0{path}\0{model}".encode()).hexdigest()[:24]


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

    @property
    def uncertainty(self) -> float:
        """How far the suggestion is from its threshold, scaled: 1 = most informative to review."""
        return round(1.0 - abs(self.confidence - self.threshold) / max(self.threshold, 1e-6), 4)

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

    def put(self, item: ReviewItem) -> None:
        self.store.put(
            self.bucket,
            review_item_key(item.tenant, item.id),
            item.to_json(),
            content_type="application/json",
        )

    def get(self, tenant: str, item_id: str) -> ReviewItem | None:
        try:
            return ReviewItem.from_json(self.store.get(self.bucket, review_item_key(tenant, item_id)).body)
        except NotFoundError:
            return None

    def iter_tenant(self, tenant: str) -> Iterator[ReviewItem]:
        for info in self.store.list(self.bucket, reviews_prefix(tenant)):
            try:
                yield ReviewItem.from_json(self.store.get(self.bucket, info.key).body)
            except NotFoundError:
                continue

    def pending(self, tenant: str) -> list[ReviewItem]:
        """Pending items, most informative first."""
        items = [i for i in self.iter_tenant(tenant) if i.status is ReviewStatus.PENDING]
        return sorted(items, key=lambda i: (-i.uncertainty, i.created_at, i.id))
