"""Document shaping: which tags and labels of a record reach the search index."""

from __future__ import annotations

import hashlib
import json

import pytest
from tagsmith.errors import InvalidKeyError
from tagsmith.records import (
    NONE_TAG,
    AssetRecord,
    AssetStatus,
    Failure,
    Source,
    SourceObject,
    TagAssignment,
    TagState,
)
from tagsmith.search import LANGUAGES, doc_id, document_from_record
from tagsmith.search.documents import doc_id_for_key
from tagsmith.taxonomy import TagDefinition, Taxonomy

GARMENTS = Taxonomy(
    (
        TagDefinition(
            "scarf",
            labels={"en": "scarf", "fr": "écharpe", "de": "Schal", "ja": "マフラー"},
            synonyms={"en": ("muffler",), "fr": ("foulard",), "pt": ("cachecol",)},
        ),
        TagDefinition("hat", labels={"en": "hat", "fr": "chapeau"}),
        TagDefinition("glove", labels={"en": "glove", "fr": "gant"}),
        TagDefinition("coat", labels={"en": "coat", "fr": "manteau"}),
        TagDefinition("no-label-tag"),
    )
)


def tag(
    name: str, state: TagState, *, model: str = "garments", confidence: float | None = 0.9
) -> TagAssignment:
    source = Source.HUMAN if state in (TagState.CONFIRMED, TagState.REJECTED) else Source.AI
    return TagAssignment(model, name, state, source, confidence=confidence, model_version="3")


def record(*tags: TagAssignment, **kw: object) -> AssetRecord:
    defaults: dict[str, object] = {
        "media_type": "image/jpeg",
        "width": 40,
        "height": 30,
        "models": {"garments": "3"},
        "created_at": "2026-11-22T06:10:00.000Z",
        "updated_at": "2026-11-22T06:11:00.000Z",
    }
    defaults.update(kw)
    return AssetRecord(
        "acme",
        "2026/shoot/IMG_1.jpg",
        SourceObject("assets", "acme/2026/shoot/IMG_1.jpg", "etag", 1234),
        AssetStatus.TAGGED,
        tags=tags,
        **defaults,  # type: ignore[arg-type]
    )


def all_label_words(doc: dict) -> set[str]:
    return {w for words in doc.get("labels", {}).values() for w in words}


def test_document_from_record_visible_tags_give_labels_in_each_language() -> None:
    doc = document_from_record(record(tag("scarf", TagState.APPLIED)), {"garments": GARMENTS})

    assert doc["labels"]["fr"] == ["écharpe", "foulard"]
    assert doc["labels"]["en"] == ["scarf", "muffler"]
    assert doc["labels"]["de"] == ["Schal"]
    assert doc["labels"]["ja"] == ["マフラー"]
    assert doc["tag_ids"] == ["garments/scarf"]


def test_document_from_record_falls_back_to_english_label_then_readable_id() -> None:
    doc = document_from_record(
        record(tag("hat", TagState.CONFIRMED), tag("no-label-tag", TagState.APPLIED)), {"garments": GARMENTS}
    )

    assert doc["labels"]["de"] == ["hat", "no label tag"]  # German: no label -> English, else id
    assert doc["labels"]["fr"] == ["chapeau", "no label tag"]
    assert doc["labels"]["zh"] == ["hat", "no label tag"]


def test_document_from_record_english_synonyms_do_not_leak_into_other_languages() -> None:
    doc = document_from_record(record(tag("scarf", TagState.APPLIED)), {"garments": GARMENTS})

    assert "muffler" not in doc["labels"]["de"]
    assert "muffler" in doc["labels"]["folded"]


def test_document_from_record_folded_labels_include_languages_without_a_field() -> None:
    doc = document_from_record(record(tag("scarf", TagState.APPLIED)), {"garments": GARMENTS})

    assert "cachecol" in doc["labels"]["folded"]  # Portuguese synonym: no labels.pt field
    assert set(doc["labels"]) == {*LANGUAGES, "folded"}


@pytest.mark.parametrize("state", [TagState.REVIEW, TagState.REJECTED])
def test_document_from_record_review_and_rejected_tags_give_no_labels(state: TagState) -> None:
    doc = document_from_record(
        record(tag("hat", TagState.APPLIED), tag("glove", state)), {"garments": GARMENTS}
    )

    assert "gant" not in all_label_words(doc)
    assert "glove" not in all_label_words(doc)
    assert doc["tag_ids"] == ["garments/hat"]
    # ...but the assignment itself stays visible to the review UI
    assert {"model": "garments", "tag": "glove", "state": state.value} in [
        {k: t[k] for k in ("model", "tag", "state")} for t in doc["tags"]
    ]


def test_document_from_record_none_tag_is_not_a_label_or_tag_id() -> None:
    none = TagAssignment("garments", NONE_TAG, TagState.CONFIRMED, Source.HUMAN)
    doc = document_from_record(record(none), {"garments": GARMENTS})

    assert doc["tag_ids"] == []
    assert all_label_words(doc) == set()
    assert doc["human_confirmed_count"] == 0
    assert "max_confidence" not in doc


def test_document_from_record_review_state_pending_only_while_a_tag_awaits_review() -> None:
    pending = document_from_record(record(tag("hat", TagState.REVIEW)), {})
    clear = document_from_record(record(tag("hat", TagState.APPLIED), tag("coat", TagState.REJECTED)), {})

    assert pending["review_state"] == "pending"
    assert clear["review_state"] == "clear"


def test_document_from_record_confidence_summaries_use_visible_tags_and_count_humans_as_sure() -> None:
    doc = document_from_record(
        record(
            tag("hat", TagState.APPLIED, confidence=0.81),
            tag("coat", TagState.REVIEW, confidence=0.99),  # not visible: ignored
            tag("glove", TagState.CONFIRMED, confidence=None),
        ),
        {},
    )
    ai_only = document_from_record(record(tag("hat", TagState.APPLIED, confidence=0.81)), {})

    assert doc["max_confidence"] == 1.0
    assert doc["human_confirmed_count"] == 1
    assert ai_only["max_confidence"] == 0.81


def test_document_from_record_unknown_model_is_searchable_by_its_tag_id() -> None:
    doc = document_from_record(record(tag("oat-milk", TagState.APPLIED, model="drinks")), {})

    assert doc["labels"]["en"] == ["oat milk"]
    assert doc["tag_ids"] == ["drinks/oat-milk"]
    assert doc["models"] == ["drinks", "garments"]


def test_document_from_record_carries_asset_fields() -> None:
    doc = document_from_record(record(), {})

    assert doc == {
        "tenant": "acme",
        "asset_key": "acme/2026/shoot/IMG_1.jpg",
        "path": "2026/shoot/IMG_1.jpg",
        "media_type": "image/jpeg",
        "size": 1234,
        "width": 40,
        "height": 30,
        "uploaded_at": "2026-11-22T06:10:00.000Z",
        "updated_at": "2026-11-22T06:11:00.000Z",
        "status": "tagged",
        "tags": [],
        "tag_ids": [],
        "models": ["garments"],
        "review_state": "clear",
        "human_confirmed_count": 0,
        "labels": {},
    }
    json.dumps(doc)  # documents go over the wire as JSON


def test_document_from_record_failed_asset_has_failure_code() -> None:
    failed = AssetRecord(
        "acme",
        "x.bin",
        SourceObject("assets", "acme/x.bin", "e", 0),
        AssetStatus.FAILED,
        failure=Failure("unsupported_media", "not an image"),
    )

    doc = document_from_record(failed, {})

    assert (doc["status"], doc["failure_code"]) == ("failed", "unsupported_media")


def test_document_from_record_rejects_an_invalid_tenant() -> None:
    bad = AssetRecord("Not A Tenant", "a.jpg", SourceObject("b", "k", "e", 1), AssetStatus.TAGGED)

    with pytest.raises(InvalidKeyError):
        document_from_record(bad, {})


def test_doc_id_is_stable_sha1_of_the_asset_key() -> None:
    first = doc_id(record(tag("hat", TagState.APPLIED)))
    again = doc_id(record())

    assert first == again == doc_id_for_key("acme/2026/shoot/IMG_1.jpg")
    assert first == hashlib.sha1(b"acme/2026/shoot/IMG_1.jpg").hexdigest()
    assert first != doc_id_for_key("acme/2026/shoot/IMG_2.jpg")
