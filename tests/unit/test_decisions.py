"""The pure core of review decisions: tags in, tags out; the latest human decision wins."""

from __future__ import annotations

import pytest
from tagsmith.decisions import Action, Decision, apply_decision, next_question, stale_reasons
from tagsmith.errors import InvalidInputError
from tagsmith.records import (
    NONE_TAG,
    Alternative,
    AssetRecord,
    AssetStatus,
    Source,
    SourceObject,
    TagAssignment,
    TagState,
    merge_tags,
)
from tagsmith.review import ReviewItem

WHEN = "2026-11-22T06:00:00.000Z"


def ai(
    tag: str, state: TagState = TagState.REVIEW, *, model: str = "sku", confidence: float = 0.55
) -> TagAssignment:
    return TagAssignment(
        model,
        tag,
        state,
        Source.AI,
        confidence=confidence,
        model_version="v1",
        threshold=0.8,
        alternatives=(Alternative("juice", 0.3),) if state is TagState.REVIEW else (),
    )


def decide(
    action: Action,
    suggestion: str = "milk",
    *,
    model: str = "sku",
    tag: str | None = None,
    by: str = "ana",
    proposed: tuple[str, ...] = (),
) -> Decision:
    return Decision(
        action, model=model, suggestion=suggestion, decided_by=by, decided_at=WHEN, tag=tag, proposed=proposed
    )


def states(tags: tuple[TagAssignment, ...]) -> list[tuple[str, str, str]]:
    return [(t.model, t.tag, t.state.value) for t in tags]


def test_accept_confirms_the_suggestion_with_provenance() -> None:
    [tag] = apply_decision([ai("milk")], decide(Action.ACCEPT), exclusive=True)
    assert (tag.tag, tag.state, tag.source, tag.decided_by, tag.decided_at) == (
        "milk",
        TagState.CONFIRMED,
        Source.HUMAN,
        "ana",
        WHEN,
    )
    assert (tag.confidence, tag.model_version) == (0.55, "v1")  # what the model said, kept for the record
    assert tag.alternatives == ()


def test_reject_marks_the_suggestion_rejected_and_hides_it() -> None:
    [tag] = apply_decision([ai("milk")], decide(Action.REJECT), exclusive=True)
    assert (tag.state, tag.source, tag.is_visible) == (TagState.REJECTED, Source.HUMAN, False)


def test_pick_rejects_the_suggestion_and_confirms_the_picked_tag() -> None:
    tags = apply_decision([ai("milk")], decide(Action.PICK, tag="juice"), exclusive=True)
    assert states(tags) == [("sku", "juice", "confirmed"), ("sku", "milk", "rejected")]


def test_picking_the_suggestion_itself_is_an_accept() -> None:
    tags = apply_decision([ai("milk")], decide(Action.PICK, tag="milk"), exclusive=True)
    assert states(tags) == [("sku", "milk", "confirmed")]


def test_none_of_these_on_an_exclusive_model_confirms_the_none_tag() -> None:
    tags = apply_decision([ai("milk")], decide(Action.NONE), exclusive=True)
    assert states(tags) == [("sku", NONE_TAG, "confirmed")]
    assert not any(t.is_visible for t in tags)


def test_none_of_these_on_a_multilabel_model_rejects_every_proposed_tag() -> None:
    tags = apply_decision(
        [ai("logo", model="flags"), ai("outdoor", model="flags")],
        decide(Action.NONE, "logo", model="flags", proposed=("outdoor",)),
        exclusive=False,
    )
    assert states(tags) == [("flags", "logo", "rejected"), ("flags", "outdoor", "rejected")]


def test_a_confirmation_settles_an_exclusive_model_and_replaces_an_earlier_choice() -> None:
    earlier = apply_decision([ai("milk")], decide(Action.ACCEPT), exclusive=True)
    later = apply_decision(earlier, decide(Action.PICK, tag="juice", by="bo"), exclusive=True)
    assert states(later) == [("sku", "juice", "confirmed"), ("sku", "milk", "rejected")]
    assert [t.decided_by for t in later] == ["bo", "bo"]


def test_a_decision_never_touches_other_models() -> None:
    other = ai("outdoor", TagState.APPLIED, model="scene", confidence=0.93)
    tags = apply_decision([ai("milk"), other], decide(Action.NONE), exclusive=True)
    assert other in tags


def test_deciding_twice_keeps_the_first_provenance() -> None:
    once = apply_decision([ai("milk")], decide(Action.ACCEPT), exclusive=True)
    again = apply_decision(
        once,
        Decision(
            Action.ACCEPT,
            model="sku",
            suggestion="milk",
            decided_by="bo",
            decided_at="2026-11-23T00:00:00.000Z",
        ),
        exclusive=True,
    )
    assert again == once


def test_decisions_survive_merge_tags_with_a_retrained_model() -> None:
    decided = apply_decision([ai("milk"), ai("logo", model="flags")], decide(Action.REJECT), exclusive=True)
    decided = apply_decision(decided, decide(Action.ACCEPT, "logo", model="flags"), exclusive=False)
    retrained = [ai("milk", TagState.APPLIED, confidence=0.97), ai("logo", TagState.REVIEW, model="flags")]
    merged = merge_tags(decided, retrained, models_run={"sku", "flags"}, exclusive_models={"sku"})
    assert states(merged) == [("flags", "logo", "confirmed"), ("sku", "milk", "rejected")]


@pytest.mark.parametrize(
    ("action", "tag", "message"),
    [
        (Action.PICK, None, "needs the tag"),
        (Action.ACCEPT, "juice", "only 'pick' takes a tag"),
        (Action.PICK, "../x", "invalid tag id"),
    ],
)
def test_malformed_decisions_are_refused_with_a_reason(action: Action, tag: str | None, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        decide(action, tag=tag)


def record_with(tags: tuple[TagAssignment, ...], *, etag: str = "e1", version: str = "v1") -> AssetRecord:
    return AssetRecord(
        tenant="acme",
        path="a.jpg",
        source=SourceObject("assets", "acme/a.jpg", etag, 10),
        status=AssetStatus.TAGGED,
        models={"sku": version, "flags": version},
        tags=tags,
    )


def item_for(
    suggestion: str = "milk",
    *,
    model: str = "sku",
    etag: str = "e1",
    version: str = "v1",
    alternatives: tuple[Alternative, ...] = (),
) -> ReviewItem:
    return ReviewItem(
        id="i1",
        tenant="acme",
        asset_path="a.jpg",
        model=model,
        model_version=version,
        suggestion=suggestion,
        confidence=0.55,
        threshold=0.8,
        alternatives=alternatives,
        asset_etag=etag,
    )


def test_stale_reasons_name_a_changed_asset_and_a_retrained_model() -> None:
    assert stale_reasons(item_for(), record_with(())) == []
    reasons = stale_reasons(item_for(etag="old", version="v0"), record_with(()))
    assert len(reasons) == 2
    assert "asset changed" in reasons[0] and "retrained" in reasons[1]


def test_next_question_reopens_a_multilabel_item_on_the_next_waiting_tag() -> None:
    record = record_with(
        (ai("logo", model="flags", confidence=0.4), ai("outdoor", model="flags", confidence=0.6))
    )
    item = item_for("outdoor", model="flags", alternatives=(Alternative("logo", 0.4),))
    decided = record_with(
        apply_decision(record.tags, decide(Action.ACCEPT, "outdoor", model="flags"), exclusive=False)
    )
    reopened = next_question(item, decided)
    assert reopened is not None and (reopened.suggestion, reopened.alternatives) == ("logo", ())
    assert next_question(item, record_with(())) is None
