"""Bulk accept: the same decisions as one by one, with one index request and one correction count
update per model instead of one of each per item."""

from __future__ import annotations

from typing import Any

from tagsmith.decisions import CorrectionTracker, DecisionOutcome, DecisionService, RetrainPolicy
from tagsmith.records import TagState
from tagsmith.search import SearchQuery
from tagsmith.wiring import Components

from tests.conftest import DATA
from tests.unit.test_decisions_service import item_for, queued, record  # noqa: F401 (fixture)


class CountingIndex:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def upsert(self, *args: Any) -> None:
        self.calls.append("upsert")
        self.inner.upsert(*args)

    def bulk_upsert(self, *args: Any) -> Any:
        self.calls.append("bulk_upsert")
        return self.inner.bulk_upsert(*args)


class CountingStore:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.correction_puts = 0

    def put(self, bucket: str, key: str, body: bytes, **kw: Any) -> str:
        if key.endswith("corrections.json"):
            self.correction_puts += 1
        return str(self.inner.put(bucket, key, body, **kw))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_bulk_accept_batches_the_index_and_the_correction_count(components: Components, queued: dict) -> None:  # noqa: F811
    index = CountingIndex(components.index)
    store = CountingStore(components.store)
    tracker = CorrectionTracker(
        store=store, data_bucket=DATA, models=components.active_models, policy=RetrainPolicy(0)
    )
    service = DecisionService(
        records=components.records,
        reviews=components.reviews,
        models=components.active_models,
        index=index,
        corrections=tracker,
    )
    items = [item_for(components, p) for p in ("a.jpg", "b.jpg", "c.jpg")]

    results = service.bulk_accept("acme", [i.id for i in items], reviewer="ana")

    assert all(isinstance(r, DecisionOutcome) and r.changed for r in results)
    assert index.calls == ["bulk_upsert"]
    assert store.correction_puts == 1 and tracker.state("acme", "colour")["total"] == 3
    for item, path in zip(items, ("a.jpg", "b.jpg", "c.jpg"), strict=True):
        [tag] = record(components, path).tags
        assert (tag.tag, tag.state) == (item.suggestion, TagState.CONFIRMED)
        # a tag waiting for review is not searchable, a confirmed one is: the bulk write reached the index
        hits = components.index.search("acme", SearchQuery(tags=(f"colour/{item.suggestion}",), size=10)).hits
        assert f"acme/{path}" in {h.asset_key for h in hits}
