"""The exclusive head's class balancing, "none of these" negatives and series-aware folds.

Balanced weights and negatives must keep the leave-rows-out shortcut exact; a reviewer's "none of
these" on a look-alike must make the retrained model send that look-alike to review.
"""

from __future__ import annotations

import numpy as np
import pytest
from tagsmith.tagmodels import ModelKind, fit_linear_head
from tagsmith.tagmodels.calibration import SERIES_FLOOR, CalibrationSettings, never_seen_gate
from tagsmith.tagmodels.training import (
    _RidgeFit,
    class_balanced_weights,
    cv_splits,
    series_folds,
    series_groups,
    series_similarity,
)


def weighted_refit_scores(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, n_classes: int, alpha: float, rows: np.ndarray
) -> np.ndarray:
    """The reference: a float64 weighted ridge (negatives: all-zero targets) fitted on every row but
    ``rows``, each row keeping its weight, scoring ``rows``."""
    keep = np.setdiff1d(np.arange(len(y)), rows)
    xs, ws = x[keep].astype(np.float64), w[keep]
    targets = np.zeros((len(keep), n_classes))
    tagged = y[keep] >= 0
    targets[np.nonzero(tagged)[0], y[keep][tagged]] = 1.0
    mx, my = ws @ xs / ws.sum(), ws @ targets / ws.sum()
    xc = xs - mx
    cov = (xc * ws[:, None]).T @ xc + alpha * np.eye(x.shape[1])
    coef = np.linalg.solve(cov, (xc * ws[:, None]).T @ (targets - my)).T
    return x[rows].astype(np.float64) @ coef.T + (my - coef @ mx)


@pytest.mark.parametrize(("per_tag", "dim"), [(20, 16), (5, 64)])  # primal, dual
@pytest.mark.parametrize("max_woodbury_rows", [10**9, 0])  # one factorisation; refit
def test_weighted_ridge_with_negatives_held_out_equals_fitting_without_the_rows(
    per_tag: int, dim: int, max_woodbury_rows: int
) -> None:
    rng = np.random.default_rng(3)
    n_tags = 5
    counts = per_tag + np.arange(n_tags) * 3  # imbalanced
    y = np.concatenate([np.repeat(np.arange(n_tags), counts), np.full(4, -1)])
    x = rng.standard_normal((len(y), dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    w = class_balanced_weights(y, n_tags)
    fit = _RidgeFit(x, y, n_tags, 0.3, weights=w, max_woodbury_rows=max_woodbury_rows)
    for rows in (np.array([0]), np.array([1, 7, len(y) - 1]), np.nonzero(y == 2)[0]):
        np.testing.assert_allclose(
            fit.held_out(rows), weighted_refit_scores(x, y, w, n_tags, 0.3, rows), atol=2e-4
        )


def test_class_balanced_weights_give_every_tag_the_same_total_and_negatives_one() -> None:
    y = np.array([0, 0, 0, 0, 1, 2, 2, -1, -1])
    w = class_balanced_weights(y, 3)
    totals = [w[y == t].sum() for t in range(3)]
    assert np.allclose(totals, totals[0]) and np.isclose(sum(totals), 7.0)
    assert np.all(w[y == -1] == 1.0)
    assert np.all(class_balanced_weights(np.repeat(np.arange(4), 5), 4) == 1.0)  # balanced: unchanged


def test_balanced_fit_does_not_pull_an_in_between_photo_to_the_larger_tag() -> None:
    rng = np.random.default_rng(0)
    a, b = np.eye(8)[0], np.eye(8)[1]
    x = np.concatenate([a + 0.3 * rng.standard_normal((60, 8)), b + 0.3 * rng.standard_normal((6, 8))])
    labels = ["a"] * 60 + ["b"] * 6
    middle = ((a + b) / 2)[None, :]

    def p_b(head: object) -> float:
        z = middle / np.linalg.norm(middle) @ head.coef.T + head.intercept  # type: ignore[attr-defined]
        p = np.exp(z - z.max())
        return float((p / p.sum())[0, 1])

    plain = fit_linear_head(x, labels, kind=ModelKind.EXCLUSIVE, balanced=False, calibrate=False)
    balanced = fit_linear_head(x, labels, kind=ModelKind.EXCLUSIVE, calibrate=False)
    assert p_b(plain) < 0.3 < p_b(balanced)


def auto_applied(head: object, z: np.ndarray) -> np.ndarray:
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    s = z @ head.coef.T + head.intercept  # type: ignore[attr-defined]
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return np.asarray(p.max(axis=1) >= head.thresholds[p.argmax(axis=1)])  # type: ignore[attr-defined]


def test_none_of_these_answers_send_a_look_alike_to_review_instead_of_auto_applying() -> None:
    # GIVEN six tags and a look-alike of t0 (same direction mostly, plus something of its own)
    rng = np.random.default_rng(0)
    dim, n_tags = 32, 6
    centres = np.eye(n_tags, dim)
    x = np.repeat(centres, 10, axis=0) + 0.15 * rng.standard_normal((n_tags * 10, dim))
    labels = [f"t{i}" for i in range(n_tags) for _ in range(10)]
    look_alike = 0.9 * centres[0] + 0.45 * np.eye(dim)[n_tags]
    answered = look_alike + 0.15 * rng.standard_normal((8, dim))
    new_uploads = look_alike + 0.15 * rng.standard_normal((20, dim))
    before = fit_linear_head(x, labels, kind=ModelKind.EXCLUSIVE)
    assert auto_applied(before, new_uploads).mean() > 0.8  # the look-alike is tagged t0 on its own
    # WHEN reviewers answered "none of these" for eight of its photos and the model is retrained
    after = fit_linear_head(x, labels, kind=ModelKind.EXCLUSIVE, negatives=answered)
    # THEN new photos of the look-alike go to review, while t0's own photos still auto-apply
    assert auto_applied(after, new_uploads).mean() < 0.2
    # ... and t0's own photos still auto-apply, those the model is surest of: t0 was taken for the
    # look-alike out of fold, so it needs more confidence than before (the calibration's per-tag rule)
    assert auto_applied(after, x[:10]).mean() >= 0.5
    assert after.thresholds is not None and before.thresholds is not None
    assert after.thresholds[0] > before.thresholds[0]
    assert after.oof_probabilities is not None and after.oof_probabilities.shape == (60, n_tags)


def test_negatives_are_refused_for_multilabel_models() -> None:
    from tagsmith.errors import TrainingInputError

    x = np.eye(4, 8)
    with pytest.raises(TrainingInputError, match="exclusive models only"):
        fit_linear_head(
            x, [frozenset({"a"}), frozenset({"b"})] * 2, kind=ModelKind.MULTILABEL, negatives=np.eye(1, 8)
        )


def test_series_folds_keep_near_twins_together_and_spread_each_tag() -> None:
    rng = np.random.default_rng(1)
    base = rng.standard_normal((6, 16))
    # tag 0: three series of three near-identical shots; tag 1: six unrelated photos
    x = np.concatenate(
        [np.repeat(base[:3], 3, axis=0) + 0.01 * rng.standard_normal((9, 16)), rng.standard_normal((6, 16))]
    )
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.array([0] * 9 + [1] * 6)
    groups = series_groups(x, y, 0.95)
    assert len(np.unique(groups[:9])) == 3 and len(np.unique(groups[9:])) == 6
    folds = series_folds(y, groups, 3)
    fold_of = np.empty(len(y), int)
    for f, rows in enumerate(folds):
        fold_of[rows] = f
    for g in np.unique(groups):
        assert len(set(fold_of[groups == g])) == 1  # a series never straddles two folds
    assert sorted(np.bincount(fold_of[y == 0], minlength=3)) == [3, 3, 3]
    assert sorted(np.bincount(fold_of[y == 1], minlength=3)) == [2, 2, 2]
    assert 0.0 < series_similarity(x, y, 0.5) < 0.95  # different tags are not near twins here


def test_a_tag_that_is_one_series_is_split_example_by_example() -> None:
    # GIVEN tag 0: five near-identical packshots (one series); tag 1: two series of three
    rng = np.random.default_rng(2)
    base = rng.standard_normal((3, 16))
    x = np.concatenate(
        [np.repeat(base[:1], 5, axis=0), np.repeat(base[1:], 3, axis=0)]
    ) + 0.01 * rng.standard_normal((11, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.array([0] * 5 + [1] * 6)
    # THEN with at least two series required, tag 0's shots become their own groups
    assert len(np.unique(series_groups(x, y, 0.95)[:5])) == 1
    groups = series_groups(x, y, 0.95, min_series=2)
    assert len(np.unique(groups[:5])) == 5 and len(np.unique(groups[5:])) == 2


def test_cv_folds_keep_series_whole_and_spread_negatives_one_by_one() -> None:
    rng = np.random.default_rng(3)
    e = np.eye(5, 16)
    # two tags of two series of five shots each (each series 0.7-similar to one of the other
    # tag's, unrelated to its own other series), then six near-identical "none of these" photos
    base = np.stack([e[0], e[1], 0.7 * e[0] + 0.7 * e[2], 0.7 * e[1] + 0.7 * e[3]])
    tagged = np.repeat(base, 5, axis=0) + 0.01 * rng.standard_normal((20, 16))
    negatives = e[4] + 0.01 * rng.standard_normal((6, 16))
    x = np.concatenate([tagged, negatives])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y_tagged = np.array([0] * 10 + [1] * 10)

    splits = cv_splits(x, y_tagged, 2)

    fold_of = np.empty(len(x), int)
    for f, rows in enumerate(splits):
        fold_of[rows] = f
    for series in range(4):
        assert len(set(fold_of[series * 5 : series * 5 + 5])) == 1  # a series never straddles folds
    assert sorted(np.bincount(fold_of[20:], minlength=2)) == [3, 3]  # negatives spread evenly
    assert sorted(np.concatenate(splits).tolist()) == list(range(len(x)))


def test_never_seen_gate_lets_at_most_the_share_through() -> None:
    conf = np.linspace(0.5, 0.99, 100)
    gate = never_seen_gate(conf, 0.03)
    assert (conf >= gate).sum() == 3
    assert never_seen_gate(np.array([]), 0.03) == 0.0


def test_distinct_photos_of_a_tag_are_not_grouped_as_one_series() -> None:
    # GIVEN five very different tags (as far apart as hats and trousers) of ten visibly different
    # photos each: every pair of one tag is only loosely alike (cosine about 0.6-0.75)
    rng = np.random.default_rng(4)
    centres = np.eye(5, 64) * 3.0
    x = np.concatenate([c + rng.standard_normal((10, 64)) * 0.3 for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.repeat(np.arange(5), 10)
    same = (x @ x.T)[(y[:, None] == y[None, :]) & ~np.eye(50, dtype=bool)]
    assert 0.5 < np.median(same) < 0.8 and same.max() < SERIES_FLOOR
    # WHEN the folds are made: the tenant's near-twin cosine alone would be low (different tags are
    # far apart), low enough to chain these photos into one "series" per tag
    assert series_similarity(x, y, 0.95) < np.median(same)
    splits = cv_splits(x, y, 5)
    # THEN every photo is its own group: each fold holds two photos of every tag
    for rows in splits:
        assert sorted(np.bincount(y[rows], minlength=5)) == [2] * 5


def test_the_fold_settings_are_passed_in_not_set_on_the_module() -> None:
    # GIVEN the photos above: distinct by the floor, but chained by the tenant's own cut-off alone
    rng = np.random.default_rng(4)
    x = np.concatenate([c + rng.standard_normal((10, 64)) * 0.3 for c in np.eye(5, 64) * 3.0])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.repeat(np.arange(5), 10)
    # WHEN one caller asks for folds without the floor and one series per tag allowed
    chained = CalibrationSettings(series_floor=-1.0, min_series=1)
    splits = cv_splits(x, y, 5, chained)
    # THEN each tag is one series held out whole (what the floor prevents) ...
    assert sorted(len(set(y[rows].tolist())) for rows in splits) == [1] * 5
    # ... and the default settings, untouched by that call, still split them photo by photo
    assert all(sorted(np.bincount(y[rows], minlength=5)) == [2] * 5 for rows in cv_splits(x, y, 5))
