"""The ingest service over in-memory adapters and a fake encoder: behaviour, not plumbing."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import replace

import pytest
from PIL import Image
from tagsmith.errors import TransientError
from tagsmith.events import ObjectRef
from tagsmith.examples import Example
from tagsmith.keys import AssetKey
from tagsmith.outbound import MemoryPublisher
from tagsmith.records import AssetStatus, Source, TagAssignment, TagState
from tagsmith.review import ReviewStatus
from tagsmith.search import SearchQuery
from tagsmith.search.index import BulkItemError
from tagsmith.trainer import TrainingOptions
from tagsmith.wiring import Components

from tests.conftest import ASSETS
from tests.fakes import COLOURS, solid_jpeg


def train_colours(c: Components, threshold: float = 0.6) -> str:
    examples = [
        Example(name, f"{name}-{i}.jpg", lambda rgb=rgb, i=i: solid_jpeg(rgb, noise=25, seed=i))
        for name, rgb in COLOURS.items()
        for i in range(6)
    ]
    return c.trainer.train(
        tenant="acme", model_id="colour", examples=examples, options=TrainingOptions(threshold=threshold)
    ).version


def upload(c: Components, key: str, body: bytes) -> ObjectRef:
    etag = c.store.put(ASSETS, key, body)
    return ObjectRef(ASSETS, key, etag, len(body))


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size: decoding it would need gigabytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_ingest_applies_a_confident_tag_and_records_provenance(components: Components) -> None:
    version = train_colours(components)
    [outcome] = components.ingest.ingest(
        [upload(components, "acme/shoot/red.jpg", solid_jpeg(COLOURS["red"], seed=99))]
    )
    assert outcome.status == "tagged"
    record = components.records.get(AssetKey("acme", "shoot/red.jpg"))[0]
    [tag] = record.visible_tags()
    assert (tag.model, tag.tag, tag.state, tag.source, tag.model_version) == (
        "colour",
        "red",
        TagState.APPLIED,
        Source.AI,
        version,
    )
    assert tag.confidence >= tag.threshold
    assert record.models == {"colour": version}
    assert (record.width, record.height, record.media_type) == (64, 64, "image/jpeg")


def test_ingest_sends_an_uncertain_prediction_to_review(components: Components) -> None:
    components.outbound.publisher = published = MemoryPublisher()
    train_colours(components, threshold=0.99)
    blend = Image.blend(
        Image.open(io.BytesIO(solid_jpeg(COLOURS["red"]))),
        Image.open(io.BytesIO(solid_jpeg(COLOURS["blue"]))),
        0.5,
    )
    buf = io.BytesIO()
    blend.save(buf, "JPEG")
    components.ingest.ingest([upload(components, "acme/mix.jpg", buf.getvalue())])
    record = components.records.get(AssetKey("acme", "mix.jpg"))[0]
    assert [t.state for t in record.tags] == [TagState.REVIEW]
    [item] = components.reviews.pending("acme")
    assert (item.asset_path, item.model, item.suggestion) == ("mix.jpg", "colour", record.tags[0].tag)
    [event] = published.events  # what tells the world a question is waiting (no queue message)
    assert (event["key"], event["kinds"], event["tags"][0]["state"]) == ("acme/mix.jpg", ["review"], "review")


def test_redelivering_the_same_event_changes_nothing(components: Components) -> None:
    components.outbound.publisher = published = MemoryPublisher()
    train_colours(components, threshold=0.99)
    ref = upload(components, "acme/a.jpg", solid_jpeg((128, 40, 128)))
    components.ingest.ingest([ref])
    before = components.records.get(AssetKey("acme", "a.jpg"))
    embedded = components.encoder.images_embedded
    events = list(published.events)
    [again] = components.ingest.ingest([ref])
    assert again.status == "unchanged"
    assert components.records.get(AssetKey("acme", "a.jpg")) == before  # same record, same ETag
    assert components.encoder.images_embedded == embedded
    assert published.events == events and len(events) == 1  # published once, stamped on the record


def test_the_same_bytes_under_another_key_are_not_embedded_twice(components: Components) -> None:
    train_colours(components)
    body = solid_jpeg(COLOURS["green"], seed=5)
    components.ingest.ingest([upload(components, "acme/one.jpg", body)])
    embedded = components.encoder.images_embedded
    components.ingest.ingest([upload(components, "acme/copy/two.jpg", body)])
    assert components.encoder.images_embedded == embedded


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        (b"", "invalid_input", "0 bytes"),
        (b"%PDF-1.7 this is a document, not a photo", "unsupported_media", "not a supported image"),
        (png_header_claiming(30_000, 30_000), "image_too_large", "900,000,000 pixels"),
    ],
    ids=["zero-bytes", "not-an-image", "30000x30000"],
)
def test_bad_objects_end_as_failed_records_saying_why(
    components: Components, body: bytes, code: str, says: str
) -> None:
    train_colours(components)
    [outcome] = components.ingest.ingest([upload(components, "acme/bad.jpg", body)])
    assert outcome.status == "failed"
    record = components.records.get(AssetKey("acme", "bad.jpg"))[0]
    assert record.status is AssetStatus.FAILED
    assert record.failure.code == code
    assert says in record.failure.message


def test_a_key_outside_any_tenant_is_rejected_and_logged_without_a_record(
    components: Components, caplog: pytest.LogCaptureFixture
) -> None:
    train_colours(components)
    [outcome] = components.ingest.ingest([upload(components, "no-tenant.jpg", solid_jpeg(COLOURS["red"]))])
    assert outcome.status == "rejected"
    assert "outside any tenant prefix" in caplog.text
    assert list(components.store.list("data-bucket", "tenants/no-tenant")) == []


def test_one_bad_object_does_not_cost_the_rest_of_the_batch(components: Components) -> None:
    train_colours(components)
    refs = [
        upload(components, "acme/ok-1.jpg", solid_jpeg(COLOURS["red"], seed=1)),
        upload(components, "acme/broken.jpg", b"garbage"),
        upload(components, "outside.jpg", b"x"),
        upload(components, "acme/ok-2.jpg", solid_jpeg(COLOURS["blue"], seed=2)),
    ]
    statuses = [o.status for o in components.ingest.ingest(refs)]
    assert statuses == ["tagged", "failed", "rejected", "tagged"]


def test_a_transient_failure_is_returned_for_retry_and_the_others_succeed(components: Components) -> None:
    # GIVEN a bulk index request in which one document fails (OpenSearch answers per item)
    train_colours(components)
    refs = [upload(components, f"acme/{n}.jpg", solid_jpeg(COLOURS[n])) for n in ("red", "green")]
    original = components.index.bulk_upsert

    def flaky(items, tenant):  # type: ignore[no-untyped-def]
        items = list(items)
        busy = [BulkItemError(r.key, 429, "es_rejected_execution_exception", "queue full") for r, _ in items
                if r.path == "green.jpg"]  # fmt: skip
        return original([(r, t) for r, t in items if r.path != "green.jpg"], tenant) + busy

    components.index.bulk_upsert = flaky  # type: ignore[method-assign]
    results = components.ingest.ingest(refs)
    # THEN only that object's message fails (to be retried); the other is done
    assert results[0].status == "tagged"
    assert isinstance(results[1], TransientError)
    assert "429" in str(results[1])
    components.index.bulk_upsert = original  # type: ignore[method-assign]
    [retry] = components.ingest.ingest(refs[1:])
    assert retry.status == "unchanged"  # the record was written first; the retry only re-projects it
    assert components.index.search("acme", SearchQuery(text="green")).total == 1


def test_a_search_outage_fails_every_tagged_object_of_the_batch_and_the_retry_repairs(
    components: Components,
) -> None:
    train_colours(components)
    refs = [upload(components, f"acme/{n}.jpg", solid_jpeg(COLOURS[n])) for n in ("red", "green", "blue")]
    original = components.index.bulk_upsert

    def down(items, tenant):  # type: ignore[no-untyped-def]
        raise TransientError("search cluster unreachable")

    components.index.bulk_upsert = down  # type: ignore[method-assign]
    results = components.ingest.ingest(refs)
    assert all(isinstance(r, TransientError) for r in results)
    assert all(components.records.get(AssetKey("acme", f"{n}.jpg")) for n in ("red", "green", "blue"))
    components.index.bulk_upsert = original  # type: ignore[method-assign]
    assert [r.status for r in components.ingest.ingest(refs)] == ["unchanged"] * 3
    assert components.index.count("acme") == 3


def test_a_new_photo_is_read_in_one_request_and_an_oversized_object_never_whole(
    components: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_colours(components)
    reads: list[tuple[str, str]] = []
    store = components.store
    for name in ("get", "head", "get_small", "open"):
        plain = getattr(store, name)

        def counted(bucket, key, *args, _name=name, _plain=plain):  # type: ignore[no-untyped-def]
            if bucket == ASSETS:
                reads.append((_name, key))
            return _plain(bucket, key, *args)

        monkeypatch.setattr(store, name, counted)
    refs = [upload(components, f"acme/n-{i}.jpg", solid_jpeg(COLOURS["red"], seed=i)) for i in range(3)]
    assert [o.status for o in components.ingest.ingest(refs)] == ["tagged"] * 3
    assert sorted(reads) == [("get_small", f"acme/n-{i}.jpg") for i in range(3)]  # no HEAD first

    reads.clear()
    limits = components.ingest.tagger.limits
    monkeypatch.setattr(components.ingest.tagger, "limits", replace(limits, max_object_bytes=100))
    [outcome] = components.ingest.ingest([upload(components, "acme/huge.jpg", solid_jpeg(COLOURS["red"]))])
    assert (
        outcome.status == "failed" and "over the 100-byte limit for images" in outcome.record.failure.message
    )
    assert ("get", "acme/huge.jpg") not in reads  # refused from its size, its bytes never read


def test_a_batch_is_indexed_in_one_bulk_request_per_tenant(components: Components) -> None:
    # the search documents of a batch's records go in one request, not one per asset
    train_colours(components)
    calls: list[tuple[str, int]] = []
    original_bulk, original_upsert = components.index.bulk_upsert, components.index.upsert

    def bulk(items, tenant):  # type: ignore[no-untyped-def]
        items = list(items)
        calls.append(("bulk", len(items)))
        return original_bulk(items, tenant)

    def upsert(record, taxonomies):  # type: ignore[no-untyped-def]
        calls.append(("upsert", 1))
        return original_upsert(record, taxonomies)

    components.index.bulk_upsert = bulk  # type: ignore[method-assign]
    components.index.upsert = upsert  # type: ignore[method-assign]
    refs = [upload(components, f"acme/b-{i}.jpg", solid_jpeg(COLOURS["red"], seed=i)) for i in range(5)]
    assert [o.status for o in components.ingest.ingest(refs)] == ["tagged"] * 5
    assert calls == [("bulk", 5)]
    assert components.index.count("acme") == 5


def test_human_decisions_survive_retraining_and_reprocessing(components: Components) -> None:
    train_colours(components)
    ref = upload(components, "acme/r.jpg", solid_jpeg(COLOURS["red"], seed=3))
    components.ingest.ingest([ref])
    asset = AssetKey("acme", "r.jpg")
    reviewer = TagAssignment("colour", "blue", TagState.CONFIRMED, Source.HUMAN, decided_by="ana")
    rejected = TagAssignment("colour", "red", TagState.REJECTED, Source.HUMAN, decided_by="ana")
    components.records.update(asset, lambda r: replace(r, tags=(reviewer, rejected)))
    train_colours(components)  # a new model version: the asset is reprocessed on the next event
    [outcome] = components.ingest.ingest([ref])
    assert outcome.status == "tagged"
    tags = {(t.tag, t.state) for t in components.records.get(asset)[0].tags}
    assert tags == {("blue", TagState.CONFIRMED), ("red", TagState.REJECTED)}


def test_a_review_item_is_superseded_when_the_model_becomes_sure(components: Components) -> None:
    train_colours(components, threshold=0.999)
    ref = upload(components, "acme/g.jpg", solid_jpeg(COLOURS["green"], seed=4))
    components.ingest.ingest([ref])
    [item] = components.reviews.pending("acme")
    train_colours(components, threshold=0.3)
    components.ingest.ingest([ref])
    assert components.reviews.pending("acme") == []
    assert components.reviews.get("acme", item.id).status is ReviewStatus.SUPERSEDED


def test_tenants_never_see_each_others_models(components: Components) -> None:
    train_colours(components)
    [outcome] = components.ingest.ingest([upload(components, "other/x.jpg", solid_jpeg(COLOURS["red"]))])
    assert outcome.status == "tagged"
    assert components.records.get(AssetKey("other", "x.jpg"))[0].tags == ()
    assert components.index.search("other", SearchQuery(text="red")).total == 0


def test_a_photo_sent_to_review_reads_its_review_item_once(
    components: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_colours(components, threshold=0.99)  # every photo goes to review
    reads: list[str] = []
    plain = components.store.get

    def counted(bucket, key):  # type: ignore[no-untyped-def]
        if "/reviews/" in key:
            reads.append(key)
        return plain(bucket, key)

    monkeypatch.setattr(components.store, "get", counted)
    [outcome] = components.ingest.ingest([upload(components, "acme/r.jpg", solid_jpeg(COLOURS["red"]))])
    assert outcome.status == "tagged" and len(components.reviews.pending("acme")) == 1
    assert len(reads) == 1 + 1  # the ingest's one read, then pending()'s
