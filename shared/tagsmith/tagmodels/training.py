"""Fitting a tag model's linear head on embeddings (scikit-learn), exported as plain arrays."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from tagsmith.errors import TrainingInputError
from tagsmith.tagmodels.model import ModelKind


@dataclass(frozen=True)
class LinearHead:
    tags: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray
    cv_accuracy: float | None  # exclusive models: out-of-fold top-1 accuracy on the examples


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _fit_exclusive(x: np.ndarray, y: np.ndarray, c: float) -> LogisticRegression:
    clf = LogisticRegression(C=c, max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return clf


def fit_linear_head(
    embeddings: np.ndarray,
    labels: Sequence[str] | Sequence[frozenset[str]],
    *,
    kind: ModelKind,
    c: float = 10.0,
) -> LinearHead:
    """Fit a head over L2-normalised embeddings.

    Exclusive: ``labels`` holds one tag per example; multinomial logistic regression.
    Multi-label: ``labels`` holds a set of tags per example; one binary logistic regression per tag.
    """
    x = l2_normalise(embeddings)
    if kind is ModelKind.EXCLUSIVE:
        y = np.asarray([str(lab) for lab in labels])
        tags = tuple(sorted(set(y.tolist())))
        if len(tags) < 2:
            raise TrainingInputError(f"an exclusive model needs at least 2 tags with examples, got {len(tags)}")
        clf = _fit_exclusive(x, y, c)
        order = [list(clf.classes_).index(t) for t in tags]
        coef, intercept = clf.coef_[order], clf.intercept_[order]
        return LinearHead(tags, coef.astype(np.float32), intercept.astype(np.float32), _cv_accuracy(x, y, c))
    sets = [frozenset(lab) if not isinstance(lab, str) else frozenset([lab]) for lab in labels]
    tags = tuple(sorted(set().union(*sets)))
    if len(tags) < 1:
        raise TrainingInputError("a multi-label model needs at least one tag with examples")
    coefs, intercepts = [], []
    for tag in tags:
        yb = np.array([tag in s for s in sets])
        if yb.all():
            raise TrainingInputError(f"tag {tag!r} is on every example: add examples without it")
        clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
        clf.fit(x, yb)
        coefs.append(clf.coef_[0])
        intercepts.append(clf.intercept_[0])
    return LinearHead(tags, np.asarray(coefs, np.float32), np.asarray(intercepts, np.float32), None)


def _cv_accuracy(x: np.ndarray, y: np.ndarray, c: float) -> float | None:
    smallest = min(Counter(y.tolist()).values())
    folds = min(5, smallest)
    if folds < 2:
        return None
    correct = 0
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y):
        clf = _fit_exclusive(x[train], y[train], c)
        correct += int((clf.predict(x[test]) == y[test]).sum())
    return correct / len(y)
