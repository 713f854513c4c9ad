"""Honest confidence: auto-apply thresholds chosen from out-of-fold evidence for a target precision.

A tag is applied without review only when the model's confidence reaches that tag's threshold. The
thresholds are picked from **evidence** the model never graded itself on (:class:`OutOfFold`):

* **known items**: each example is predicted by a fold model trained without it ("none of these"
  answers too: they are always wrong);
* **never-seen items**: the tags are split into groups and each group's examples are predicted by a
  model trained without any of that group's tags: photos of products the model has never seen.

The rule (:func:`calibrate_thresholds`), all of it pooled across tags because five or ten examples per tag
cannot measure 98% on their own:

1. **Pooled threshold**: the lowest confidence at which the expected out-of-fold precision of
   everything at or above it (:func:`pooled_threshold`) keeps within
   :attr:`CalibrationSettings.error_share` of the error budget (``1 - target``). Out-of-fold evidence is kinder than new uploads: a tenant's examples are shot
   in series, and uploads come from other sessions, rooms and shelves. Measured on both dev
   catalogues (docs/benchmarks.md, "Calibration"), spending the whole budget on out-of-fold
   evidence gave 96.4-96.8% precision on grocery test photos for a 98% target; a third of it gives
   98.4-99.4% on grocery and 98.3-99.8% on clothing.
2. **Never-seen gate**: at least the confidence that all but a share of the simulated never-seen
   items stay below. The share follows the target: with :data:`NEVER_SEEN_SHARE` of uploads showing
   none of the tags, never-seen uploads may take half the error budget (5% of them at a 98%
   target, 12.5% at 95%); products the model never saw are then not auto-applied at least 95% of
   the time at 98%, the product's promise.
3. **Per-tag evidence**: a tag whose examples were taken for another tag out of fold (or another
   tag's for it) is demonstrably confusable: its threshold rises to
   ``1 - (1 - c) * confusion_margin`` for the most confident such confusion ``c``.

Everything needed to choose again is the evidence itself, which the model keeps (``weights.npz``):
a new precision target recalibrates without a fit (:func:`calibrate_thresholds` on the stored evidence).

The figures a user is shown (:class:`Calibration`) are out-of-fold estimates with a
Clopper-Pearson lower bound on the precision, so a model resting on 40 predictions says so.

Example::

    >>> conf = np.array([0.99, 0.97, 0.95, 0.9, 0.6])
    >>> evidence = OutOfFold(np.zeros(5, np.int64), conf, np.array([1, 1, 1, 0, 1], bool), np.zeros(5, bool))
    >>> round(float(calibrate_thresholds(evidence, 1, target=0.9).thresholds[0]), 2)
    0.95
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DEFAULT_CALIBRATION",
    "DEFAULT_TARGET_PRECISION",
    "MIN_THRESHOLD",
    "NEVER",
    "TARGET_PRECISIONS",
    "Calibration",
    "CalibrationSettings",
    "OutOfFold",
    "calibrate_thresholds",
    "float32_at_least",
    "never_seen_gate",
    "novelty_level",
    "pooled_threshold",
    "precision_lower_bound",
    "validate_target",
]

DEFAULT_TARGET_PRECISION = 0.98
#: The precision targets a tenant picks from (``tagsmith models target``, the console).
TARGET_PRECISIONS = (0.9, 0.95, 0.98, 0.99)
#: A threshold never drops below this: a tag proposed with less confidence always goes to review.
MIN_THRESHOLD = 0.5
#: The threshold of a tag that never reaches the target: nothing is auto-applied (1.0 + epsilon).
NEVER = 1.000001
#: The share of uploads expected to show none of a model's tags, for :func:`novelty_level`.
NEVER_SEEN_SHARE = 0.2


#: Series-aware cross-validation: examples of one tag closer than this tenant's near-twin cosine
#: (:func:`tagsmith.tagmodels.training.series_similarity`, at this quantile) always fall in the same
#: fold, so out-of-fold confidence resembles a new upload's (shops' photos are shot in series, and a
#: held-out shot with its twin in the training fold grades the model far too kindly: with plain
#: stratified folds the calibration auto-applied 2.5x the hindsight share on grocery at 92%
#: precision; docs/benchmarks.md, "Calibration").
SERIES_QUANTILE = 0.95
#: ... but never below this cosine: categories whose photos all look alike (clothing shot at home)
#: give a low near-twin cosine, which would chain visibly different photos into one "series".
#: Distinct clothing photos of one category, even by one person in one room, stay under it (99th
#: percentile 0.79-0.83 with the default features); grocery's series sit above it (the quantile
#: gives 0.875-0.91 there).
SERIES_FLOOR = 0.86
#: With series folds, a tag whose examples form fewer series than this is split example by example
#: (a tag of near-identical packshots is one series: held out whole, no fold could score it).
MIN_SERIES = 2


@dataclass(frozen=True)
class CalibrationSettings:
    """How thresholds are chosen from evidence (see the module docstring; each value is justified
    on both dev catalogues in docs/benchmarks.md, "Calibration").

    ``error_share``: the share of the error budget the out-of-fold evidence may spend;
    ``never_seen_pass``: the largest share of simulated never-seen items the thresholds let
    through (None: as the target allows, :meth:`never_seen_pass_for`); ``confusion_margin``: how
    far towards 1 a confused tag's threshold moves past its most confident confusion (0.5: halfway).
    The evidence itself: ``series_quantile``, ``series_floor`` and ``min_series`` shape the
    series-aware folds (:data:`SERIES_QUANTILE`, :data:`SERIES_FLOOR`, :data:`MIN_SERIES`).
    """

    error_share: float = 1 / 3
    never_seen_pass: float | None = None
    confusion_margin: float = 0.5
    min_threshold: float = MIN_THRESHOLD
    series_quantile: float = SERIES_QUANTILE
    series_floor: float = SERIES_FLOOR
    min_series: int = MIN_SERIES

    def never_seen_pass_for(self, target: float) -> float:
        """The share of never-seen items that may be auto-applied at ``target`` precision.

        >>> CalibrationSettings().never_seen_pass_for(0.98), CalibrationSettings().never_seen_pass_for(0.95)
        (0.05, 0.125)
        """
        if self.never_seen_pass is not None:
            return self.never_seen_pass
        return round(min(1.0, 0.5 * (1.0 - target) / NEVER_SEEN_SHARE), 6)

    def __post_init__(self) -> None:
        if not 0.0 < self.error_share <= 1.0:
            raise ValueError(f"error_share must be in (0, 1], got {self.error_share}")
        if self.never_seen_pass is not None and not 0.0 <= self.never_seen_pass <= 1.0:
            raise ValueError(f"never_seen_pass must be in [0, 1], got {self.never_seen_pass}")
        if not 0.0 <= self.confusion_margin <= 1.0:
            raise ValueError(f"confusion_margin must be in [0, 1], got {self.confusion_margin}")
        if not 0.0 < self.series_quantile <= 1.0 or not -1.0 <= self.series_floor <= 1.0:
            raise ValueError(
                f"series_quantile must be in (0, 1] and series_floor a cosine, got "
                f"{self.series_quantile}, {self.series_floor}"
            )
        if self.min_series < 1:
            raise ValueError(f"min_series must be at least 1, got {self.min_series}")


DEFAULT_CALIBRATION = CalibrationSettings()


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold predictions: for each one the predicted tag, its confidence, whether it was
    right, whether it is a simulated never-seen item (always wrong), and the true tag (``-1`` for
    "none of these" answers, never-seen items and multi-label candidates)."""

    tag: np.ndarray  # (M,) int, index of the predicted tag
    confidence: np.ndarray  # (M,) float
    correct: np.ndarray  # (M,) bool
    unknown: np.ndarray  # (M,) bool
    truth: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        m = len(self.tag)
        if len(self.truth) != m:
            object.__setattr__(self, "truth", np.full(m, -1, dtype=np.int64))
        if not (len(self.confidence) == len(self.correct) == len(self.unknown) == m):
            raise ValueError("out-of-fold arrays must all have one entry per prediction")

    def __len__(self) -> int:
        return len(self.tag)

    @classmethod
    def concat(cls, parts: list[OutOfFold]) -> OutOfFold:
        if not parts:
            return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool), np.zeros(0, bool))
        return cls(
            tag=np.concatenate([p.tag for p in parts]).astype(np.int64),
            confidence=np.concatenate([p.confidence for p in parts]).astype(np.float64),
            correct=np.concatenate([p.correct for p in parts]).astype(bool),
            unknown=np.concatenate([p.unknown for p in parts]).astype(bool),
            truth=np.concatenate([p.truth for p in parts]).astype(np.int64),
        )

    def arrays(self, prefix: str = "evidence_") -> dict[str, np.ndarray]:
        """The evidence as named arrays (for ``weights.npz``)."""
        return {
            f"{prefix}tag": self.tag.astype(np.int32),
            f"{prefix}confidence": self.confidence.astype(np.float32),
            f"{prefix}correct": self.correct.astype(bool),
            f"{prefix}unknown": self.unknown.astype(bool),
            f"{prefix}truth": self.truth.astype(np.int32),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "evidence_") -> OutOfFold | None:
        """The evidence :meth:`arrays` wrote, or None when there is none."""
        if f"{prefix}tag" not in arrays:
            return None
        return cls(
            tag=np.asarray(arrays[f"{prefix}tag"], dtype=np.int64),
            confidence=np.asarray(arrays[f"{prefix}confidence"], dtype=np.float64),
            correct=np.asarray(arrays[f"{prefix}correct"], dtype=bool),
            unknown=np.asarray(arrays[f"{prefix}unknown"], dtype=bool),
            truth=np.asarray(arrays[f"{prefix}truth"], dtype=np.int64),
        )

    def known(self) -> OutOfFold:
        keep = ~self.unknown
        return OutOfFold(
            self.tag[keep], self.confidence[keep], self.correct[keep], self.unknown[keep], self.truth[keep]
        )


@dataclass(frozen=True)
class Calibration:
    """Per-tag thresholds plus what the evidence predicts they will do on uploads like the examples."""

    thresholds: np.ndarray  # (T,) float32
    target_precision: float
    pooled_threshold: float
    #: out-of-fold precision of what the thresholds auto-apply (known items), and its 95% lower bound
    cv_precision: float | None
    cv_precision_lower: float | None
    #: share of the known items auto-applied, and how many predictions that rests on
    cv_coverage: float
    cv_applied: int
    cv_items: int
    #: share of simulated never-seen items auto-applied (None without them)
    cv_unknown_applied: float | None

    def metrics(self) -> dict[str, float | int | None]:
        return {
            "target_precision": self.target_precision,
            "pooled_threshold": round(self.pooled_threshold, 6),
            "cv_precision": self.cv_precision,
            "cv_precision_lower": self.cv_precision_lower,
            "cv_coverage": self.cv_coverage,
            "cv_applied": self.cv_applied,
            "cv_items": self.cv_items,
            "cv_unknown_applied": self.cv_unknown_applied,
        }


def validate_target(target: float) -> float:
    """``target`` as a precision in (0.5, 1), or ValueError saying what is allowed."""
    if not isinstance(target, int | float) or not 0.5 < float(target) < 1.0:
        raise ValueError(f"target precision must be between 0.5 and 1 (e.g. 0.95 or 0.98), got {target!r}")
    return float(target)


def pooled_threshold(confidence: np.ndarray, correct: np.ndarray, *, precision: float) -> float:
    """The lowest confidence ``t`` (one of the given ones) such that the expected precision of
    everything at or above ``t`` reaches ``precision``; :data:`NEVER` when no cut does.

    The expected precision is the mean, over the predictions a cut applies, of the chance that a
    prediction of that confidence is right, fitted as a non-decreasing function of confidence
    (isotonic regression). With a few hundred predictions, counting right and wrong above each cut
    makes the threshold leap with one unlucky mistake near the top; the fitted curve spreads that
    mistake over its neighbours (on the dev catalogues the spread of the coverage over seeds fell by
    a third at five examples per tag, docs/benchmarks.md, "Calibration").

    >>> conf = np.array([0.99, 0.97, 0.95, 0.9, 0.8, 0.7])
    >>> float(pooled_threshold(conf, np.array([1, 1, 1, 1, 0, 0], bool), precision=0.95))
    0.9
    """
    conf = np.asarray(confidence, dtype=np.float64)
    if conf.size == 0:
        return NEVER
    from sklearn.isotonic import IsotonicRegression

    right = np.asarray(correct, dtype=np.float64)
    chance = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit_transform(conf, right)
    order = np.argsort(-conf, kind="stable")
    conf = conf[order]
    expected = np.cumsum(chance[order]) / np.arange(1, conf.size + 1)
    # Ties: only the last of a run of equal confidences is a real cut.
    last_of_run = np.append(conf[1:] != conf[:-1], True)
    good = np.nonzero((expected >= precision - 1e-12) & last_of_run)[0]
    return float(conf[good[-1]]) if good.size else NEVER


def never_seen_gate(confidence: np.ndarray, share: float) -> float:
    """The lowest confidence that at most ``share`` of these (never-seen) items reach; 0 when there
    are none."""
    conf = np.sort(np.asarray(confidence, dtype=np.float64))[::-1]
    allowed = int(np.floor(share * conf.size))
    if allowed >= conf.size:
        return 0.0
    return float(np.nextafter(conf[allowed], np.inf))


def novelty_level(evidence: OutOfFold, *, never_seen_share: float = NEVER_SEEN_SHARE) -> float:
    """The top confidence under which a prediction is more likely a product the model never saw
    than a photo of one of its tags; 0 when that never happens (or there is nothing to tell by).

    The chance that a prediction of confidence ``c`` is of a never-seen product is fitted as a
    non-increasing function of ``c`` (isotonic regression) on the evidence, with the simulated
    never-seen items weighted to make ``never_seen_share`` of uploads; the level is where it falls
    below one half.

    >>> e = OutOfFold(np.zeros(6, np.int64), np.array([0.9, 0.8, 0.7, 0.3, 0.25, 0.2]),
    ...               np.array([1, 1, 1, 0, 0, 1], bool), np.array([0, 0, 0, 1, 1, 0], bool))
    >>> round(novelty_level(e, never_seen_share=0.5), 2)
    0.3
    """
    if not evidence.unknown.any() or evidence.unknown.all():
        return 0.0
    from sklearn.isotonic import IsotonicRegression

    n_unknown, n_known = int(evidence.unknown.sum()), int((~evidence.unknown).sum())
    weight = np.where(
        evidence.unknown, never_seen_share / (1.0 - never_seen_share) * n_known / n_unknown, 1.0
    )
    fit = IsotonicRegression(increasing=False, out_of_bounds="clip")
    chance = fit.fit_transform(evidence.confidence, evidence.unknown.astype(np.float64), sample_weight=weight)
    novel = evidence.confidence[chance > 0.5]
    # "under which": everything up to the most confident novel-looking prediction, inclusive
    return float(np.nextafter(novel.max(), np.inf)) if novel.size else 0.0


def precision_lower_bound(right: int, total: int, level: float = 0.95) -> float | None:
    """One-sided Clopper-Pearson lower bound of a precision measured as ``right`` of ``total``.

    >>> round(precision_lower_bound(40, 40), 3), round(precision_lower_bound(400, 400), 3)
    (0.928, 0.993)
    """
    if total <= 0:
        return None
    if right <= 0:
        return 0.0
    from scipy.stats import beta

    return float(beta.ppf(1.0 - level, right, total - right + 1))


def calibrate_thresholds(
    evidence: OutOfFold,
    n_tags: int,
    *,
    target: float = DEFAULT_TARGET_PRECISION,
    settings: CalibrationSettings = DEFAULT_CALIBRATION,
) -> Calibration:
    """Per-tag thresholds for ``target`` precision from ``evidence`` (see the module docstring)."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"target precision must be in (0, 1), got {target}")
    known = evidence.known()
    internal = 1.0 - (1.0 - target) * settings.error_share
    pooled = pooled_threshold(known.confidence, known.correct, precision=internal)
    unknown_conf = evidence.confidence[evidence.unknown]
    if unknown_conf.size:
        pooled = max(pooled, never_seen_gate(unknown_conf, settings.never_seen_pass_for(target)))
    pooled = max(pooled, settings.min_threshold)
    thresholds = np.full(n_tags, min(pooled, NEVER), dtype=np.float64)
    if settings.confusion_margin < 1.0:
        wrong = ~known.correct
        for i in np.nonzero(wrong & (known.confidence >= settings.min_threshold))[0]:
            floor = min(1.0 - (1.0 - known.confidence[i]) * settings.confusion_margin, NEVER)
            for t in (known.tag[i], known.truth[i]):
                if 0 <= t < n_tags:
                    thresholds[t] = max(thresholds[t], floor)
    return _summarise(evidence, thresholds, target, pooled)


def float32_at_least(values: np.ndarray) -> np.ndarray:
    """``values`` in float32, each rounded *up* where float32 cannot hold it exactly: a threshold
    stored a hair lower than it was chosen would let through the prediction it was chosen to stop.

    >>> bool(float32_at_least(np.array([0.1]))[0] >= 0.1)
    True
    """
    values = np.asarray(values, dtype=np.float64)
    out = values.astype(np.float32)
    return np.where(out < values, np.nextafter(out, np.float32(np.inf)), out).astype(np.float32)


def _summarise(evidence: OutOfFold, thresholds: np.ndarray, target: float, pooled: float) -> Calibration:
    applied = evidence.confidence >= thresholds[evidence.tag] if len(evidence) else np.zeros(0, bool)
    known = ~evidence.unknown
    n_applied = int((applied & known).sum())
    n_right = int((applied & known & evidence.correct).sum())
    return Calibration(
        thresholds=float32_at_least(thresholds),
        target_precision=target,
        pooled_threshold=float(pooled),
        cv_precision=n_right / n_applied if n_applied else None,
        cv_precision_lower=precision_lower_bound(n_right, n_applied),
        cv_coverage=n_applied / max(int(known.sum()), 1),
        cv_applied=n_applied,
        cv_items=int(known.sum()),
        cv_unknown_applied=(
            float((applied & evidence.unknown).sum() / evidence.unknown.sum())
            if evidence.unknown.any()
            else None
        ),
    )
