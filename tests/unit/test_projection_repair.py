"""Crash-consistent commit: whatever is written after the record is repaired from it on redelivery.

Ingestion writes the record first, then the review item (and its queue entry and message), then the
search document. A crash (or a Lambda timeout) in between used to leave the record saying "review"
with no review item for good, because the redelivered event found the record current and only
re-indexed it.
"""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from PIL import Image
from tagsmith.errors import TransientError
from tagsmith.keys import AssetKey, review_item_key
from tagsmith.records import TagState
from tagsmith.review import ReviewStatus, queue_entry_name, review_queue_prefix
from tagsmith.search import SearchQuery
from tagsmith.storage import MemoryObjectStore
from tagsmith.wiring import Components

from tests.conftest import DATA
from tests.fakes import COLOURS, solid_jpeg
from tests.unit.test_ingest_service import train_colours, upload


def blend() -> bytes:
    mixed = Image.blend(
        Image.open(io.BytesIO(solid_jpeg(COLOURS["red"]))),
        Image.open(io.BytesIO(solid_jpeg(COLOURS["blue"]))),
        0.5,
    )
    buf = io.BytesIO()
    mixed.save(buf, "JPEG")
    return buf.getvalue()


def test_a_redelivery_brings_back_deleted_review_items_entries_and_documents(components: Components) -> None:
    train_colours(components, threshold=0.99)
    refs = [upload(components, f"acme/mix-{i}.jpg", blend()) for i in range(3)]
    components.ingest.ingest(refs)
    items = components.reviews.pending("acme")
    assert len(items) == 3
    store = components.store
    for item in items:  # what a crash after the record write leaves: no item, no entry
        store.delete(DATA, review_item_key("acme", item.id))
        store.delete(DATA, review_queue_prefix("acme") + queue_entry_name(item))
    components.index.delete("acme", "acme/mix-0.jpg")
    assert components.reviews.pending("acme") == []

    outcomes = components.ingest.ingest(refs)  # the events come again

    assert [o.status for o in outcomes] == ["unchanged"] * 3
    assert all("repaired" in o.message for o in outcomes)
    assert sorted(i.id for i in components.reviews.pending("acme")) == sorted(i.id for i in items)
    page, _ = components.reviews.pending_page("acme")  # through the queue entries, as the console reads
    assert len(page) == 3
    assert components.index.search("acme", SearchQuery(text="mix")).total == 3
    again = components.ingest.ingest(refs)
    assert [o.message for o in again] == ["", "", ""]  # nothing left to repair


class FailingOnce(MemoryObjectStore):
    """Fails the first write under ``prefix``: a process that died right after the record write."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix
        self.armed = False

    def put(self, bucket: str, key: str, body: bytes, **kwargs) -> str:  # type: ignore[no-untyped-def]
        if self.armed and key.startswith(self.prefix):
            self.armed = False
            raise TransientError("the process died here")
        return super().put(bucket, key, body, **kwargs)


@pytest.mark.parametrize("dies_at", ["tenants/acme/review-queue/", "tenants/acme/reviews/"])
def test_a_crash_between_record_and_review_item_is_repaired_by_the_retry(
    components: Components, dies_at: str
) -> None:
    store = FailingOnce(dies_at)
    c = replace(components, store=store)
    train_colours(c, threshold=0.99)
    ref = upload(c, "acme/mix.jpg", blend())
    store.armed = True
    [first] = c.ingest.ingest([ref])
    assert isinstance(first, TransientError)  # the message is retried
    record = c.records.get(AssetKey("acme", "mix.jpg"))[0]
    assert [t.state for t in record.tags] == [TagState.REVIEW]  # the record was written
    assert c.reviews.pending("acme") == []

    [retry] = c.ingest.ingest([ref])

    assert retry.status == "unchanged"
    [item] = c.reviews.pending("acme")
    assert item.suggestion == record.tags[0].tag
    assert c.reviews.pending_page("acme")[0] == [item]


def test_a_pending_item_the_record_no_longer_asks_for_is_closed(components: Components) -> None:
    """A reviewer's decision reached the record, then the process stopped before the item."""
    train_colours(components, threshold=0.99)
    ref = upload(components, "acme/mix.jpg", blend())
    components.ingest.ingest([ref])
    [item] = components.reviews.pending("acme")
    asset = AssetKey("acme", "mix.jpg")

    def decided(record):  # type: ignore[no-untyped-def]
        tags = tuple(
            replace(t, state=TagState.CONFIRMED, decided_by="ana", decided_at="2026-12-01T00:00:00.000Z")
            for t in record.tags
        )
        return replace(record, tags=tags)

    components.records.update(asset, decided)
    [again] = components.ingest.ingest([ref])
    assert again.status == "unchanged"
    closed = components.reviews.get("acme", item.id)
    assert closed is not None and closed.status is ReviewStatus.DECIDED and closed.decided_by == "ana"
    assert components.reviews.pending_page("acme")[0] == []


def test_ingest_writes_a_bounded_preview_and_a_redelivery_restores_a_lost_one(components: Components) -> None:
    from tagsmith.previews import preview_key

    train_colours(components)
    big = io.BytesIO()
    Image.new("RGB", (3000, 1500), (200, 30, 30)).save(big, "PNG")
    ref = upload(components, "acme/wide.png", big.getvalue())
    components.ingest.ingest([ref])
    key = preview_key("acme", "wide.png", ref.etag or "")
    with Image.open(io.BytesIO(components.store.get(DATA, key).body)) as im:
        assert (im.format, im.size) == ("JPEG", (1024, 512))
    components.store.delete(DATA, key)
    components.ingest.ingest([ref])
    assert components.store.head(DATA, key) is not None


def test_checking_a_record_s_projections_lists_its_thumbnails_once_and_heads_nothing(
    components: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the sweep checks every new record: its preview's presence comes from the same listing
    # that finds stale thumbnails, not from a HEAD of its own
    train_colours(components)
    ref = upload(components, "acme/p.jpg", solid_jpeg(COLOURS["red"]))
    [outcome] = components.ingest.ingest([ref])
    calls: list[str] = []
    store = components.store
    for name in ("head", "list"):
        plain = getattr(store, name)

        def counted(bucket, *args, _name=name, _plain=plain, **kw):  # type: ignore[no-untyped-def]
            if bucket == DATA and "/thumbnails/" in (args[0] if args else kw.get("prefix", "")):
                calls.append(_name)
            return _plain(bucket, *args, **kw)

        monkeypatch.setattr(store, name, counted)
    assert outcome.record is not None
    assert components.projections.ensure(outcome.record).total == 0
    assert calls == ["list"]
