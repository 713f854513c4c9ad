"""A tag model that also reads the printed text: an image head and a text head, fused late.

Both heads are ridge regressions onto one-hot targets (like the image-only head of
:mod:`tagsmith.tagmodels.training`), one over the L2-normalised image embedding, one over the
hashed character n-grams of the OCR text (:func:`tagsmith.ocr.text_features`; no text is a zero
row). Their scores are added with a text weight ``w`` and turned into probabilities by a softmax
of temperature ``s``::

    p = softmax(s * (image_scores + w * text_scores))

``w`` and ``s`` are chosen together on out-of-fold scores (smoothed log-loss, ``w = 0`` allowed,
so text that does not help is switched off), and the per-tag thresholds are then calibrated on the
*fused* out-of-fold predictions, with never-seen items simulated by held-out groups of tags exactly
as for image-only models (:mod:`tagsmith.tagmodels.calibration`). The image head alone gets its own
temperature and thresholds too: they score assets whose text could not be read.

Why late fusion rather than one ridge over the concatenation: the text block is 4,096-d, and a
joint fit would grow its Gram matrix by the dense 4,096 columns; and a separate image head is what
assets without readable text fall back to. Both heads run in the dual (kernel) form: the image Gram
(N x N) and the text Gram (a sparse product, cheap) are factorised once each, and every
cross-validation fold and never-seen group is then an exact leave-rows-out update (as in
``training._RidgeFit``), not a new fit.

Example::

    >>> from tagsmith.tagmodels.model import TextFeatures
    >>> rng = np.random.default_rng(0)
    >>> x = np.repeat(np.eye(2, 8, dtype=np.float32), 6, axis=0) + 0.3 * rng.standard_normal((12, 8))
    >>> texts = ["oat"] * 6 + ["milk"] * 6
    >>> head = fit_fused_head(x, texts, ["a"] * 6 + ["b"] * 6, features=TextFeatures("demo-ocr", dim=64))
    >>> head.tags, head.cv_accuracy, head.text_weight > 0
    (('a', 'b'), 1.0, True)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse

from tagsmith.errors import TrainingInputError
from tagsmith.tagmodels.calibration import (
    DEFAULT_CALIBRATION,
    DEFAULT_TARGET_PRECISION,
    Calibration,
    CalibrationSettings,
    OutOfFold,
    calibrate_thresholds,
)
from tagsmith.tagmodels.model import TextFeatures, TextHead
from tagsmith.tagmodels.training import (
    _TEMPERATURES,
    CV_FOLDS,
    DEFAULT_RIDGE_ALPHA,
    LABEL_SMOOTHING,
    UNKNOWN_GROUPS,
    LinearHead,
    _checked_views,
    _with_views,
    cv_splits,
    l2_normalise,
)

__all__ = ["DEFAULT_TEXT_ALPHA", "TEXT_WEIGHTS", "FusedHead", "fit_fused_head", "fuse_scores"]

#: Ridge penalty of the text head (hashed n-grams are sparse and L2-normalised).
DEFAULT_TEXT_ALPHA = 1.0
#: Text weights tried by cross-validation (0: text ignored).
TEXT_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.4, 2.0)
#: Without cross-validation (fewer than 2 examples of some tag): fixed scale and weight.
_UNVALIDATED_SCALE, _UNVALIDATED_WEIGHT = 10.0, 0.5


@dataclass(frozen=True)
class FusedHead(LinearHead):
    """A fitted image + text head. ``coef``/``intercept``/``thresholds`` are as for
    :class:`LinearHead`, except that ``thresholds`` and ``oof_probabilities`` describe the *fused*
    scores; the image head's own calibration is in ``image_thresholds`` (None without CV)."""

    text_coef: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    text_intercept: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    image_scale: float = 1.0
    text_weight: float = 0.0
    image_thresholds: np.ndarray | None = None
    features: TextFeatures | None = None
    #: the image head's own calibration evidence (``evidence`` is the fused scores')
    image_evidence: OutOfFold | None = None

    def text_head(self, *, threshold: float | None, default: float) -> TextHead:
        """The model's :class:`TextHead`; ``threshold`` (a flat one the caller asked for) or
        ``default`` (no calibration) stand in for the image-only thresholds like for the fused ones."""
        assert self.features is not None
        if threshold is not None:
            image_thresholds = np.full(len(self.tags), threshold, dtype=np.float32)
        elif self.image_thresholds is not None:
            image_thresholds = self.image_thresholds.astype(np.float32)
        else:
            image_thresholds = np.full(len(self.tags), default, dtype=np.float32)
        return TextHead(
            features=self.features,
            coef=self.text_coef.astype(np.float32),
            intercept=self.text_intercept.astype(np.float32),
            image_scale=float(self.image_scale),
            image_thresholds=image_thresholds,
            weight=float(self.text_weight),
        )


def fuse_scores(image_scores: np.ndarray, text_scores: np.ndarray, weight: float, scale: float) -> np.ndarray:
    """Fused probabilities ``softmax(scale * (image_scores + weight * text_scores))`` (rows).

    >>> fuse_scores(np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]]), 1.0, 1.0).round(3).tolist()
    [[0.269, 0.731]]
    """
    return _softmax(scale * (np.asarray(image_scores) + weight * np.asarray(text_scores)))


# --- kernel ridge ------------------------------------------------------------------------------------
class _KernelRidge:
    """Ridge regression of one-hot targets with an unpenalised intercept, in the dual form on a
    precomputed Gram matrix (so the text head's comes from a sparse product), and what the fit
    *without* some rows predicts for them, without fitting again.

    The same algebra as ``training._RidgeFit``: with ``G`` the centred Gram plus ``alpha``, the hat
    matrix is ``1/n + Kc G^-1`` and ``I - Kc G^-1 = alpha G^-1``, so leaving rows ``S`` out gives
    ``pred_S = y_S - (alpha G^-1_SS - 1/n)^-1 (alpha G^-1 yc)_S`` exactly (Sherman-Morrison-Woodbury).
    One inversion serves every cross-validation fold and never-seen group.
    """

    def __init__(self, gram: np.ndarray, y: np.ndarray, n_classes: int, alpha: float) -> None:
        n = gram.shape[0]
        self.n, self.alpha = n, alpha
        self.row_mean = gram.mean(axis=0)
        k_c = gram - self.row_mean[None, :] - self.row_mean[:, None] + float(self.row_mean.mean())
        k_c[np.diag_indices_from(k_c)] += alpha
        self.targets = np.zeros((n, n_classes))
        tagged = np.nonzero(y >= 0)[0]  # y == -1: a negative, all-zero targets ("none of these")
        self.targets[tagged, y[tagged]] = 1.0
        self.y_mean = self.targets.mean(axis=0)
        # NumPy's LAPACK, not scipy's: on a busy 2-core machine scipy's second OpenBLAS thread pool
        # made these factorisations many times slower
        self.inverse = np.linalg.inv(k_c)
        self.dual = self.inverse @ (self.targets - self.y_mean)
        self.residuals = alpha * self.dual

    def held_out(self, rows: np.ndarray) -> np.ndarray:
        """Scores of ``rows`` (every class) by the ridge fitted on all the other rows."""
        rows = np.asarray(rows)
        i_minus_h = self.alpha * self.inverse[np.ix_(rows, rows)] - 1.0 / self.n
        return np.asarray(self.targets[rows] - np.linalg.solve(i_minus_h, self.residuals[rows]))

    def primal(self, features: Any) -> tuple[np.ndarray, np.ndarray]:
        """(coef (T, D), intercept (T,)) of the fit on every row; ``features`` (N, D), dense or
        sparse, are the rows the Gram matrix was made of."""
        mean = np.asarray(features.mean(axis=0)).ravel()
        # coef = dual^T (F - 1 mean^T), without densifying a sparse F
        coef = np.asarray((features.T @ self.dual).T) - np.outer(self.dual.sum(axis=0), mean)
        return coef, self.y_mean - coef @ mean


# --- fitting -----------------------------------------------------------------------------------------
def fit_fused_head(
    embeddings: np.ndarray,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    features: TextFeatures,
    alpha: float = DEFAULT_RIDGE_ALPHA,
    text_alpha: float = DEFAULT_TEXT_ALPHA,
    target_precision: float = DEFAULT_TARGET_PRECISION,
    calibrate: bool = True,
    weights: Sequence[float] = TEXT_WEIGHTS,
    views: np.ndarray | None = None,
    view_source: np.ndarray | Sequence[int] | None = None,
    negatives: np.ndarray | None = None,
    negative_texts: Sequence[str] | None = None,
    settings: CalibrationSettings = DEFAULT_CALIBRATION,
) -> FusedHead:
    """Fit an exclusive image + text head (see the module docstring) and calibrate its thresholds.

    ``texts[i]`` is the OCR text of example ``i`` (``""`` when nothing was read). ``negatives``
    and ``negative_texts``: embeddings and OCR text of photos that show none of the tags ("none of
    these" review answers): all-zero targets in both heads, always-wrong items in the calibration,
    as in :func:`tagsmith.tagmodels.training.fit_linear_head`. ``views``: embeddings of augmented
    views, extra training rows of both heads carrying their source's label and text;
    ``view_source[i]`` is the source's row among the examples (``0..N-1``) or ``N + j`` for
    ``negatives[j]``. A fold or never-seen group that leaves a row out leaves its views out, and
    views are never scored.
    """
    if len(texts) != len(labels) or len(embeddings) != len(labels):
        raise TrainingInputError(
            f"{len(embeddings)} embeddings, {len(texts)} texts and {len(labels)} labels: one of each per example"
        )
    labels = [str(lab) for lab in labels]
    tags = tuple(sorted(set(labels)))
    if len(tags) < 2:
        raise TrainingInputError(f"an exclusive model needs at least 2 tags with examples, got {len(tags)}")
    index = {t: i for i, t in enumerate(tags)}
    y_tagged = np.array([index[lab] for lab in labels])
    n_tags, n_tagged = len(tags), len(y_tagged)

    x = l2_normalise(embeddings).astype(np.float64)
    texts = list(texts)
    y = y_tagged
    if negatives is not None and len(negatives):
        if negative_texts is None or len(negative_texts) != len(negatives):
            raise TrainingInputError(
                f"{len(negatives)} negatives need as many texts, got "
                f"{'none' if negative_texts is None else len(negative_texts)}"
            )
        x = np.concatenate([x, l2_normalise(negatives).astype(np.float64)])
        texts += list(negative_texts)
        y = np.concatenate([y_tagged, np.full(len(negatives), -1)])
    n = len(y)  # scored rows: examples, then negatives; views (training rows only) follow them
    v, source = _checked_views(views, view_source, n, x.shape[1])
    if v is not None:  # a view reads as its source: same label, same text
        x = np.concatenate([x, v.astype(np.float64)])
        texts += [texts[i] for i in source]
        y_all = np.concatenate([y, y[source]])
    else:
        y_all = y
    f = scipy.sparse.csr_matrix(features.vectors(texts).astype(np.float64))
    image = _HeldOutWithViews(_KernelRidge(x @ x.T, y_all, n_tags, alpha), source, n)
    text = _HeldOutWithViews(
        _KernelRidge(np.asarray((f @ f.T).todense()), y_all, n_tags, text_alpha), source, n
    )
    w_img, b_img = image.fit.primal(x)
    w_txt, b_txt = text.fit.primal(f)
    x = x[:n]

    folds = min(CV_FOLDS, min(Counter(y_tagged.tolist()).values()))
    if folds < 2:
        s = _UNVALIDATED_SCALE
        return FusedHead(
            tags,
            (s * w_img).astype(np.float32),
            (s * b_img).astype(np.float32),
            None,
            text_coef=(s * _UNVALIDATED_WEIGHT * w_txt).astype(np.float32),
            text_intercept=(s * _UNVALIDATED_WEIGHT * b_txt).astype(np.float32),
            image_scale=1.0,
            text_weight=_UNVALIDATED_WEIGHT,
            features=features,
        )

    # Out-of-fold scores of both heads, on the same folds as the image-only head would use
    # (negatives spread over the folds), temperatures and text weight fitted on the examples.
    oof_img = np.zeros((n, n_tags))
    oof_txt = np.zeros((n, n_tags))
    for test in cv_splits(x[:n], y_tagged, folds, settings):
        oof_img[test] = image.held_out(test)  # as if fitted on the other folds
        oof_txt[test] = text.held_out(test)
    tagged_img, tagged_txt = oof_img[:n_tagged], oof_txt[:n_tagged]
    s0, _ = _best_scale(tagged_img, y_tagged)
    best = min(
        ((_best_scale(tagged_img + w * tagged_txt, y_tagged), w) for w in weights),
        key=lambda r: (r[0][1], r[1]),
    )
    (s, _), w = best
    oof_p = _softmax(s * (oof_img + w * oof_txt))
    predicted = oof_p[:n_tagged].argmax(axis=1)
    head = FusedHead(
        tags,
        (s0 * w_img).astype(np.float32),
        (s0 * b_img).astype(np.float32),
        float((predicted == y_tagged).mean()),
        oof_probabilities=oof_p[:n_tagged].astype(np.float32),
        cv_folds=folds,
        text_coef=(s * w * w_txt).astype(np.float32),
        text_intercept=(s * w * b_txt).astype(np.float32),
        image_scale=s / s0,
        text_weight=w,
        features=features,
    )
    if not calibrate:
        return head

    # Negatives count as known items that are always wrong (their y is -1).
    image_p = _softmax(s0 * oof_img)
    unknown_fused, unknown_image = _unknown_predictions(image, text, y, n_tags, s0, s, w)
    fused_evidence = OutOfFold.concat([_known(oof_p, y), unknown_fused])
    image_evidence = OutOfFold.concat([_known(image_p, y), unknown_image])
    fused_cal, image_cal = (
        calibrate_thresholds(evidence, n_tags, target=target_precision, settings=settings)
        for evidence in (fused_evidence, image_evidence)
    )
    metrics: dict[str, Any] = {
        **fused_cal.metrics(),
        "temperature": s,
        "text_weight": w,
        "image_temperature": s0,
        "image_cv_accuracy": float((image_p[:n_tagged].argmax(axis=1) == y_tagged).mean()),
        **{f"image_{k}": v for k, v in _image_metrics(image_cal).items()},
    }
    return replace(
        head,
        thresholds=fused_cal.thresholds,
        calibration=metrics,
        image_thresholds=image_cal.thresholds,
        evidence=fused_evidence,
        image_evidence=image_evidence,
    )


class _HeldOutWithViews:
    """A :class:`_KernelRidge` whose held-out rows take their augmented views out with them."""

    def __init__(self, fit: _KernelRidge, source: np.ndarray, first_view: int) -> None:
        self.fit, self.source, self.first_view = fit, source, first_view

    def held_out(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        return self.fit.held_out(_with_views(rows, self.source, self.first_view))[: len(rows)]


def _image_metrics(cal: Calibration) -> dict[str, float | int | None]:
    m = cal.metrics()
    return {k: m[k] for k in ("cv_precision", "cv_precision_lower", "cv_coverage", "cv_unknown_applied")}


def _known(p: np.ndarray, y: np.ndarray) -> OutOfFold:
    predicted = p.argmax(axis=1)
    return OutOfFold(
        tag=predicted,
        confidence=p.max(axis=1),
        correct=predicted == y,
        unknown=np.zeros(len(y), bool),
        truth=y,
    )


def _unknown_predictions(
    image: _HeldOutWithViews,
    text: _HeldOutWithViews,
    y: np.ndarray,
    n_tags: int,
    s0: float,
    s: float,
    w: float,
) -> tuple[OutOfFold, OutOfFold]:
    """Each group of tags' examples as predicted, fused and image-only, by heads that never saw
    those tags (the same groups as ``training._unknown_predictions``; negatives, ``y == -1``,
    belong to no group)."""
    groups = min(UNKNOWN_GROUPS, n_tags)
    if groups < 2:
        return OutOfFold.concat([]), OutOfFold.concat([])
    order = np.random.default_rng(0).permutation(n_tags)
    group_of = np.empty(n_tags, dtype=np.int64)
    group_of[order] = np.arange(n_tags) % groups
    fused_parts: list[OutOfFold] = []
    image_parts: list[OutOfFold] = []
    for g in range(groups):
        held = (y >= 0) & (group_of[np.maximum(y, 0)] == g)
        seen = np.nonzero(group_of != g)[0]
        if len(seen) < 2:
            continue
        # the fit without the group's rows, restricted to the tags it saw (ridge columns are
        # independent, and the other tags' targets are zero on those rows)
        test = np.nonzero(held)[0]
        si = image.held_out(test)[:, seen]
        st = text.held_out(test)[:, seen]
        for p, parts in ((_softmax(s * (si + w * st)), fused_parts), (_softmax(s0 * si), image_parts)):
            parts.append(
                OutOfFold(
                    tag=seen[p.argmax(axis=1)],
                    confidence=p.max(axis=1),
                    correct=np.zeros(len(test), bool),
                    unknown=np.ones(len(test), bool),
                )
            )
    return OutOfFold.concat(fused_parts), OutOfFold.concat(image_parts)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def _best_scale(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(scale, loss): the softmax temperature that best fits the labels, smoothed as in
    ``training._fit_temperature`` (a perfectly separated fold must not make the model certain)."""
    n, t = scores.shape
    target = np.full((n, t), LABEL_SMOOTHING / max(t - 1, 1))
    target[np.arange(n), y] = 1.0 - LABEL_SMOOTHING
    best, best_loss = 1.0, np.inf
    for s in _TEMPERATURES:
        z = s * scores
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = float(-(target * log_p).sum(axis=1).mean())
        if loss < best_loss:
            best, best_loss = float(s), loss
    return best, best_loss
