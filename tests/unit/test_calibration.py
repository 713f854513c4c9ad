"""Auto-apply thresholds from out-of-fold evidence (tagsmith.tagmodels.calibration)."""

from __future__ import annotations

import numpy as np
import pytest
from tagsmith.tagmodels.calibration import (
    NEVER,
    CalibrationSettings,
    OutOfFold,
    calibrate_thresholds,
    never_seen_gate,
    novelty_level,
    pooled_threshold,
    precision_lower_bound,
)

PLAIN = CalibrationSettings(error_share=1.0, never_seen_pass=1.0, confusion_margin=1.0)


def known(
    tag: list[int], conf: list[float], correct: list[bool], truth: list[int] | None = None
) -> OutOfFold:
    return OutOfFold(
        np.array(tag),
        np.array(conf),
        np.array(correct),
        np.zeros(len(tag), bool),
        np.array(truth if truth is not None else [t if c else -1 for t, c in zip(tag, correct, strict=True)]),
    )


def test_pooled_threshold_is_the_lowest_cut_whose_applied_set_meets_the_target() -> None:
    conf = np.array([0.99, 0.97, 0.95, 0.90, 0.80])
    correct = np.array([True, True, True, False, True])
    assert pooled_threshold(conf, correct, precision=0.98) == pytest.approx(0.95)
    # Asking for less precision lets the wrong one through and everything below it.
    assert pooled_threshold(conf, correct, precision=0.75) == pytest.approx(0.80)


def test_a_wrong_prediction_at_the_top_counts_against_every_cut_without_vetoing_them() -> None:
    conf = np.array([0.99] + [0.9] * 0 + list(np.linspace(0.98, 0.7, 40)))
    correct = np.array([False] + [True] * 40)
    assert pooled_threshold(conf, correct, precision=0.95) == pytest.approx(0.7)
    assert pooled_threshold(np.array([0.99, 0.5]), np.array([False, True]), precision=0.9) == NEVER
    assert pooled_threshold(np.array([]), np.array([], dtype=bool), precision=0.9) == NEVER


def test_pooled_threshold_does_not_split_tied_confidences() -> None:
    conf = np.array([0.9, 0.9, 0.9])
    assert pooled_threshold(conf, np.array([True, False, True]), precision=0.98) == NEVER


def test_one_threshold_is_pooled_across_tags() -> None:
    # GIVEN two tags whose evidence alone would give different thresholds
    oof = known([0] * 4 + [1] * 4, [0.95, 0.9, 0.85, 0.8, 0.99, 0.97, 0.93, 0.6], [True] * 8)
    cal = calibrate_thresholds(oof, 2, target=0.9, settings=PLAIN)
    # THEN both share the lowest cut that the pooled evidence supports
    assert cal.thresholds.tolist() == pytest.approx([0.6, 0.6])
    assert cal.cv_precision == 1.0 and cal.cv_coverage == 1.0 and cal.cv_applied == 8


def test_only_a_share_of_the_error_budget_is_spent_on_out_of_fold_evidence() -> None:
    # 19 right then 1 wrong at the bottom: 95% precision at the lowest cut
    conf = list(np.linspace(0.99, 0.6, 20))
    oof = known([0] * 20, conf, [True] * 19 + [False])
    spend_all = calibrate_thresholds(oof, 1, target=0.95, settings=PLAIN)
    a_third = calibrate_thresholds(
        oof, 1, target=0.95, settings=CalibrationSettings(never_seen_pass=1.0, confusion_margin=1.0)
    )
    assert spend_all.thresholds[0] == pytest.approx(0.6)
    assert a_third.thresholds[0] == pytest.approx(conf[18], abs=1e-6)  # the mistake stays out


def test_the_never_seen_gate_keeps_most_simulated_unknowns_out() -> None:
    oof_known = known([0] * 10, list(np.linspace(0.99, 0.55, 10)), [True] * 10)
    unknown = OutOfFold(
        np.zeros(10, np.int64), np.linspace(0.9, 0.5, 10), np.zeros(10, bool), np.ones(10, bool)
    )
    evidence = OutOfFold.concat([oof_known, unknown])
    gated = calibrate_thresholds(evidence, 1, target=0.9, settings=CalibrationSettings(never_seen_pass=0.1))
    # at most 1 of the 10 never-seen items reaches the threshold
    assert (unknown.confidence >= gated.thresholds[0]).sum() <= 1
    assert gated.cv_unknown_applied == pytest.approx(0.1)
    assert never_seen_gate(unknown.confidence, 0.0) > 0.9


def test_a_tag_confused_out_of_fold_needs_more_than_its_confusion() -> None:
    # GIVEN 50 right predictions of tags 0-2, and one example of tag 1 taken for tag 0 at 0.9
    conf = [*np.linspace(0.99, 0.6, 50).tolist(), 0.9]
    tags = [i % 3 for i in range(50)] + [0]
    truth = [i % 3 for i in range(50)] + [1]
    oof = known(tags, conf, [True] * 50 + [False], truth)
    cal = calibrate_thresholds(oof, 3, target=0.8, settings=CalibrationSettings(never_seen_pass=1.0))
    # THEN both tags of the confusion rise halfway from 0.9 to 1; the third keeps the pooled cut
    assert cal.pooled_threshold == pytest.approx(0.6)
    assert cal.thresholds[0] == pytest.approx(0.95) and cal.thresholds[1] == pytest.approx(0.95)
    assert cal.thresholds[2] == pytest.approx(0.6)


def test_a_new_target_only_needs_the_evidence() -> None:
    conf = np.linspace(0.99, 0.5, 50)
    correct = np.ones(50, bool)
    correct[[20, 45]] = False
    oof = known([0] * 50, list(conf), list(correct))
    no_confusion = CalibrationSettings(confusion_margin=1.0)
    strict = calibrate_thresholds(oof, 1, target=0.99, settings=no_confusion)
    loose = calibrate_thresholds(oof, 1, target=0.9, settings=no_confusion)
    assert loose.thresholds[0] < strict.thresholds[0]
    assert loose.cv_coverage > strict.cv_coverage


def test_the_precision_shown_carries_a_lower_bound_that_widens_with_little_evidence() -> None:
    assert precision_lower_bound(40, 40) == pytest.approx(0.928, abs=1e-3)
    assert precision_lower_bound(400, 400) == pytest.approx(0.9925, abs=1e-3)
    assert precision_lower_bound(0, 0) is None
    cal = calibrate_thresholds(known([0] * 5, [0.9] * 5, [True] * 5), 1, target=0.9)
    assert cal.cv_precision == 1.0 and cal.cv_precision_lower is not None and cal.cv_precision_lower < 0.6


def test_novelty_level_sits_where_never_seen_items_outnumber_known_ones() -> None:
    rng = np.random.default_rng(0)
    known_conf = rng.uniform(0.5, 1.0, 200)
    unknown_conf = rng.uniform(0.05, 0.45, 50)
    evidence = OutOfFold(
        np.zeros(250, np.int64),
        np.concatenate([known_conf, unknown_conf]),
        np.concatenate([np.ones(200, bool), np.zeros(50, bool)]),
        np.concatenate([np.zeros(200, bool), np.ones(50, bool)]),
    )
    level = novelty_level(evidence)
    assert 0.44 < level <= 0.5 + 1e-9
    assert novelty_level(OutOfFold.concat([known([0], [0.9], [True])])) == 0.0


def test_evidence_round_trips_through_named_arrays() -> None:
    oof = known([0, 1], [0.9, 0.8], [True, False], [0, 0])
    back = OutOfFold.from_arrays(oof.arrays())
    assert back is not None
    assert back.tag.tolist() == [0, 1] and back.truth.tolist() == [0, 0]
    assert back.confidence.tolist() == pytest.approx([0.9, 0.8])
    assert OutOfFold.from_arrays({}) is None


def test_target_precision_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="target precision"):
        calibrate_thresholds(known([0], [0.9], [True]), 1, target=1.0)
