"""benchmarks/explore.py: the pure pieces its published figures rest on (metrics, folds, ridge)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import Ridge

from benchmarks.explore import grouped_folds, oracle_coverage, ridge


def test_oracle_coverage_is_the_longest_confident_prefix_at_the_target() -> None:
    confidence = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([True, True, False, True])

    assert oracle_coverage(confidence, correct, 0.98) == 0.5
    assert oracle_coverage(confidence, correct, 0.75) == 1.0
    assert oracle_coverage(confidence, correct, 0.7) == 1.0


def test_oracle_coverage_cannot_split_tied_confidences() -> None:
    # A threshold at 0.9 applies both rows: half right, so nothing reaches 98%.
    assert oracle_coverage(np.array([0.9, 0.9, 0.5]), np.array([True, False, True]), 0.98) == 0.0


def test_oracle_coverage_is_zero_when_the_most_confident_is_wrong() -> None:
    assert oracle_coverage(np.array([0.99, 0.5]), np.array([False, True]), 0.98) == 0.0


def test_grouped_folds_keep_a_photo_and_its_views_together() -> None:
    y = np.repeat(np.arange(3), 5)  # 3 tags x 5 photos
    photo = np.arange(15)
    # every photo also has two augmented rows with its label
    y_all = np.concatenate([y, y, y])
    groups = np.concatenate([photo, photo, photo])

    folds = grouped_folds(y_all, groups, folds=5)

    assert sum(f.sum() for f in folds) == len(y_all)
    for held in folds:
        assert held.any()
        assert set(groups[held]).isdisjoint(groups[~held])
        assert sorted(np.bincount(y_all[held], minlength=3)) == [3, 3, 3]  # one photo per tag


def test_ridge_matches_sklearn_and_a_weight_of_two_duplicates_a_row() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 5))
    y = np.arange(12) % 3

    coef, b = ridge(x, y, 3, 0.3)
    reference = Ridge(alpha=0.3).fit(x, np.eye(3)[y])  # one-hot targets, unpenalised intercept
    np.testing.assert_allclose(coef, reference.coef_, atol=1e-8)
    np.testing.assert_allclose(b, reference.intercept_, atol=1e-8)

    weights = np.ones(12)
    weights[0] = 2.0
    doubled = ridge(np.vstack([x, x[:1]]), np.append(y, y[0]), 3, 0.3)
    np.testing.assert_allclose(ridge(x, y, 3, 0.3, weights)[0], doubled[0], atol=1e-10)
