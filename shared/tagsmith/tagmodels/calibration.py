"""Honest confidence: per-tag auto-apply thresholds chosen by cross-validation for a target precision.

A tag is applied without review only when the model's confidence reaches that tag's threshold. The
thresholds are picked from *out-of-fold* predictions on the training examples, so that the model
never grades itself on what it learnt:

* **known items**: each example is predicted by a fold model trained without it;
* **unknown items**: the tags are split into groups and each group's examples are predicted by a
  model trained without any of that group's tags. Every such prediction is wrong by construction:
  it simulates a photo of a product the model has never seen, which must not be auto-applied.

Both kinds count as candidates for auto-application. For each tag the threshold is the lowest
confidence at which the *smoothed* precision of what it would apply reaches the target: the tag's
own counts are pooled with the model-wide precision at the same confidence, weighted as
:data:`PRIOR_WEIGHT` pseudo-examples, because five or ten examples per tag cannot measure 98%
precision on their own.

Example::

    >>> conf = np.array([0.99, 0.95, 0.9, 0.6])
    >>> correct = np.array([True, True, False, True])
    >>> float(lowest_threshold(conf, correct, target=0.98))
    0.95
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_TARGET_PRECISION",
    "PRIOR_WEIGHT",
    "Calibration",
    "OutOfFold",
    "calibrate_thresholds",
    "lowest_threshold",
    "unknown_gate",
]

DEFAULT_TARGET_PRECISION = 0.98
#: How many pseudo-examples of model-wide precision are pooled with a tag's own counts.
PRIOR_WEIGHT = 5.0
#: A threshold never drops below this: a tag proposed with less confidence always goes to review.
MIN_THRESHOLD = 0.5
#: The threshold of a tag that never reaches the target: nothing is auto-applied (1.0 + epsilon).
NEVER = 1.000001


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold predictions: for each one the predicted tag, its confidence, and whether right.

    ``unknown`` marks the simulated never-seen items (always wrong).
    """

    tag: np.ndarray  # (M,) int, index of the predicted tag
    confidence: np.ndarray  # (M,) float
    correct: np.ndarray  # (M,) bool
    unknown: np.ndarray  # (M,) bool

    @classmethod
    def concat(cls, parts: list[OutOfFold]) -> OutOfFold:
        if not parts:
            return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool), np.zeros(0, bool))
        return cls(
            tag=np.concatenate([p.tag for p in parts]).astype(np.int64),
            confidence=np.concatenate([p.confidence for p in parts]).astype(np.float64),
            correct=np.concatenate([p.correct for p in parts]).astype(bool),
            unknown=np.concatenate([p.unknown for p in parts]).astype(bool),
        )


@dataclass(frozen=True)
class Calibration:
    """Per-tag thresholds plus what cross-validation predicts they will do."""

    thresholds: np.ndarray  # (T,) float32
    target_precision: float
    cv_precision: float | None  # precision of what the thresholds auto-apply, known items only
    cv_coverage: float  # share of known items auto-applied
    cv_unknown_applied: float | None  # share of simulated never-seen items auto-applied

    def metrics(self) -> dict[str, float | None]:
        return {
            "target_precision": self.target_precision,
            "cv_precision": self.cv_precision,
            "cv_coverage": self.cv_coverage,
            "cv_unknown_applied": self.cv_unknown_applied,
        }


def lowest_threshold(
    confidence: np.ndarray,
    correct: np.ndarray,
    *,
    target: float,
    prior: Callable[[np.ndarray], np.ndarray] | None = None,
    prior_weight: float = PRIOR_WEIGHT,
    weight: np.ndarray | None = None,
) -> float:
    """The lowest confidence ``t`` (one of the given ones) such that the (smoothed) precision of
    ``confidence >= t`` reaches ``target``; :data:`NEVER` when no ``t`` does.

    ``prior(t)`` gives the model-wide precision at each candidate ``t``; it is pooled with the
    counts here as ``prior_weight`` pseudo-examples. ``weight``: how much each item counts (1).
    """
    conf = np.asarray(confidence, dtype=np.float64)
    if conf.size == 0:
        return NEVER
    order = np.argsort(-conf, kind="stable")
    conf = conf[order]
    w = np.ones(conf.size) if weight is None else np.asarray(weight, dtype=np.float64)[order]
    right = np.cumsum(np.asarray(correct, dtype=np.float64)[order] * w)
    total = np.cumsum(w)
    # Ties: only the last of a run of equal confidences is a real cut.
    last_of_run = np.append(conf[1:] != conf[:-1], True)
    if prior is not None:
        pooled = (right + prior_weight * prior(conf)) / (total + prior_weight)
    else:
        pooled = right / total
    ok = (pooled >= target) & last_of_run
    if not ok.any():
        return NEVER
    # The lowest cut that meets the target (the precision curve need not be monotone: a cut is
    # accepted only if every higher cut meets the target too, so raising confidence never hurts).
    meets_above = np.minimum.accumulate(np.where(last_of_run, pooled, np.inf) >= target)
    good = np.nonzero(meets_above & last_of_run)[0]
    if good.size == 0:
        return NEVER
    return float(conf[good[-1]])


def _global_precision(oof: OutOfFold, weight: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``precision_at(t)``: the (weighted) precision of every out-of-fold prediction with
    confidence >= t."""
    order = np.argsort(-oof.confidence, kind="stable")
    desc = oof.confidence[order]
    right = np.cumsum(oof.correct[order].astype(np.float64) * weight[order])
    precision = right / np.cumsum(weight[order])
    ascending = desc[::-1]

    def precision_at(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        count = desc.size - np.searchsorted(ascending, t, side="left")  # how many reach t
        return np.where(count > 0, precision[np.maximum(count, 1) - 1] if desc.size else 0.5, 0.5)

    return precision_at


def calibrate_thresholds(
    oof: OutOfFold,
    n_tags: int,
    *,
    target: float = DEFAULT_TARGET_PRECISION,
    prior_weight: float = PRIOR_WEIGHT,
    unknown_pass: float | None = None,
    unknown_share: float | None = None,
) -> Calibration:
    """Per-tag thresholds for ``target`` precision from out-of-fold predictions (see module doc).

    ``unknown_pass``: the simulated never-seen items no longer count in the tags' precision; a
    model-wide gate instead (every threshold at least :func:`unknown_gate`) lets at most this share
    of them through. ``None``: they count as mistakes of the tag they were given (the strict rule).

    ``unknown_share``: with the strict rule, the simulated never-seen items are weighted to make
    this share of all items (the share of uploads expected to show none of the tags); ``None``:
    each counts as one item (about as many as the known ones).
    """
    if not 0.0 < target < 1.0:
        raise ValueError(f"target precision must be in (0, 1), got {target}")
    if unknown_pass is not None:
        if not 0.0 <= unknown_pass < 1.0:
            raise ValueError(f"unknown_pass must be in [0, 1), got {unknown_pass}")
        known_only = OutOfFold(
            oof.tag[~oof.unknown],
            oof.confidence[~oof.unknown],
            oof.correct[~oof.unknown],
            oof.unknown[~oof.unknown],
        )
        per_tag = calibrate_thresholds(known_only, n_tags, target=target, prior_weight=prior_weight)
        if unknown_share is not None:
            per_tag = calibrate_thresholds(
                oof, n_tags, target=target, prior_weight=prior_weight, unknown_share=unknown_share
            )
        gate = unknown_gate(oof.confidence[oof.unknown], unknown_pass)
        return _summarise(oof, np.maximum(per_tag.thresholds.astype(np.float64), gate), target)
    # The prior counts the simulated never-seen items as mistakes too. Measured on the grocery
    # benchmark (docs/benchmarks.md): leaving them out of the prior triples coverage but lets ~10%
    # of never-seen products and ~8% wrong tags through; with them, precision and the unknown-item
    # rule hold. Precision first: an auto-applied tag must be right.
    weight = np.ones(oof.confidence.size)
    n_unknown, n_known = int(oof.unknown.sum()), int((~oof.unknown).sum())
    if unknown_share is not None and n_unknown and n_known:
        if not 0.0 < unknown_share < 1.0:
            raise ValueError(f"unknown_share must be in (0, 1), got {unknown_share}")
        weight[oof.unknown] = unknown_share / (1.0 - unknown_share) * n_known / n_unknown
    prior = _global_precision(oof, weight)
    thresholds = np.full(n_tags, NEVER, dtype=np.float64)
    for t in range(n_tags):
        mine = oof.tag == t
        thresholds[t] = lowest_threshold(
            oof.confidence[mine],
            oof.correct[mine],
            target=target,
            prior=prior,
            prior_weight=prior_weight,
            weight=weight[mine],
        )
    return _summarise(oof, thresholds, target)


def unknown_gate(confidence: np.ndarray, share: float) -> float:
    """The lowest confidence that at most ``share`` of these (never-seen) items reach; ``MIN_THRESHOLD``
    when there are none."""
    conf = np.sort(np.asarray(confidence, dtype=np.float64))[::-1]
    allowed = int(np.floor(share * conf.size))
    if allowed >= conf.size:
        return MIN_THRESHOLD
    return float(np.nextafter(conf[allowed], np.inf))


def _summarise(oof: OutOfFold, thresholds: np.ndarray, target: float) -> Calibration:
    thresholds = np.maximum(thresholds, MIN_THRESHOLD)
    applied = oof.confidence >= thresholds[oof.tag]
    known = ~oof.unknown
    n_applied_known = int((applied & known).sum())
    return Calibration(
        thresholds=thresholds.astype(np.float32),
        target_precision=target,
        cv_precision=(
            float((applied & known & oof.correct).sum() / n_applied_known) if n_applied_known else None
        ),
        cv_coverage=float(n_applied_known / max(int(known.sum()), 1)),
        cv_unknown_applied=(
            float((applied & oof.unknown).sum() / oof.unknown.sum()) if oof.unknown.any() else None
        ),
    )
