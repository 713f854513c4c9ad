"""What a tenant controls about automation, and the review loop that raises it (issue 12):
precision targets without a fit, the promotion gate on shared evidence, retrains that keep every
example, "none of the trained tags", at most N tags per asset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tagsmith.decisions import CorrectionTracker
from tagsmith.errors import InvalidInputError
from tagsmith.examples import examples_from_folder
from tagsmith.keys import AssetKey
from tagsmith.records import NONE_TAG, AssetRecord, AssetStatus, Source, SourceObject, TagAssignment, TagState
from tagsmith.search.documents import document_from_record
from tagsmith.tagmodels import ModelKind, TagModel, route_prediction
from tagsmith.tagmodels.retarget import retarget
from tagsmith.trainer import TrainingService
from tagsmith.trainjobs import TrainingJobs
from tagsmith.wiring import Components

from tests.conftest import ASSETS, DATA
from tests.fakes import COLOURS, solid_jpeg
from tests.unit.test_trainer_versions import SabotagedService, examples


# --- precision targets without a fit ---------------------------------------------------------------
def test_changing_the_precision_target_recalibrates_without_a_fit(components: Components) -> None:
    # GIVEN an active model trained at the default 98%
    first = components.trainer.train(tenant="acme", model_id="colour", examples=examples(8))
    fits: list[int] = []
    original_fit = TrainingService._fit

    def counting_fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        fits.append(1)
        return original_fit(self, *args, **kwargs)

    TrainingService._fit = counting_fit  # type: ignore[method-assign]
    try:
        # WHEN the tenant asks for 90% instead
        loose = retarget(components.models, "acme", "colour", target=0.9, by="ana")
    finally:
        TrainingService._fit = original_fit  # type: ignore[method-assign]
    # THEN a new version is active with thresholds chosen again from the stored evidence, no fit ran
    assert fits == []
    active = components.models.load_active("acme", "colour")
    assert active is not None and active.version == loose.version != first.version
    before = components.models.load_version("acme", "colour", first.version)
    assert active.target_precision == 0.9 and before.target_precision == 0.98
    assert np.array_equal(active.coef, before.coef)  # the same weights
    assert (active.thresholds <= before.thresholds).all()
    assert active.metrics["retargeted_from"] == first.version
    # its examples travel with it (a retrain after review starts from them) and the reason is kept
    assert components.models.training_order(
        "acme", "colour", active.version
    ) == components.models.training_order("acme", "colour", first.version)
    pointer = json.loads(components.store.get(DATA, "tenants/acme/models/colour/active.json").body)
    assert "precision target 98% -> 90%" in pointer["reason"] and "no fit" in pointer["reason"]


def test_a_stricter_target_applies_less(components: Components) -> None:
    components.trainer.train(tenant="acme", model_id="colour", examples=examples(8))
    loose = retarget(components.models, "acme", "colour", target=0.9)
    strict = retarget(components.models, "acme", "colour", target=0.995)
    assert (strict.thresholds >= loose.thresholds).all()
    assert strict.metrics["calibration"]["cv_coverage"] <= loose.metrics["calibration"]["cv_coverage"]


def test_a_target_outside_reason_is_refused_with_what_is_allowed(components: Components) -> None:
    components.trainer.train(tenant="acme", model_id="colour", examples=examples(5))
    with pytest.raises(ValueError, match=r"between 0\.5 and 1"):
        retarget(components.models, "acme", "colour", target=98)
    with pytest.raises(InvalidInputError, match="multi-label"):
        retarget(components.models, "acme", "colour", max_tags=2)


# --- the promotion gate ------------------------------------------------------------------------------
def test_the_gate_never_promotes_a_version_worse_on_new_examples(components: Components) -> None:
    # GIVEN a good active version, and a retrain that swaps two tags, with new photos to score on
    first = components.trainer.train(tenant="acme", model_id="colour", examples=examples(5))
    sabotaged = SabotagedService(tagger=components.tagger, models=components.models)
    second = sabotaged.train(tenant="acme", model_id="colour", examples=examples(5) + examples(4, seed=70))
    # THEN the new photos, scored by each version without having trained on them, refuse it
    assert second.promotion is not None and not second.promotion.promoted
    assert "12 examples added since it" in second.promotion.reason
    assert components.models.active_version("acme", "colour") == first.version


def test_the_gate_never_promotes_a_version_worse_on_the_examples_both_trained_on(
    components: Components,
) -> None:
    # GIVEN a good active version, and a retrain on exactly the same examples (no new evidence)
    first = components.trainer.train(tenant="acme", model_id="colour", examples=examples(5))
    sabotaged = SabotagedService(tagger=components.tagger, models=components.models)
    second = sabotaged.train(tenant="acme", model_id="colour", examples=examples(5))
    # THEN both versions' cross-validation on those examples decides, and the worse one stays out
    assert second.promotion is not None and not second.promotion.promoted
    assert "cross-validation on the 15 examples both were trained on" in second.promotion.reason
    assert components.models.active_version("acme", "colour") == first.version


def test_the_gate_promotes_an_honest_retrain_on_the_same_evidence(components: Components) -> None:
    components.trainer.train(tenant="acme", model_id="colour", examples=examples(5))
    again = components.trainer.train(
        tenant="acme", model_id="colour", examples=examples(5) + examples(2, seed=40)
    )
    assert again.promotion is not None and again.promotion.promoted, again.promotion
    # the new photos decide: each scored by a model trained on everything else, as the active one is
    assert "6 examples added since it (neither was trained on them)" in again.promotion.reason
    assert again.promotion.held_out == 6


# --- retrains keep every example ----------------------------------------------------------------------
def test_a_cli_trained_models_retrain_includes_its_original_examples(
    components: Components, tmp_path: Path
) -> None:
    # GIVEN a model trained from a folder on someone's machine (no training request names it)
    folder = tmp_path / "examples"
    for name, rgb in COLOURS.items():
        (folder / name).mkdir(parents=True)
        for i in range(5):
            (folder / name / f"{i}.jpg").write_bytes(solid_jpeg(rgb, noise=25, seed=i))
    found, _ = examples_from_folder(folder)
    first = components.trainer.train(tenant="acme", model_id="colour", examples=found)
    shutil.rmtree(folder)  # ... which is gone by the time reviewers have answered
    # AND a reviewer confirmed one upload's tag
    photo = solid_jpeg(COLOURS["red"], noise=25, seed=99)
    components.store.put(ASSETS, "acme/up/new.jpg", photo)
    import hashlib

    record = AssetRecord(
        "acme", "up/new.jpg", SourceObject(ASSETS, "acme/up/new.jpg", "e1", len(photo)), AssetStatus.TAGGED,
        content_sha256=hashlib.sha256(photo).hexdigest(),
        tags=(TagAssignment("colour", "red", TagState.CONFIRMED, Source.HUMAN, decided_by="ana"),),
    )  # fmt: skip
    components.records.update(AssetKey("acme", "up/new.jpg"), lambda _: record)
    # WHEN the retrain the corrections trigger runs
    tracker = CorrectionTracker(store=components.store, data_bucket=DATA, models=components.active_models)
    request = tracker.request_retrain("acme", "colour")
    jobs = TrainingJobs(
        store=components.store, data_bucket=DATA, trainer=components.trainer, records=components.records,
        assets_bucket=ASSETS,
    )  # fmt: skip
    status = jobs.run(request["key"])
    # THEN it trained on the 15 original photos (from the copies the trainer kept) and the answer
    assert status["state"] == "trained", status
    assert sum(status["report"]["examples_per_tag"].values()) == 15 + 1
    assert status["report"]["promotion"]["compared_with"] == first.version


# --- "none of the trained tags" and tags per asset ------------------------------------------------
def test_a_photo_far_from_every_tag_is_proposed_as_none_of_the_trained_tags() -> None:
    model = TagModel.example()
    from dataclasses import replace

    model = replace(model, none_below=0.7)
    [routed] = route_prediction(model, np.array([0.6, 0.4]))
    assert (routed.tag, routed.state) == (NONE_TAG, TagState.REVIEW)
    assert [a.tag for a in routed.alternatives] == ["a", "b"]  # the best guesses, for the reviewer
    [sure] = route_prediction(model, np.array([0.95, 0.05]))
    assert (sure.tag, sure.state) == ("a", TagState.APPLIED)
    # the record shows it and search can filter on it; it is never a visible tag
    record = AssetRecord(
        "acme", "x.jpg", SourceObject(ASSETS, "acme/x.jpg", "e", 1), AssetStatus.TAGGED, tags=(routed,)
    )
    doc = document_from_record(record, {})
    assert (doc["none_of"] == ["example"] and "tag_ids" not in doc) or doc["tag_ids"] == []


def test_a_multilabel_model_proposes_at_most_max_tags_most_confident_first() -> None:
    from dataclasses import replace

    model = replace(
        TagModel.example(), kind=ModelKind.MULTILABEL, tags=("a", "b"), thresholds=np.full(2, 0.5, np.float32)
    )
    both = route_prediction(model, np.array([0.7, 0.9]))
    assert [a.tag for a in both] == ["b", "a"]
    [one] = route_prediction(replace(model, max_tags=1), np.array([0.7, 0.9]))
    assert one.tag == "b"


def test_max_tags_round_trips_through_the_model_files() -> None:
    from dataclasses import replace

    model = replace(TagModel.example(), kind=ModelKind.MULTILABEL, max_tags=2, none_below=0.0)
    back = TagModel.from_files(*model.to_files())
    assert back.max_tags == 2


def test_train_says_what_uploads_can_expect_with_the_bound_it_rests_on() -> None:
    from dataclasses import replace

    from tagsmith.outlook import upload_outlook

    model = replace(
        TagModel.example(),
        metrics={
            "calibration": {
                "cv_coverage": 0.31,
                "cv_precision": 1.0,
                "cv_precision_lower": 0.953,
                "cv_applied": 62,
            }
        },
    )
    sentence = upload_outlook(model).sentence()
    assert sentence.startswith("about 31% of uploads will be tagged automatically")
    assert "at least 95% with 95% confidence, from 62 predictions" in sentence
