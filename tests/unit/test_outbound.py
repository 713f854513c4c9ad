"""Outbound projections: change events (schema, kinds, exactly what each writer causes), publishing
after the record write and surviving a crash in between, object tags within S3's limits, XMP
sidecars that keep other people's keywords, the export."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from tagsmith.console.api import ConsoleServices
from tagsmith.errors import TransientError
from tagsmith.keys import AssetKey, tenant_settings_key
from tagsmith.outbound import MemoryObjectTagging, MemoryPublisher
from tagsmith.outbound.changes import change_event, schema
from tagsmith.outbound.export import export_tenant
from tagsmith.outbound.objecttags import MAX_TAGS, MAX_VALUE, object_tags
from tagsmith.outbound.sidecars import read_keywords, sidecar_key, sidecar_xmp
from tagsmith.records import (
    AssetRecord,
    AssetStatus,
    Cause,
    RecordChange,
    Source,
    SourceObject,
    TagAssignment,
    TagState,
)
from tagsmith.wiring import Components

from tests.unit.test_ingest_service import COLOURS, solid_jpeg, train_colours, upload

VALIDATOR = jsonschema.Draft202012Validator(schema())


def record(*tags: TagAssignment, revision: int = 1) -> AssetRecord:
    return AssetRecord(
        "acme", "a.jpg", SourceObject("assets", "acme/a.jpg", "e1", 3), AssetStatus.TAGGED,
        tags=tags, revision=revision,
    )  # fmt: skip


def ai(model: str, tag: str, confidence: float = 0.9) -> TagAssignment:
    return TagAssignment(model, tag, TagState.APPLIED, Source.AI, confidence=confidence)


@pytest.fixture
def wired(components: Components) -> tuple[Components, MemoryPublisher]:
    published = MemoryPublisher()
    components.outbound.publisher = published
    return components, published


def decide_first(c: Components, action: str, tag: str | None = None) -> None:
    [item] = c.reviews.pending("acme")
    ConsoleServices.from_components(c).decisions.decide("acme", item.id, action, reviewer="ana", tag=tag)


# --- events --------------------------------------------------------------------------------------
def test_every_writer_publishes_one_valid_event_per_revision_saying_what_changed(wired) -> None:
    c, published = wired
    train_colours(c, threshold=0.99)  # everything goes to review
    c.ingest.ingest([upload(c, "acme/a.jpg", solid_jpeg(COLOURS["red"]))])
    [item] = c.reviews.pending("acme")
    other = next(t for t in ("red", "green", "blue") if t != item.suggestion)
    decide_first(c, "pick", tag=other)
    c.store.delete("assets-bucket", "acme/a.jpg")
    from tagsmith.deletion import DeletionService
    from tagsmith.events import ObjectRef

    DeletionService.from_components(c).remove([ObjectRef("assets-bucket", "acme/a.jpg", removed=True)])
    for event in published.events:
        VALIDATOR.validate(event)
    assert [(e["revision"], e["cause"], e["kinds"]) for e in published.events] == [
        (1, "upload", ["review"]),
        (2, "review", ["confirmed", "picked", "rejected"]),
        (3, "deletion", ["deleted"]),  # human decisions stay on the tombstone: nothing removed
    ]
    assert len({e["id"] for e in published.events}) == 3
    final = c.records.get(AssetKey("acme", "a.jpg"))[0]
    assert final.published_revision == final.revision == 3


def test_none_of_these_and_a_backfill_are_kinds_of_their_own(wired) -> None:
    c, published = wired
    train_colours(c, threshold=0.99)
    c.ingest.ingest([upload(c, "acme/a.jpg", solid_jpeg(COLOURS["red"]))])
    decide_first(c, "none")
    assert "none" in published.events[-1]["kinds"]
    event = change_event(
        replace(record(ai("colour", "red")), change=RecordChange(Cause.BACKFILL, tags=()), revision=2)
    )
    assert event["kinds"] == []  # a backfill that changed nothing has nothing to say ...
    assert "retagged" in change_event(
        replace(
            record(ai("colour", "red")),
            change=RecordChange(Cause.BACKFILL, tags=(__import__("tagsmith.records").records.TagChange(
                "colour", "red", TagState.REVIEW, TagState.APPLIED),)),
            revision=2,
        )
    )["kinds"]  # fmt: skip


def test_a_crash_between_the_record_write_and_the_publish_is_repaired(wired) -> None:
    c, published = wired
    train_colours(c)
    ref = upload(c, "acme/a.jpg", solid_jpeg(COLOURS["green"]))
    # GIVEN the bus is down when the record is written
    published.fail = lambda: True
    [outcome] = c.ingest.ingest([ref])
    assert isinstance(outcome, TransientError)  # the message is retried ...
    stored = c.records.get(AssetKey("acme", "a.jpg"))[0]
    assert stored.revision == 1 and stored.published_revision == 0  # ... the record is written
    assert published.events == []
    # WHEN the message comes back with the bus up
    published.fail = lambda: False
    [again] = c.ingest.ingest([ref])
    # THEN the same revision is published, once, and the record says so
    assert again.status == "unchanged"
    assert [e["revision"] for e in published.events] == [1]
    assert c.records.get(AssetKey("acme", "a.jpg"))[0].published_revision == 1
    c.ingest.ingest([ref])
    assert len(published.events) == 1  # a third delivery publishes nothing


def test_a_decision_whose_publish_failed_is_published_by_the_repair_path(wired) -> None:
    c, published = wired
    train_colours(c, threshold=0.99)
    c.ingest.ingest([upload(c, "acme/a.jpg", solid_jpeg(COLOURS["red"]))])
    published.fail = lambda: True
    decide_first(c, "accept")  # the decision stands (the record is the truth)
    assert c.records.get(AssetKey("acme", "a.jpg"))[0].revision == 2
    published.fail = lambda: False
    counts = c.outbound.repair_tenant("acme")
    assert (counts.checked, counts.published) == (1, 1)
    assert [e["revision"] for e in published.events] == [1, 2]
    assert c.outbound.repair_tenant("acme").published == 0  # nothing left to repair


def test_changes_of_an_unpublished_revision_are_carried_into_the_next(wired) -> None:
    c, published = wired
    train_colours(c, threshold=0.99)
    published.fail = lambda: True
    c.ingest.ingest([upload(c, "acme/a.jpg", solid_jpeg(COLOURS["red"]))])  # rev 1 unpublished
    published.fail = lambda: False
    decide_first(c, "accept")  # rev 2
    [event] = published.events
    assert event["revision"] == 2
    [change] = [x for x in event["changes"] if x["after"] == "confirmed"]
    assert change["before"] is None  # from before revision 1: nothing lost between the two


def test_with_nothing_turned_on_the_hook_costs_no_request(components: Components) -> None:
    train_colours(components)
    components.ingest.ingest([upload(components, "acme/a.jpg", solid_jpeg(COLOURS["red"]))])
    r = components.records.get(AssetKey("acme", "a.jpg"))[0]
    calls = []
    store = components.store
    original = store.get
    store.get = lambda *a, **k: calls.append(a) or original(*a, **k)  # type: ignore[method-assign]
    assert components.outbound.after_write([replace(r, published_revision=0)]) == {}
    assert calls == []  # tenant settings are cached from the ingest; no publish, no stamp


# --- object tags ---------------------------------------------------------------------------------
def test_object_tags_keep_the_users_keys_and_fit_s3s_limits() -> None:
    many = [ai(f"m{i:02d}", "x") for i in range(12)]
    theirs = {"owner": "ana", "project": "spring", "tagsmith:old": "gone"}
    tags = object_tags(record(*many, revision=7), theirs)
    assert len(tags) == MAX_TAGS
    assert {k: tags[k] for k in ("owner", "project")} == {"owner": "ana", "project": "spring"}
    assert "tagsmith:old" not in tags and tags["tagsmith:revision"] == "7"
    assert tags["tagsmith:more"].split() == [
        f"m{i:02d}" for i in range(6, 12)
    ]  # 2 theirs + 6 models + more + revision
    long = [ai("sku", f"tag-{i:03d}-{'x' * 20}", confidence=1 - i / 100) for i in range(20)]
    value = object_tags(record(*long), {})["tagsmith:sku"]
    assert len(value) <= MAX_VALUE and value.endswith(
        " +12"
    )  # 8 tags of 28 characters fit and value.startswith("tag-000")
    full = {f"k{i}": "v" for i in range(MAX_TAGS)}
    assert object_tags(record(ai("sku", "milk")), full) == full  # no room: nothing of ours


def test_object_tags_follow_the_record_and_leave_alone_what_they_do_not_own(wired) -> None:
    c, _ = wired
    tagging = MemoryObjectTagging()
    c.outbound.tagging = tagging
    c.store.put("data-bucket", tenant_settings_key("acme"), b'{"outputs": {"object_tags": true}}')
    tagging.tags[("assets-bucket", "acme/a.jpg")] = {"owner": "ana"}
    train_colours(c)
    c.ingest.ingest([upload(c, "acme/a.jpg", solid_jpeg(COLOURS["blue"]))])
    r = c.records.get(AssetKey("acme", "a.jpg"))[0]
    [visible] = r.visible_tags()
    assert tagging.tags[("assets-bucket", "acme/a.jpg")] == {
        "owner": "ana", "tagsmith:colour": visible.tag, "tagsmith:revision": str(r.revision),
    }  # fmt: skip


# --- sidecars ------------------------------------------------------------------------------------
def test_sidecars_keep_keywords_we_did_not_write_and_label_in_every_language() -> None:
    import pyexiv2

    first = sidecar_xmp(None, record(ai("sku", "oat-milk")), languages=["en", "fr"])
    image = pyexiv2.ImageData(first)
    image.clear_iptc()
    image.modify_xmp({"Xmp.dc.subject": ["oat milk", "shot by ana"]})  # a person adds a keyword
    edited = image.get_bytes()
    image.close()
    second = sidecar_xmp(edited, record(ai("sku", "soy"), revision=2), languages=["en"])
    assert read_keywords(second) == (["shot by ana", "soy"], ["sku|soy"])
    assert b'xml:lang="fr"' in first and b"<rdf:Bag>" in first


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is installed by `make exiftool`")
def test_exiftool_reads_the_sidecars_keywords_and_labels(tmp_path: Path) -> None:
    from tagsmith.taxonomy import Taxonomy

    taxonomy = Taxonomy.from_dict(
        {"tags": [{"id": "oat-milk", "labels": {"en": "oat drink", "fr": "boisson à l'avoine"}}]}
    )
    path = tmp_path / "a.jpg.xmp"
    path.write_bytes(
        sidecar_xmp(None, record(ai("sku", "oat-milk")), taxonomies={"sku": taxonomy}, languages=["en", "fr"])
    )
    [meta] = json.loads(
        subprocess.run(
            ["exiftool", "-j", "-lang", "fr", "-XMP:all", str(path)], capture_output=True, check=True
        ).stdout
    )
    assert meta["Subject"] == ["oat drink", "boisson à l'avoine"]
    assert meta["HierarchicalSubject"] == "sku|oat-milk"
    [meta] = json.loads(
        subprocess.run(
            ["exiftool", "-j", "-XMP-tagsmith:all", str(path)], capture_output=True, check=True
        ).stdout
    )
    assert meta["TagsLabel-fr"] == "boisson à l'avoine"


def test_a_deleted_assets_sidecar_goes_when_only_ours_was_in_it(wired) -> None:
    c, _ = wired
    c.store.put("data-bucket", tenant_settings_key("acme"), b'{"outputs": {"sidecars": true}}')
    train_colours(c)
    c.ingest.ingest([upload(c, "acme/a.jpg", solid_jpeg(COLOURS["red"]))])
    assert c.store.head("data-bucket", sidecar_key("acme", "a.jpg")) is not None
    from tagsmith.deletion import DeletionService
    from tagsmith.events import ObjectRef

    c.store.delete("assets-bucket", "acme/a.jpg")
    DeletionService.from_components(c).remove([ObjectRef("assets-bucket", "acme/a.jpg", removed=True)])
    assert c.store.head("data-bucket", sidecar_key("acme", "a.jpg")) is None


# --- export --------------------------------------------------------------------------------------
def test_export_writes_every_format_and_resumes_after_an_interruption(wired, tmp_path: Path) -> None:
    c, _ = wired
    train_colours(c)
    for i in range(5):
        c.ingest.ingest([upload(c, f"acme/p{i}.jpg", solid_jpeg(COLOURS["red"], seed=i))])
    out = tmp_path / "tags.jsonl"
    seen = []

    def stop_after_three(n: int) -> None:
        seen.append(n)
        if n == 3:
            raise KeyboardInterrupt

    import tagsmith.outbound.export as export

    export.CHECKPOINT_EVERY = 1
    try:
        with pytest.raises(KeyboardInterrupt):
            export_tenant(
                c.records, "acme", "jsonl", out, taxonomies={}, languages=["en"], progress=stop_after_three
            )
        result = export_tenant(c.records, "acme", "jsonl", out, taxonomies={}, languages=["en"])
    finally:
        export.CHECKPOINT_EVERY = 200
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [e["path"] for e in lines] == [f"p{i}.jpg" for i in range(5)]  # each once, in order
    assert result.resumed_after == "p2.jpg" and result.assets == 2
    for e in lines:
        VALIDATOR.validate(e)
    exported = export_tenant(c.records, "acme", "csv", tmp_path / "t.csv", taxonomies={}, languages=["en"])
    with open(exported.out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and rows[0]["label_en"] == "red" and rows[0]["state"] == "applied"
    folder = export_tenant(c.records, "acme", "xmp", tmp_path / "xmp", taxonomies={}, languages=["en"]).out
    assert read_keywords((folder / "p0.jpg.xmp").read_bytes()) == (["red"], ["colour|red"])
