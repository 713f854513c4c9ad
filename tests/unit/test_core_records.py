"""Asset records and the human-first merge rule."""

from __future__ import annotations

import pytest
from tagsmith.errors import InvalidInputError
from tagsmith.records import (
    NONE_TAG,
    Alternative,
    AssetRecord,
    AssetStatus,
    Failure,
    Source,
    SourceObject,
    TagAssignment,
    TagState,
    merge_tags,
)


def ai(
    tag: str, state: TagState = TagState.APPLIED, model: str = "sku", conf: float = 0.9, **kw
) -> TagAssignment:
    return TagAssignment(model, tag, state, Source.AI, confidence=conf, model_version="v2", **kw)


def human(tag: str, state: TagState, model: str = "sku") -> TagAssignment:
    return TagAssignment(model, tag, state, Source.HUMAN, decided_by="ana", decided_at="2026-11-22T00:00:00Z")


def test_merge_keeps_a_confirmed_tag_the_model_no_longer_proposes() -> None:
    merged = merge_tags([human("milk", TagState.CONFIRMED)], [], models_run={"sku"})
    assert [(t.tag, t.state) for t in merged] == [("milk", TagState.CONFIRMED)]


def test_merge_never_reapplies_a_rejected_tag() -> None:
    merged = merge_tags([human("milk", TagState.REJECTED)], [ai("milk")], models_run={"sku"})
    assert [(t.tag, t.state, t.source) for t in merged] == [("milk", TagState.REJECTED, Source.HUMAN)]


def test_merge_drops_rejected_tags_from_alternatives() -> None:
    proposal = ai(
        "juice", TagState.REVIEW, conf=0.5, alternatives=(Alternative("milk", 0.4), Alternative("oat", 0.1))
    )
    merged = merge_tags([human("milk", TagState.REJECTED)], [proposal], models_run={"sku"})
    review = next(t for t in merged if t.state is TagState.REVIEW)
    assert [a.tag for a in review.alternatives] == ["oat"]


def test_merge_silences_an_exclusive_model_once_a_human_chose() -> None:
    merged = merge_tags(
        [human("milk", TagState.CONFIRMED)], [ai("juice")], models_run={"sku"}, exclusive_models={"sku"}
    )
    assert [t.tag for t in merged] == ["milk"]


def test_merge_lets_a_multilabel_model_add_other_tags_beside_a_human_one() -> None:
    merged = merge_tags(
        [human("logo", TagState.CONFIRMED, "marks")], [ai("outdoor", model="marks")], models_run={"marks"}
    )
    assert sorted(t.tag for t in merged) == ["logo", "outdoor"]


def test_merge_honours_none_of_these_for_an_exclusive_model() -> None:
    merged = merge_tags(
        [human(NONE_TAG, TagState.CONFIRMED)], [ai("juice")], models_run={"sku"}, exclusive_models={"sku"}
    )
    assert [t.tag for t in merged] == [NONE_TAG]
    assert merged[0].is_visible is False


def test_merge_replaces_ai_tags_of_models_that_ran_and_keeps_the_others() -> None:
    existing = [ai("old", model="sku"), ai("studio", model="shot")]
    merged = merge_tags(existing, [ai("new", model="sku")], models_run={"sku"})
    assert sorted((t.model, t.tag) for t in merged) == [("shot", "studio"), ("sku", "new")]


def test_record_round_trips_through_json() -> None:
    record = AssetRecord(
        tenant="acme",
        path="a/b é.jpg",
        source=SourceObject("assets", "acme/a/b é.jpg", "e1", 10),
        status=AssetStatus.TAGGED,
        tags=(ai("milk", alternatives=(Alternative("oat", 0.1),)), human("juice", TagState.REJECTED)),
        models={"sku": "v2"},
    )
    assert AssetRecord.from_json(record.to_json()) == record


def test_failed_record_round_trips_with_its_reason() -> None:
    record = AssetRecord(
        tenant="acme",
        path="x.jpg",
        source=SourceObject("assets", "acme/x.jpg", "e", 0),
        status=AssetStatus.FAILED,
        failure=Failure("empty_object", "empty object: 0 bytes"),
    )
    again = AssetRecord.from_json(record.to_json())
    assert again.failure == Failure("empty_object", "empty object: 0 bytes")


def test_record_from_garbage_says_what_is_wrong() -> None:
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        AssetRecord.from_json(b'{"tenant": "acme"}')
