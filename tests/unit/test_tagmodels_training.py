"""Fitting heads with calibrated thresholds (tagsmith.tagmodels.training) and the model format."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tagsmith.errors import TrainingInputError
from tagsmith.records import TagState
from tagsmith.tagmodels import ModelKind, TagModel, fit_linear_head, route_prediction
from tagsmith.tagmodels.calibration import CalibrationSettings


def clusters(
    n_tags: int, per_tag: int, *, spread: float, dim: int = 32, seed: int = 0
) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_tags, dim))
    x = np.repeat(centres, per_tag, axis=0) + spread * rng.standard_normal((n_tags * per_tag, dim))
    # Unit rows, as encoders give them (TagModel.predict expects normalised embeddings).
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), [f"t{i:02d}" for i in range(n_tags) for _ in range(per_tag)]


def model_of(head, kind: ModelKind = ModelKind.EXCLUSIVE) -> TagModel:  # type: ignore[no-untyped-def]
    return TagModel(
        tenant="t",
        model_id="m",
        version="v",
        kind=kind,
        encoder_id="synthetic",
        tags=head.tags,
        coef=head.coef,
        intercept=head.intercept,
        thresholds=head.thresholds_or(0.8),
    )


def applied(model: TagModel, x: np.ndarray) -> np.ndarray:
    return np.array(
        [any(a.state is TagState.APPLIED for a in route_prediction(model, p)) for p in model.predict(x)]
    )


def test_exclusive_head_learns_separable_tags_and_applies_them() -> None:
    x, y = clusters(6, 10, spread=0.3)
    head = fit_linear_head(x, y, kind=ModelKind.EXCLUSIVE)
    assert head.tags == tuple(sorted(set(y))) and head.cv_accuracy == 1.0
    assert head.oof_probabilities is not None and head.oof_probabilities.shape == (60, 6)
    test_x, test_y = clusters(6, 5, spread=0.3, seed=0)
    model = model_of(head)
    assert (np.array(model.tags)[model.predict(test_x).argmax(1)] == np.array(test_y)).all()
    assert applied(model, test_x).mean() > 0.9


def test_thresholds_hold_back_confusable_tags() -> None:
    # GIVEN two tags that overlap heavily and eighteen that are clean (40 photos each: 30 to train on)
    x, y = clusters(20, 40, spread=0.3, seed=1)
    x[40:80] = x[:40] + 0.01 * np.random.default_rng(2).standard_normal((40, 32)).astype(np.float32)
    train = np.arange(len(y)) % 40 < 30
    labels = np.array(y)
    # (never-seen products are another rule's business: let them all through here)
    settings = CalibrationSettings(never_seen_pass=1.0)
    head = fit_linear_head(x[train], list(labels[train]), kind=ModelKind.EXCLUSIVE, settings=settings)
    assert head.thresholds is not None
    # THEN the confusable pair needs at least as much confidence as any other tag, and new photos
    # of it are never auto-applied, while the clean tags' mostly are
    assert min(head.thresholds[:2]) >= max(head.thresholds[2:])
    model = model_of(head)
    pair = np.isin(labels, head.tags[:2]) & ~train
    clean = ~np.isin(labels, head.tags[:2]) & ~train
    assert not applied(model, x[pair]).any()
    assert applied(model, x[clean]).mean() > 0.5
    assert head.calibration["target_precision"] == 0.98
    assert head.calibration["cv_precision"] is None or head.calibration["cv_precision"] >= 0.98


def test_target_precision_is_configurable() -> None:
    x, y = clusters(8, 8, spread=1.2, seed=3)
    strict = fit_linear_head(x, y, kind=ModelKind.EXCLUSIVE, target_precision=0.99)
    loose = fit_linear_head(x, y, kind=ModelKind.EXCLUSIVE, target_precision=0.6)
    assert strict.thresholds is not None and loose.thresholds is not None
    assert (strict.thresholds >= loose.thresholds).all() and (strict.thresholds > loose.thresholds).any()


def test_photos_of_unseen_tags_are_not_auto_applied() -> None:
    # GIVEN a model trained on 10 of 20 tags
    x, y = clusters(20, 8, spread=0.6, seed=4)
    seen = np.array([int(t[1:]) < 10 for t in y])
    head = fit_linear_head(x[seen], [t for t, s in zip(y, seen, strict=True) if s], kind=ModelKind.EXCLUSIVE)
    # WHEN it tags photos of the other 10
    unseen_x, unseen_y = clusters(20, 4, spread=0.6, seed=4)
    mask = np.array([int(t[1:]) >= 10 for t in unseen_y])
    # THEN (almost) none is auto-applied
    assert applied(model_of(head), unseen_x[mask]).mean() <= 0.05


def test_without_enough_examples_to_cross_validate_there_are_no_thresholds() -> None:
    x, y = clusters(3, 1, spread=0.1)
    head = fit_linear_head(x, y, kind=ModelKind.EXCLUSIVE)
    assert head.thresholds is None and head.cv_accuracy is None
    assert head.thresholds_or(0.8).tolist() == pytest.approx([0.8, 0.8, 0.8])


def test_exclusive_needs_two_tags() -> None:
    x, _ = clusters(1, 4, spread=0.1)
    with pytest.raises(TrainingInputError, match="at least 2 tags"):
        fit_linear_head(x, ["a"] * 4, kind=ModelKind.EXCLUSIVE)


def test_multilabel_head_calibrates_each_tag() -> None:
    x, y = clusters(4, 10, spread=0.3, seed=5)
    labels = [frozenset({t, "even"} if int(t[1:]) % 2 == 0 else {t}) for t in y]
    head = fit_linear_head(x, labels, kind=ModelKind.MULTILABEL)
    assert "even" in head.tags and head.thresholds is not None and head.thresholds.shape == (5,)
    assert head.oof_probabilities is not None and head.oof_probabilities.shape == (40, 5)
    model = model_of(head, ModelKind.MULTILABEL)
    got = {a.tag for a in route_prediction(model, model.predict(x[:1])[0]) if a.state is TagState.APPLIED}
    assert got <= {"t00", "even"}


def test_model_json_keeps_target_precision_and_reads_older_models() -> None:
    model = TagModel.example()
    model_json, weights = model.to_files()
    meta = json.loads(model_json)
    assert meta["target_precision"] == 0.98
    del meta["target_precision"]  # as written before calibration existed
    old = TagModel.from_files(json.dumps(meta).encode(), weights)
    assert old.target_precision == 0.98 and old.thresholds.tolist() == pytest.approx([0.9, 0.9])
