"""The review queue's ordered entries: exact order, bounded reads per page, kept in step, migrated."""

from __future__ import annotations

import base64
import random
from dataclasses import replace
from typing import Any

import pytest
from tagsmith.console import QueueFilter, order_queue
from tagsmith.console.queue import pending_queue_page
from tagsmith.errors import InvalidInputError
from tagsmith.keys import review_item_key
from tagsmith.records import Alternative
from tagsmith.review import ReviewItem, ReviewStatus, ReviewStore, review_queue_prefix
from tagsmith.storage import MemoryObjectStore


class CountingStore:
    def __init__(self) -> None:
        self.inner = MemoryObjectStore()
        self.item_gets = 0

    def get(self, bucket: str, key: str) -> Any:
        if "/reviews/" in key:
            self.item_gets += 1
        return self.inner.get(bucket, key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def make_items(n: int, seed: int = 0) -> list[ReviewItem]:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        confidence = round(rng.uniform(0.1, 0.99), rng.choice((2, 4, 6)))
        alts = tuple(
            Alternative(f"t{j}", round(rng.uniform(0, confidence), 3)) for j in range(rng.randint(0, 2))
        )
        items.append(
            ReviewItem(
                id=f"{rng.getrandbits(96):024x}",
                tenant="acme",
                asset_path=f"p/{i}.jpg",
                model=rng.choice(("sku", "colour")),
                model_version="v1",
                suggestion=rng.choice(("milk", "juice", "red")),
                confidence=confidence,
                threshold=0.9,
                alternatives=alts,
                created_at=f"2026-11-22T06:00:{rng.randint(0, 5):02d}.000Z",  # many ties on purpose
            )
        )
    return items


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
def reviews(store: CountingStore) -> ReviewStore:
    return ReviewStore(store=store, bucket="data")  # type: ignore[arg-type]


def all_pages(reviews: ReviewStore, flt: QueueFilter, limit: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = pending_queue_page(reviews, "acme", flt, cursor=cursor, limit=limit, counts=False)
        seen += [i.id for i in page.items]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


def test_paging_by_cursor_gives_exactly_the_console_order(reviews: ReviewStore) -> None:
    items = make_items(300)
    for item in items:
        reviews.put(item)
    assert all_pages(reviews, QueueFilter(), limit=37) == [i.id for i in order_queue(items)]


def test_filters_apply_to_the_entries_as_to_the_items(reviews: ReviewStore) -> None:
    items = make_items(300, seed=1)
    for item in items:
        reviews.put(item)
    flt = QueueFilter(model="sku", tag="milk", min_confidence=0.3, max_confidence=0.8)
    expected = [i.id for i in order_queue(i for i in items if flt.matches(i))]
    assert all_pages(reviews, flt, limit=10) == expected
    assert pending_queue_page(reviews, "acme", flt, limit=10).total == len(expected)


def test_a_page_reads_only_its_items_however_long_the_backlog(
    reviews: ReviewStore, store: CountingStore
) -> None:
    for item in make_items(2000, seed=2):
        reviews.put(item)
    assert reviews.ensure_queue_index("acme") == 0  # the one-time migration finds every entry there
    store.item_gets = 0
    page = pending_queue_page(reviews, "acme", QueueFilter(), limit=50)
    assert len(page.items) == 50 and page.pending == 2000
    assert store.item_gets == 50


def test_deciding_or_requestioning_an_item_moves_its_entry(
    reviews: ReviewStore, store: CountingStore
) -> None:
    a, b = make_items(2, seed=3)
    reviews.put(a)
    reviews.put(b)
    reviews.put(replace(a, status=ReviewStatus.DECIDED))
    reviews.put(replace(b, confidence=0.5, alternatives=(Alternative("x", 0.49),)))  # a new question
    names = [i.key for i in store.list("data", review_queue_prefix("acme"))]
    assert len(names) == 1 and b.id in names[0] and "0.5000" in names[0]
    assert [i.id for i in pending_queue_page(reviews, "acme", QueueFilter()).items] == [b.id]


def test_items_written_before_entries_existed_are_indexed_on_first_use(
    reviews: ReviewStore, store: CountingStore
) -> None:
    items = make_items(40, seed=4)
    for item in items:  # as the old ReviewStore.put wrote them: the item only
        store.put("data", review_item_key("acme", item.id), item.to_json())
    page = pending_queue_page(reviews, "acme", QueueFilter(), limit=40)
    assert [i.id for i in page.items] == [i.id for i in order_queue(items)]
    assert reviews.ensure_queue_index("acme") == 0  # built once


def test_a_stale_entry_left_by_a_crash_is_skipped(reviews: ReviewStore, store: CountingStore) -> None:
    a, b = make_items(2, seed=5)
    reviews.put(a)
    reviews.put(b)
    # a crash after the new entry was written but before the item was: the item is still pending as it was
    store.put(
        "data",
        review_queue_prefix("acme") + "00000~2026-11-22T06:00:00.000Z~" + a.id + "~sku~milk~0.9900",
        b"",
    )
    ids = [i.id for i in pending_queue_page(reviews, "acme", QueueFilter()).items]
    assert sorted(ids) == sorted([a.id, b.id])


@pytest.mark.parametrize(
    "cursor", ["not base64!", base64.urlsafe_b64encode(b"../../tokens/x").decode(), "e30="]
)
def test_a_forged_cursor_is_refused(reviews: ReviewStore, cursor: str) -> None:
    with pytest.raises(InvalidInputError, match="cursor"):
        pending_queue_page(reviews, "acme", QueueFilter(), cursor=cursor)
