"""Deleted objects: tombstone records, unindexed documents, closed review items; order-safe."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

import pytest
from PIL import Image
from tagsmith.console import ConsoleServices
from tagsmith.deletion import DeletionService, tombstone
from tagsmith.errors import NotFoundError
from tagsmith.events import ObjectRef
from tagsmith.examples import Example
from tagsmith.keys import AssetKey
from tagsmith.records import AssetStatus, TagState
from tagsmith.review import ReviewStatus
from tagsmith.search import SearchQuery
from tagsmith.search.reindex import reindex_tenant
from tagsmith.sqsbatch import storage_sqs_batch
from tagsmith.storage.base import ObjectInfo
from tagsmith.trainer import TrainingOptions
from tagsmith.wiring import Components

from tests.conftest import ASSETS, load_event
from tests.fakes import COLOURS, solid_jpeg

KEY = "acme/mix.jpg"
ASSET = AssetKey("acme", "mix.jpg")


def blend() -> bytes:
    mixed = Image.blend(
        Image.open(io.BytesIO(solid_jpeg(COLOURS["red"]))),
        Image.open(io.BytesIO(solid_jpeg(COLOURS["blue"]))),
        0.5,
    )
    buf = io.BytesIO()
    mixed.save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def c(components: Components) -> Components:
    examples = [
        Example(name, f"{name}-{i}.jpg", lambda rgb=rgb, i=i: solid_jpeg(rgb, noise=25, seed=i))
        for name, rgb in COLOURS.items()
        for i in range(6)
    ]
    components.trainer.train(
        tenant="acme", model_id="colour", examples=examples, options=TrainingOptions(threshold=0.99)
    )
    return components


def upload(c: Components, body: bytes, key: str = KEY) -> ObjectRef:
    etag = c.store.put(ASSETS, key, body)
    [outcome] = c.ingest.ingest([ObjectRef(ASSETS, key, etag, len(body))])
    assert not isinstance(outcome, Exception)
    return ObjectRef(ASSETS, key, etag, len(body))


def removal(key: str = KEY) -> ObjectRef:
    return ObjectRef(ASSETS, key, removed=True)


def deletions(c: Components) -> DeletionService:
    return DeletionService.from_components(c)


def searchable_keys(c: Components) -> list[str]:
    return [h.asset_key for h in c.index.search("acme", SearchQuery(size=50)).hits]


def test_a_deleted_object_becomes_a_tombstone_keeping_only_human_decisions(c: Components) -> None:
    upload(c, blend())
    upload(c, solid_jpeg(COLOURS["red"]), key="acme/other.jpg")
    [item] = [i for i in c.reviews.pending("acme") if i.asset_path == "mix.jpg"]
    ConsoleServices.from_components(c).decisions.decide("acme", item.id, "reject", reviewer="ana")
    assert sorted(searchable_keys(c)) == ["acme/mix.jpg", "acme/other.jpg"]

    c.store.delete(ASSETS, KEY)
    [outcome] = deletions(c).remove([removal()])

    assert not isinstance(outcome, Exception) and outcome.status == "deleted"
    record, _ = c.records.get(ASSET)
    assert record.status is AssetStatus.DELETED and record.deleted_at
    assert [(t.tag, t.state) for t in record.tags] == [(item.suggestion, TagState.REJECTED)]
    assert record.source.key == KEY  # which version was deleted, for audit
    assert searchable_keys(c) == ["acme/other.jpg"]


def test_deleting_closes_the_assets_pending_review_items(c: Components) -> None:
    upload(c, blend())
    [item] = c.reviews.pending("acme")
    c.store.delete(ASSETS, KEY)
    deletions(c).remove([removal()])
    closed = c.reviews.get("acme", item.id)
    assert closed.status is ReviewStatus.SUPERSEDED
    assert closed.decision["closed"] == "asset deleted"
    assert c.reviews.pending("acme") == []


def test_a_repeated_removal_changes_nothing(c: Components) -> None:
    upload(c, blend())
    c.store.delete(ASSETS, KEY)
    deletions(c).remove([removal()])
    first, etag = c.records.get(ASSET)
    [again] = deletions(c).remove([removal()])
    assert again.status == "deleted"
    assert c.records.get(ASSET) == (first, etag)


def test_a_late_removal_never_deletes_a_newer_upload(c: Components) -> None:
    upload(c, blend())
    upload(c, solid_jpeg(COLOURS["red"]))  # replaced; the removal of the first version arrives late
    before = c.records.get(ASSET)
    [outcome] = deletions(c).remove([removal()])
    assert outcome.status == "unchanged"
    assert c.records.get(ASSET) == before  # never tombstoned, not even for a moment
    assert searchable_keys(c) == [KEY]


def test_an_upload_after_the_removal_revives_the_asset_with_its_decisions(c: Components) -> None:
    body = blend()
    upload(c, body)
    [item] = c.reviews.pending("acme")
    ConsoleServices.from_components(c).decisions.decide("acme", item.id, "accept", reviewer="ana")
    c.store.delete(ASSETS, KEY)
    deletions(c).remove([removal()])

    upload(c, body)  # the very same bytes again: same ETag as the tombstone's source

    record, _ = c.records.get(ASSET)
    assert record.status is AssetStatus.TAGGED and record.deleted_at is None
    assert (item.suggestion, TagState.CONFIRMED) in [(t.tag, t.state) for t in record.tags]
    assert searchable_keys(c) == [KEY]


class ComesBackDuringDelete:
    """An object store whose object reappears right after the first ``head`` said it was gone."""

    def __init__(self, inner: Any, body: bytes) -> None:
        self.inner, self.body, self.heads = inner, body, 0

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        self.heads += 1
        if self.heads == 2:
            self.inner.put(bucket, key, self.body)
        return self.inner.head(bucket, key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_an_object_that_comes_back_during_the_delete_is_revived(c: Components) -> None:
    upload(c, blend())
    c.store.delete(ASSETS, KEY)
    service = deletions(c)
    service.store = ComesBackDuringDelete(c.store, solid_jpeg(COLOURS["red"]))  # type: ignore[assignment]
    [outcome] = service.remove([removal()])
    assert outcome.status == "tagged"
    assert c.records.get(ASSET)[0].status is AssetStatus.TAGGED
    assert searchable_keys(c) == [KEY]


def test_removal_of_an_object_never_ingested_is_skipped(c: Components) -> None:
    [outcome] = deletions(c).remove([removal("acme/never.jpg")])
    assert outcome.status == "skipped"
    assert c.records.get(AssetKey("acme", "never.jpg")) is None


def test_a_decision_on_a_deleted_asset_is_refused_and_closes_the_item(c: Components) -> None:
    upload(c, blend())
    [item] = c.reviews.pending("acme")
    c.store.delete(ASSETS, KEY)
    deletions(c).remove([removal()])
    c.reviews.put(item)  # an item left pending (say, by a racing ingestion)
    with pytest.raises(NotFoundError, match="no longer exists"):
        ConsoleServices.from_components(c).decisions.decide("acme", item.id, "accept", reviewer="ana")
    assert c.reviews.get("acme", item.id).status is ReviewStatus.SUPERSEDED
    assert c.records.get(ASSET)[0].tags == ()  # nothing decided on a tombstone


def test_reindex_and_rebuild_skip_tombstones(c: Components) -> None:
    upload(c, blend())
    upload(c, solid_jpeg(COLOURS["red"]), key="acme/other.jpg")
    c.store.delete(ASSETS, KEY)
    deletions(c).remove([removal()])
    report = reindex_tenant(index=c.index, records=c.records, taxonomies={}, tenant="acme")
    assert report.indexed == 1
    assert searchable_keys(c) == ["acme/other.jpg"]


def test_a_late_write_of_an_older_revision_cannot_bring_a_deleted_document_back(c: Components) -> None:
    upload(c, blend())
    live, _ = c.records.get(ASSET)
    dead = tombstone(live, deleted_at="2026-11-22T09:00:00.000Z")
    c.index.upsert(replace(dead, revision=live.revision + 1), {})  # the tombstone's projection
    c.index.upsert(live, {})  # the projection of the older revision, arriving late
    assert searchable_keys(c) == []


def sqs(*bodies: dict[str, Any] | str) -> dict[str, Any]:
    return {
        "Records": [
            {"messageId": f"m{i}", "body": b if isinstance(b, str) else json.dumps(b)}
            for i, b in enumerate(bodies)
        ]
    }


def test_the_ingest_batch_routes_creations_and_removals_and_fails_only_bad_messages(c: Components) -> None:
    body = blend()
    etag = c.store.put(ASSETS, KEY, body)
    created = load_event("s3_put_sqs_body.json")
    created["Records"][0]["s3"]["bucket"]["name"] = ASSETS
    created["Records"][0]["s3"]["object"].update(key="acme/mix.jpg", eTag=etag, size=len(body))
    response, outcomes = storage_sqs_batch(
        sqs(created, "not json"), ingest=c.ingest.ingest, remove=deletions(c).remove
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert [o.status for o in outcomes] == ["tagged"]

    c.store.delete(ASSETS, KEY)
    removed = load_event("s3_removed_sqs_body.json")
    removed["Records"][0]["s3"]["bucket"]["name"] = ASSETS
    removed["Records"][0]["s3"]["object"]["key"] = "acme/mix.jpg"
    response, outcomes = storage_sqs_batch(sqs(removed), ingest=c.ingest.ingest, remove=deletions(c).remove)
    assert response == {"batchItemFailures": []}
    assert [o.status for o in outcomes] == ["deleted"]
    assert c.records.get(ASSET)[0].status is AssetStatus.DELETED


def test_a_deleted_assets_decisions_are_kept_but_no_longer_train(c: Components) -> None:
    from tagsmith.examples import examples_from_corrections

    upload(c, blend())
    [item] = c.reviews.pending("acme")
    ConsoleServices.from_components(c).decisions.decide("acme", item.id, "accept", reviewer="ana")
    assert len(examples_from_corrections(c.records.iter_tenant("acme"), "colour", c.store, ASSETS)) == 1
    c.store.delete(ASSETS, KEY)
    deletions(c).remove([removal()])
    assert examples_from_corrections(c.records.iter_tenant("acme"), "colour", c.store, ASSETS) == []


def test_a_backfill_after_a_deletion_leaves_the_tombstone_alone(c: Components) -> None:
    upload(c, blend())
    upload(c, solid_jpeg(COLOURS["red"]), key="acme/other.jpg")
    c.store.delete(ASSETS, KEY)
    deletions(c).remove([removal()])
    before = c.records.get(ASSET)
    backfill = c.backfill
    backfill.start("acme", reason="test")
    for _ in range(100):
        messages = backfill.queue.take()  # type: ignore[attr-defined]  # the in-memory delay queue
        if not messages:
            break
        for m in messages:
            backfill.handle(json.dumps(m))
    assert backfill.status("acme").done == 1  # only the object that exists
    assert c.records.get(ASSET) == before
    assert searchable_keys(c) == ["acme/other.jpg"]


def test_a_deletion_while_the_upload_is_being_tagged_is_not_undone(c: Components, monkeypatch) -> None:
    # the ingestion read the object, then the object was deleted and tombstoned before it wrote
    upload(c, blend())
    body = solid_jpeg(COLOURS["red"], noise=3, seed=9)
    etag = c.store.put(ASSETS, KEY, body)
    propose = c.ingest.tagger.propose

    def delete_then_propose(*args: Any, **kwargs: Any) -> Any:
        c.store.delete(ASSETS, KEY)
        deletions(c).remove([removal()])
        return propose(*args, **kwargs)

    monkeypatch.setattr(c.ingest.tagger, "propose", delete_then_propose)
    [outcome] = c.ingest.ingest([ObjectRef(ASSETS, KEY, etag, len(body))])
    assert not isinstance(outcome, Exception)
    assert (outcome.status, outcome.message) == ("skipped", "deleted while it was being tagged")
    record = c.records.get(ASSET)
    assert record is not None and record[0].status is AssetStatus.DELETED
    assert "acme/mix.jpg" not in searchable_keys(c)


def test_a_reupload_after_a_deletion_still_revives_the_asset(c: Components) -> None:
    upload(c, blend())
    c.store.delete(ASSETS, KEY)
    deletions(c).remove([removal()])
    outcome_ref = upload(c, blend())  # the same bytes: the same ETag as the tombstone's version
    record = c.records.get(ASSET)
    assert record is not None and record[0].status is not AssetStatus.DELETED
    assert outcome_ref.key in searchable_keys(c)


def test_a_deleted_video_loses_its_segment_thumbnails(c: Components) -> None:
    from tagsmith.video.analysis import thumbnails_prefix

    ref = upload(c, blend())
    prefix = thumbnails_prefix("acme", "mix.jpg")
    frames = [f"{prefix}{ref.etag}/00001000.jpg", f"{prefix}older-etag/00002000.jpg"]
    for key in frames:  # as a video's ingest would have left them (this one's and a replaced version's)
        c.store.put(c.records.bucket, key, b"jpeg")
    neighbour = f"{thumbnails_prefix('acme', 'mix.jpg/inner.mp4')}e/00000000.jpg"  # another asset's
    c.store.put(c.records.bucket, neighbour, b"jpeg")
    c.store.delete(ASSETS, KEY)
    deletions(c).remove([removal()])
    assert [i.key for i in c.store.list(c.records.bucket, prefix)] == [neighbour]
