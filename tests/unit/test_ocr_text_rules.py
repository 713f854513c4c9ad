"""Text rules (data in the taxonomy, applied after routing) and OCR text features."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from tagsmith.errors import TrainingInputError
from tagsmith.ocr import normalise_text, text_features
from tagsmith.records import Alternative, Source, TagAssignment, TagState
from tagsmith.tagmodels import ModelKind, TagModel, route_prediction
from tagsmith.tagmodels.text_rules import apply_text_rules, match_text_rules
from tagsmith.taxonomy import TagDefinition, Taxonomy


def milk_model(kind: ModelKind = ModelKind.EXCLUSIVE) -> TagModel:
    tags = ("standard-milk", "lactose-free-milk", "oat-drink")
    taxonomy = Taxonomy(
        (
            TagDefinition("standard-milk", text_patterns=(r"\bSTANDARDMJ[ÖO]LK\b",)),
            TagDefinition("lactose-free-milk", text_patterns=("LAKTOSFRI|laktosfri",)),
            TagDefinition("oat-drink", text_patterns=(r"(?i)\bhavre|oat\b",)),
        )
    )
    return TagModel(
        tenant="acme", model_id="milk", version="v1", kind=kind, encoder_id="e", tags=tags,
        coef=np.zeros((3, 2), np.float32), intercept=np.zeros(3, np.float32),
        thresholds=np.full(3, 0.8, np.float32), taxonomy=taxonomy,
    )  # fmt: skip


def test_a_match_overrides_an_exclusive_models_uncertain_pick() -> None:
    model = milk_model()
    routed = route_prediction(model, np.array([0.55, 0.40, 0.05]))  # standard-milk, in review
    out = apply_text_rules(model, routed, "ARLA\nLAKTOSFRI\n1,5%")
    [a] = out
    assert (a.tag, a.state, a.matched_text, a.confidence) == (
        "lactose-free-milk",
        TagState.APPLIED,
        "LAKTOSFRI",
        0.4,
    )
    assert Alternative("standard-milk", 0.55) in a.alternatives


def test_two_tags_matched_in_an_exclusive_model_go_to_review() -> None:
    model = milk_model()
    routed = route_prediction(model, np.array([0.2, 0.3, 0.5]))
    [a] = apply_text_rules(model, routed, "LAKTOSFRI havredryck", np.array([0.2, 0.3, 0.5]))
    assert (a.tag, a.state) == ("oat-drink", TagState.REVIEW)
    assert [x.tag for x in a.alternatives] == ["lactose-free-milk"]


def test_multilabel_rules_add_tags_and_keep_the_others() -> None:
    model = milk_model(ModelKind.MULTILABEL)
    routed = route_prediction(model, np.array([0.9, 0.1, 0.1]))
    out = apply_text_rules(model, routed, "Oat drink")
    assert sorted((a.tag, a.state) for a in out) == [
        ("oat-drink", TagState.APPLIED),
        ("standard-milk", TagState.APPLIED),
    ]


def test_no_text_or_no_match_changes_nothing_and_other_models_pass_through() -> None:
    model = milk_model()
    other = TagAssignment("colour", "red", TagState.APPLIED, Source.AI, 0.9)
    routed = [*route_prediction(model, np.array([0.9, 0.05, 0.05])), other]
    assert apply_text_rules(model, routed, "") == routed
    assert apply_text_rules(model, routed, "MELLANMJÖLK") == routed
    assert other in apply_text_rules(model, routed, "LAKTOSFRI")


def test_match_text_rules_reports_what_was_read() -> None:
    assert [(m.tag, m.text) for m in match_text_rules(milk_model(), "Arla STANDARDMJOLK 3%")] == [
        ("standard-milk", "STANDARDMJOLK")
    ]


def test_taxonomy_keeps_text_patterns_and_rejects_bad_ones() -> None:
    d = {
        "tags": [
            {"id": "lactose-free-milk", "labels": {"en": "lactose-free milk"}, "text_patterns": ["LAKTOSFRI"]}
        ]
    }
    taxonomy = Taxonomy.from_dict(d)
    assert taxonomy.get("lactose-free-milk").text_patterns == ("LAKTOSFRI",)
    assert Taxonomy.from_json(taxonomy.to_json()) == taxonomy
    assert (
        "text_patterns" not in Taxonomy((TagDefinition("plain"),)).to_dict()["tags"][0]
    )  # old JSON unchanged
    with pytest.raises(TrainingInputError, match="not a valid regular expression"):
        Taxonomy.from_dict({"tags": [{"id": "x", "text_patterns": ["(unclosed"]}]})
    with pytest.raises(TrainingInputError, match="list of regular expressions"):
        Taxonomy.from_dict({"tags": [{"id": "x", "text_patterns": "LAKTOSFRI"}]})


def test_rules_survive_a_model_round_trip_through_its_files() -> None:
    model = milk_model()
    loaded = TagModel.from_files(*model.to_files())
    assert loaded.taxonomy.get("lactose-free-milk").text_patterns == ("LAKTOSFRI|laktosfri",)
    assert replace(loaded, taxonomy=model.taxonomy).tags == model.tags


def test_text_features_fold_case_and_accents_and_tolerate_ocr_slips() -> None:
    assert normalise_text("  MELLANMJÖLK\n1,5% ") == "mellanmjolk 1,5%"
    v = text_features(["MELLANMJÖLK", "mellanmjolk", "MELLANMJOLK 1,5%", "apelsinjuice", ""])
    assert np.allclose(v[0], v[1])
    assert v[0] @ v[2] > 0.6 > v[0] @ v[3]
    assert not v[4].any()
    assert np.allclose(np.linalg.norm(v[:4], axis=1), 1.0)
