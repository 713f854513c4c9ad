"""Per-tag thresholds from out-of-fold predictions (tagsmith.tagmodels.calibration)."""

from __future__ import annotations

import numpy as np
import pytest
from tagsmith.tagmodels.calibration import NEVER, OutOfFold, calibrate_thresholds, lowest_threshold


def test_lowest_threshold_is_the_lowest_cut_that_meets_the_target() -> None:
    conf = np.array([0.99, 0.97, 0.95, 0.90, 0.80])
    correct = np.array([True, True, True, False, True])
    assert lowest_threshold(conf, correct, target=0.98) == pytest.approx(0.95)
    # Asking for less precision lets the wrong one through and everything below it.
    assert lowest_threshold(conf, correct, target=0.75) == pytest.approx(0.80)


def test_lowest_threshold_never_applies_when_the_most_confident_is_wrong() -> None:
    conf = np.array([0.99, 0.5])
    assert lowest_threshold(conf, np.array([False, True]), target=0.9) == NEVER
    assert lowest_threshold(np.array([]), np.array([], dtype=bool), target=0.9) == NEVER


def test_lowest_threshold_does_not_split_tied_confidences() -> None:
    conf = np.array([0.9, 0.9, 0.9])
    assert lowest_threshold(conf, np.array([True, False, True]), target=0.98) == NEVER


def known(tag: list[int], conf: list[float], correct: list[bool]) -> OutOfFold:
    return OutOfFold(np.array(tag), np.array(conf), np.array(correct), np.zeros(len(tag), bool))


def test_each_tag_gets_its_own_threshold_from_its_own_mistakes() -> None:
    # GIVEN tag 0 is right whenever it is proposed, tag 1 is wrong at 0.9
    oof = known(
        [0] * 4 + [1] * 4, [0.95, 0.9, 0.85, 0.8, 0.99, 0.9, 0.85, 0.8], [True] * 5 + [False] + [True] * 2
    )
    cal = calibrate_thresholds(oof, 2, target=0.98, prior_weight=0.0)
    # THEN tag 0 applies down to its lowest right prediction, tag 1 only above its mistake
    assert cal.thresholds.tolist() == pytest.approx([0.8, 0.99])
    assert cal.cv_precision == 1.0 and cal.cv_coverage == pytest.approx(5 / 8)


def test_simulated_unknowns_raise_the_threshold_and_are_reported() -> None:
    oof_known = known([0, 0, 0], [0.95, 0.9, 0.8], [True, True, True])
    unknown = OutOfFold(np.array([0]), np.array([0.85]), np.array([False]), np.array([True]))
    cal = calibrate_thresholds(OutOfFold.concat([oof_known, unknown]), 1, target=0.98, prior_weight=0.0)
    assert cal.thresholds[0] == pytest.approx(0.9)
    assert cal.cv_unknown_applied == 0.0


def test_the_prior_pulls_a_tag_with_little_evidence_towards_the_model_wide_precision() -> None:
    # Tag 1 has one right prediction at 0.6; model-wide, predictions at 0.6 are mostly wrong.
    oof = known([0] * 10 + [1], [0.6] * 10 + [0.6], [False] * 9 + [True] + [True])
    alone = calibrate_thresholds(oof, 2, target=0.9, prior_weight=0.0)
    pooled = calibrate_thresholds(oof, 2, target=0.9, prior_weight=5.0)
    assert alone.thresholds[1] == pytest.approx(0.6)
    assert pooled.thresholds[1] > 1.0  # not enough evidence: everything goes to review


def test_target_precision_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="target precision"):
        calibrate_thresholds(known([0], [0.9], [True]), 1, target=1.0)
