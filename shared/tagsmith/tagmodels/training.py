"""Fitting a tag model's head on embeddings, with thresholds calibrated for a target precision.

Exclusive models: a ridge regression onto one-hot targets (closed form, about twenty times faster
than a multinomial logistic regression and as accurate on the grocery benchmark, see
``docs/benchmarks.md``), turned into probabilities by a softmax whose temperature is fitted on
out-of-fold scores. The temperature is folded into the weights, so the stored model stays a plain
linear head. Multi-label models: one class-balanced logistic regression per tag.

Both then get per-tag auto-apply thresholds from :mod:`tagsmith.tagmodels.calibration`.

Size: over 600 lines because the ridge fit, its exact leave-out cross-validation, the
series-aware folds and the temperature fit share private helpers over the same arrays, which the
fused text head (:mod:`tagsmith.tagmodels.text_head`) reuses; splitting them would export those.

Example::

    >>> rng = np.random.default_rng(0)
    >>> centres = np.eye(3, 16, dtype=np.float32)
    >>> x = np.repeat(centres, 8, axis=0) + 0.05 * rng.standard_normal((24, 16)).astype(np.float32)
    >>> head = fit_linear_head(x, ["a"] * 8 + ["b"] * 8 + ["c"] * 8, kind=ModelKind.EXCLUSIVE)
    >>> head.tags, head.thresholds.shape, head.cv_accuracy
    (('a', 'b', 'c'), (3,), 1.0)
"""

from __future__ import annotations

import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.csgraph
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from tagsmith.errors import TrainingInputError
from tagsmith.tagmodels.calibration import (
    DEFAULT_CALIBRATION,
    DEFAULT_TARGET_PRECISION,
    Calibration,
    CalibrationSettings,
    OutOfFold,
    calibrate_thresholds,
)
from tagsmith.tagmodels.model import ModelKind

__all__ = [
    "DEFAULT_RIDGE_ALPHA",
    "LinearHead",
    "class_balanced_weights",
    "fit_linear_head",
    "l2_normalise",
    "one_blas_thread",
    "series_folds",
    "series_groups",
]

#: Ridge penalty for exclusive heads, tuned on the grocery dev splits (0.1..3 tried).
DEFAULT_RIDGE_ALPHA = 0.3
CV_FOLDS = 5
#: Tags are split into this many groups to simulate never-seen items (see calibration).
UNKNOWN_GROUPS = 5
#: The near-twin cosine is a quantile over at most this many examples (a fixed random sample).
SERIES_SAMPLE = 1536
_TEMPERATURES = np.geomspace(1.0, 300.0, 60)
#: Probability mass the temperature fit moves off the true tag (see ``_fit_temperature``).
LABEL_SMOOTHING = 0.02
_BLAS_LIMIT = threading.RLock()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run BLAS/LAPACK single-threaded inside the block.

    OpenBLAS threads spin while they wait, and NumPy and SciPy each bring their own OpenBLAS: with
    two threads each on a shared 2-core machine, fitting 3,000 x 1632 took 2.4-21 s instead of
    0.6-1.6 s (docs/benchmarks.md, training speed). The limit is process-wide, so blocks run one at
    a time (a lock): two overlapping blocks would otherwise restore each other's settings wrongly.
    """
    with _BLAS_LIMIT, threadpool_limits(limits=1, user_api="blas"):
        yield


@dataclass(frozen=True)
class LinearHead:
    """A fitted head: ``scores = x @ coef.T + intercept`` (softmax or sigmoid in :class:`TagModel`).

    ``thresholds`` are the calibrated per-tag auto-apply thresholds, or ``None`` when there are too
    few examples to cross-validate (the caller then keeps its flat default).
    """

    tags: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray
    cv_accuracy: float | None  # exclusive models: out-of-fold top-1 accuracy on the examples
    thresholds: np.ndarray | None = None
    calibration: dict[str, Any] = field(default_factory=dict)
    #: (N, T) out-of-fold probabilities of the examples, in ``tags`` order (None without CV); the
    #: trainer's report and promotion reuse them instead of fitting every fold again.
    oof_probabilities: np.ndarray | None = None
    cv_folds: int = 0
    #: What the thresholds were chosen from (out-of-fold and simulated never-seen predictions):
    #: kept with the model so that a new precision target recalibrates without a fit.
    evidence: OutOfFold | None = None

    def thresholds_or(self, default: float) -> np.ndarray:
        """The calibrated thresholds, or ``default`` for every tag when there are none."""
        if self.thresholds is not None:
            return self.thresholds.astype(np.float32)
        return np.full(len(self.tags), default, dtype=np.float32)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fit_linear_head(
    embeddings: np.ndarray,
    labels: Sequence[str] | Sequence[frozenset[str]],
    *,
    kind: ModelKind,
    c: float = 10.0,
    alpha: float = DEFAULT_RIDGE_ALPHA,
    target_precision: float = DEFAULT_TARGET_PRECISION,
    calibrate: bool = True,
    negatives: np.ndarray | None = None,
    balanced: bool = True,
    views: np.ndarray | None = None,
    view_source: np.ndarray | Sequence[int] | None = None,
    settings: CalibrationSettings = DEFAULT_CALIBRATION,
    folds: Sequence[np.ndarray] | None = None,
) -> LinearHead:
    """Fit a head over L2-normalised embeddings and calibrate its thresholds (``settings``:
    :class:`~tagsmith.tagmodels.calibration.CalibrationSettings`).

    ``folds`` (exclusive only): the test rows of each cross-validation fold (examples, then
    negatives), when several heads must be compared on the same folds (:func:`cv_splits` of one
    set of features); default: this head's own :func:`cv_splits`.

    Exclusive: ``labels`` holds one tag per example. Multi-label: a set of tags per example
    (``c`` is the logistic regressions' inverse penalty). ``calibrate=False`` skips the
    cross-validation (``thresholds`` is then ``None``).

    Exclusive only: ``negatives`` are embeddings of photos that show none of the tags ("none of
    these" review answers): all-zero targets in the fit and always-wrong items in the calibration.
    ``balanced`` weighs each tag equally in the fit (:func:`class_balanced_weights`).

    ``views``: embeddings of augmented views (:mod:`tagsmith.encoder.augment`), extra *training*
    rows only; ``view_source[i]`` is the row its source photo has among ``embeddings`` (``0..N-1``)
    or, for a view of a negative, ``N + j`` for ``negatives[j]``. A view takes its source's label
    and class-balance weight (the balance counts originals only, so a tag's weight does not depend
    on how many views were made). Every cross-validation fold and never-seen group that leaves an
    example out leaves its views out too, and views are never scored: out-of-fold predictions,
    ``cv_accuracy`` and the calibration are over the originals (and negatives) alone.
    """
    x = l2_normalise(embeddings)
    n_neg = len(negatives) if negatives is not None else 0
    v, source = _checked_views(views, view_source, len(x) + n_neg, x.shape[1])
    if kind is ModelKind.EXCLUSIVE:
        neg = l2_normalise(negatives) if negatives is not None and len(negatives) else None
        with one_blas_thread():
            return _fit_exclusive(
                x,
                [str(lab) for lab in labels],
                alpha,
                target_precision,
                calibrate,
                neg,
                balanced,
                v,
                source,
                settings,
                folds,
            )
    if negatives is not None and len(negatives):
        raise TrainingInputError("negatives ('none of these' examples) are for exclusive models only")
    sets = [frozenset(lab) if not isinstance(lab, str) else frozenset([lab]) for lab in labels]
    return _fit_multilabel(x, sets, c, target_precision, calibrate, v, source, settings)


def _checked_views(
    views: np.ndarray | None, view_source: np.ndarray | Sequence[int] | None, n_rows: int, dim: int
) -> tuple[np.ndarray | None, np.ndarray]:
    """(L2-normalised views or None, source row of each) after checking they fit together."""
    if views is None or len(views) == 0:
        if view_source is not None and len(view_source):
            raise TrainingInputError("view_source given without views")
        return None, np.zeros(0, dtype=np.int64)
    views = np.asarray(views)
    if views.ndim != 2 or views.shape[1] != dim:
        raise TrainingInputError(f"views must be (M, {dim}) like the embeddings, got {views.shape}")
    if view_source is None:
        raise TrainingInputError("views need view_source: the row of each view's source example")
    source = np.asarray(view_source)
    if source.shape != (len(views),) or not np.issubdtype(source.dtype, np.integer):
        raise TrainingInputError(
            f"view_source must hold one integer row per view ({len(views)}), got {source.shape}"
        )
    if len(source) and (source.min() < 0 or source.max() >= n_rows):
        raise TrainingInputError(f"view_source rows must be in 0..{n_rows - 1} (examples, then negatives)")
    return l2_normalise(views), source.astype(np.int64)


def _with_views(rows: np.ndarray, source: np.ndarray, first_view: int) -> np.ndarray:
    """``rows`` (scored rows) followed by the rows of their views (views start at ``first_view``)."""
    if not len(source):
        return rows
    return np.concatenate([rows, first_view + np.nonzero(np.isin(source, rows))[0]])


# --- exclusive: ridge + temperature -----------------------------------------------------------------
class _RidgeFit:
    """Weighted ridge regression of one-hot targets on ``x`` (rows), unpenalised intercept, and what
    a fit *without* some rows would have predicted for them, without fitting again.

    ``y`` holds each row's class, or ``-1`` for a negative (an all-zero target: "none of these").
    ``weights`` (default 1) weigh each row's squared error; the intercept is the weighted mean.

    Leaving rows ``S`` out of a ridge fit is a low-rank change of the normal equations, so
    ``pred_S = y_S - (I - H_SS)^-1 (y_S - fitted_S)`` exactly, where ``H`` is the fit's hat matrix
    (Sherman-Morrison-Woodbury). With weights the same holds for the rows scaled by ``sqrt(w)``
    (then unscaled): the held-out fit is exactly the weighted fit of the other rows, each keeping
    its weight. Cross-validation folds and the never-seen tag groups are all such fits: one
    factorisation serves them all (``docs/benchmarks.md``, training speed). Past
    ``max_woodbury_rows`` left-out rows the ``|S| x |S|`` system costs more than a new fit, which is
    then what :meth:`held_out` does.

    The large products and the factorisation run in float32 (about twice as fast as float64 on
    the same BLAS); the small ``|S| x |S|`` systems in float64. Rows ``n`` > dimension ``d``: the
    primal ``d x d`` system; otherwise the dual ``n x n`` one.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        alpha: float,
        *,
        weights: np.ndarray | None = None,
        max_woodbury_rows: int | None = None,
    ) -> None:
        n, d = x.shape
        y = np.asarray(y)
        self.x, self.y, self.n_classes, self.n, self.alpha = x, y, n_classes, n, alpha
        self.max_woodbury_rows = max(1024, 3 * d // 2) if max_woodbury_rows is None else max_woodbury_rows
        self.weights = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
        if self.weights.shape != (n,) or not (self.weights > 0).all():
            raise ValueError("ridge weights must be one positive number per row")
        self.targets = np.zeros((n, n_classes), dtype=np.float64)
        tagged = y >= 0
        self.targets[np.nonzero(tagged)[0], y[tagged]] = 1.0
        w = self.weights
        self._root_w = root_w = np.sqrt(w)
        self._total_w = float(w.sum())
        mean_x = (w @ x.astype(np.float64)) / self._total_w
        mean_y = (w @ self.targets) / self._total_w
        self._xc = xc = ((x - mean_x) * root_w[:, None]).astype(np.float32)
        yc64 = (self.targets - mean_y) * root_w[:, None]
        yc = yc64.astype(np.float32)
        self._primal = n > d
        if self._primal:
            self._chol, coef = _primal_ridge(xc, yc, alpha)
            self.residuals = yc64 - (xc @ coef.T).astype(np.float64)  # scaled by sqrt(w)
        else:
            # Products, factorisation and inverse in float32, as the primal path's (at 3,000 rows
            # x 3,136 dims: 0.3 s against 1.5 s for the float64 Gram; LAPACK potri inverts from the
            # Cholesky factor in a quarter of the time of solving against I). The penalty keeps
            # the system well conditioned (eigenvalues >= alpha); the exactness tests hold 2e-4.
            gram = xc @ xc.T
            gram[np.diag_indices_from(gram)] += np.float32(alpha)
            factor, info = scipy.linalg.lapack.spotrf(gram, lower=1, clean=1, overwrite_a=1)
            if info == 0:
                lower, info = scipy.linalg.lapack.spotri(factor, lower=1, overwrite_c=1)
            if info != 0:
                raise np.linalg.LinAlgError(
                    f"ridge: the Gram matrix could not be inverted (LAPACK info {info})"
                )
            inverse = np.tril(lower).astype(np.float64)
            inverse += np.tril(inverse, -1).T
            self._gram_inverse = inverse
            dual = self._gram_inverse @ yc64
            coef = dual.astype(np.float32).T @ xc
            self.residuals = alpha * dual  # yc - K G^-1 yc = alpha G^-1 yc
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = mean_y - self.coef @ mean_x
        self._m: np.ndarray | None = None

    def held_out(self, rows: np.ndarray) -> np.ndarray:
        """Scores of ``rows`` (every class) by the ridge fit on all the other rows."""
        rows = np.asarray(rows)
        if self._primal and len(rows) > self.max_woodbury_rows:
            keep = np.setdiff1d(np.arange(self.n), rows)
            fit = _RidgeFit(
                self.x[keep], self.y[keep], self.n_classes, self.alpha, weights=self.weights[keep]
            )
            return np.asarray(self.x[rows] @ fit.coef.T + fit.intercept)
        # The intercept's share of the (scaled) hat matrix: sqrt(w_i w_j) / sum(w).
        root = self._root_w[rows]
        intercept_hat = np.outer(root, root) / self._total_w
        if self._primal:
            if self._m is None:  # L^-1 xc^T: the hat matrix is m^T m (+ the intercept's part)
                self._m = scipy.linalg.solve_triangular(
                    self._chol, self._xc.T, lower=True, check_finite=False
                )
            part = self._m[:, rows]
            i_minus_h = -(part.T @ part).astype(np.float64) - intercept_hat
            i_minus_h[np.diag_indices_from(i_minus_h)] += 1.0
        else:
            i_minus_h = self.alpha * self._gram_inverse[np.ix_(rows, rows)] - intercept_hat
        correction = scipy.linalg.solve(i_minus_h, self.residuals[rows], assume_a="pos", check_finite=False)
        return self.targets[rows] - correction / root[:, None]


def _primal_ridge(xc: np.ndarray, yc: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(Cholesky factor of ``xc^T xc + alpha I``, coefficients (classes, d)) for centred rows."""
    cov = xc.T @ xc
    cov[np.diag_indices_from(cov)] += np.float32(alpha)
    chol = scipy.linalg.cholesky(cov, lower=True, check_finite=False)
    coef = scipy.linalg.cho_solve((chol, True), xc.T @ yc, check_finite=False).T
    return chol, coef


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _fit_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """The scale ``s`` whose ``softmax(s * scores)`` best fits the labels (on the grid
    :data:`_TEMPERATURES`).

    The labels are smoothed (:data:`LABEL_SMOOTHING` spread over the other tags): on examples that
    cross-validation separates perfectly the plain likelihood grows without bound with ``s``, and
    a model would then call a blend of two tags a certainty.
    """
    n, t = scores.shape
    target = np.full((n, t), LABEL_SMOOTHING / max(t - 1, 1))
    target[np.arange(n), y] = 1.0 - LABEL_SMOOTHING
    target_score = (target * scores).sum(axis=1)
    top = scores.max(axis=1, keepdims=True)
    losses: dict[int, float] = {}

    def loss(i: int) -> float:  # cross-entropy against the smoothed labels at _TEMPERATURES[i]
        if i not in losses:
            s = float(_TEMPERATURES[i])
            log_norm = s * top[:, 0] + np.log(np.exp(s * (scores - top)).sum(axis=1))
            losses[i] = float((log_norm - s * target_score).mean())
        return losses[i]

    # The loss is convex in s (a log-sum-exp of functions linear in s, less a linear term), so
    # along the increasing grid it falls and then rises: the first grid point that is not above
    # the next one is the minimum, found by bisection in ~12 evaluations instead of 60.
    lo, hi = 0, len(_TEMPERATURES) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if loss(mid) <= loss(mid + 1):
            hi = mid
        else:
            lo = mid + 1
    return float(_TEMPERATURES[lo])


def class_balanced_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-row weights ``n / (T * n_tag)`` for tagged rows (each tag weighs as much in the fit, however
    many examples it has); negatives (``y == -1``) weigh 1, like an average example.

    Without them a few tags with many reviewed answers pull every uncertain photo towards themselves
    (docs/benchmarks.md, review loop).
    """
    tagged = y >= 0
    counts = np.bincount(y[tagged], minlength=n_classes).astype(np.float64)
    weights = np.ones(len(y))
    present = int((counts > 0).sum())
    weights[tagged] = tagged.sum() / (present * counts[y[tagged]])
    return weights


def series_similarity(x: np.ndarray, y: np.ndarray, quantile: float = 0.95) -> float:
    """This tenant's near-twin cosine: the ``quantile`` of every example's similarity to its nearest
    example of *another* tag. Two examples of one tag closer than nearly any two different products
    are taken to be shots of one series. ``x`` must be L2-normalised.
    """
    # A quantile needs no more than SERIES_SAMPLE rows' nearest neighbours (a fixed sample).
    rows = np.arange(len(y))
    if len(y) > SERIES_SAMPLE:
        rows = np.sort(np.random.default_rng(0).choice(len(y), SERIES_SAMPLE, replace=False))
    nearest_other = np.full(len(rows), -1.0, dtype=np.float32)
    for start in range(0, len(rows), 1024):
        chunk = rows[start : start + 1024]
        block = x[chunk] @ x.T
        block[y[chunk, None] == y[None, :]] = -1.0
        nearest_other[start : start + 1024] = block.max(axis=1)
    return float(np.quantile(nearest_other, quantile))


def series_groups(
    x: np.ndarray | Sequence[np.ndarray],
    y: np.ndarray,
    similarity: float | Sequence[float],
    *,
    min_series: int = 1,
) -> np.ndarray:
    """A group id per row: rows of the same class (``y``) joined by a chain of cosine similarities
    above ``similarity`` form one group (connected components), so a series of near-identical
    shots is one group. ``x`` must be L2-normalised. ``x`` may also be several embeddings of the
    same rows (one per recipe), each with its own ``similarity``: two rows are twins when any of
    them says so.

    A class that falls into fewer than ``min_series`` series keeps one group per row: holding out
    its only series would leave cross-validation no example of it to learn from, and the tag (a
    set of near-identical packshots, say) could then never be auto-applied.
    """
    views = [x] if isinstance(x, np.ndarray) else list(x)
    cuts = [similarity] * len(views) if isinstance(similarity, int | float) else list(similarity)
    groups = np.empty(len(y), dtype=np.int64)
    next_id = 0
    for c in np.unique(y):
        rows = np.nonzero(y == c)[0]
        twins = np.zeros((len(rows), len(rows)), dtype=bool)
        for v, cut in zip(views, cuts, strict=True):
            twins |= v[rows] @ v[rows].T > cut
        adjacency = scipy.sparse.csr_matrix(twins)
        count, labels = scipy.sparse.csgraph.connected_components(adjacency, directed=False)
        if count < min_series:
            count, labels = len(rows), np.arange(len(rows))
        groups[rows] = next_id + labels
        next_id += count
    return groups


def series_folds(y: np.ndarray, groups: np.ndarray, folds: int, seed: int = 0) -> list[np.ndarray]:
    """Test rows of each of ``folds`` folds: every group whole in one fold, each class's rows spread
    as evenly as the groups allow (largest groups first, each into the fold with the fewest rows of
    its class so far, ties by fewest rows overall)."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=np.int64)
    total = np.zeros(folds, dtype=np.int64)
    for c in np.unique(y):
        ids, sizes = np.unique(groups[y == c], return_counts=True)
        shuffled = rng.permutation(len(ids))
        order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]
        mine = np.zeros(folds, dtype=np.int64)
        for i in order:
            f = int(np.lexsort((np.arange(folds), total, mine))[0])
            fold_of[groups == ids[i]] = f
            mine[f] += sizes[i]
            total[f] += sizes[i]
    return [np.nonzero(fold_of == f)[0] for f in range(folds)]


def cv_splits(
    x: np.ndarray | Sequence[np.ndarray],
    y_tagged: np.ndarray,
    folds: int,
    settings: CalibrationSettings = DEFAULT_CALIBRATION,
) -> list[np.ndarray]:
    """The test rows of each cross-validation fold of an exclusive head: ``x`` holds the tagged
    examples (labels ``y_tagged``) then the negatives ("none of these"), L2-normalised; or several
    such embeddings of the same rows (one per recipe compared): twins by any of them are a series.

    A tag's series of near-identical shots stays in one fold (``settings.series_quantile`` and
    ``series_floor``; tags with fewer than ``settings.min_series`` series are split example by
    example). Negatives are spread over the folds one by one either
    way: they teach the model one product to refuse, and the calibration asks how it refuses new
    photos of *that* product, which a fold that saw none of them would not tell.
    """
    n_tagged = len(y_tagged)
    views = [x] if isinstance(x, np.ndarray) else list(x)
    cuts = [
        max(series_similarity(v[:n_tagged], y_tagged, settings.series_quantile), settings.series_floor)
        for v in views
    ]
    groups = series_groups([v[:n_tagged] for v in views], y_tagged, cuts, min_series=settings.min_series)
    tagged = series_folds(y_tagged, groups, folds)
    spread = np.random.default_rng(0).permutation(len(views[0]) - n_tagged) % folds
    return [np.concatenate([t, n_tagged + np.nonzero(spread == f)[0]]) for f, t in enumerate(tagged)]


def _fit_exclusive(
    x: np.ndarray,
    labels: list[str],
    alpha: float,
    target: float,
    calibrate: bool,
    negatives: np.ndarray | None = None,
    balanced: bool = True,
    views: np.ndarray | None = None,
    view_source: np.ndarray | None = None,
    settings: CalibrationSettings = DEFAULT_CALIBRATION,
    fold_rows: Sequence[np.ndarray] | None = None,
) -> LinearHead:
    tags = tuple(sorted(set(labels)))
    if len(tags) < 2:
        raise TrainingInputError(f"an exclusive model needs at least 2 tags with examples, got {len(tags)}")
    index = {t: i for i, t in enumerate(tags)}
    y_tagged = np.array([index[lab] for lab in labels])
    n_tagged = len(y_tagged)
    if negatives is not None and len(negatives):
        x = np.concatenate([x, negatives.astype(x.dtype)])
        y = np.concatenate([y_tagged, np.full(len(negatives), -1)])
    else:
        y = y_tagged
    n_scored = len(y)  # originals and negatives; views (training rows only) follow them
    weights = class_balanced_weights(y, len(tags)) if balanced else np.ones(n_scored)
    source = np.zeros(0, dtype=np.int64) if view_source is None else view_source
    if views is not None and len(source):
        # A view is its source's label with its source's weight (the balance counts originals).
        x = np.concatenate([x, views.astype(x.dtype)])
        y = np.concatenate([y, y[source]])
        weights = np.concatenate([weights, weights[source]])
    fit = _RidgeFit(x, y, len(tags), alpha, weights=weights)
    coef, intercept = fit.coef, fit.intercept

    def held_out(rows: np.ndarray) -> np.ndarray:
        # Scores of ``rows`` by the fit without them AND their views (no leak through a view).
        return fit.held_out(_with_views(rows, source, n_scored))[: len(rows)]

    folds = min(CV_FOLDS, min(Counter(y_tagged.tolist()).values()))
    if folds < 2:
        # Without cross-validation there is no temperature either: a conservative fixed scale.
        scale = 10.0
        return LinearHead(
            tags, (scale * coef).astype(np.float32), (scale * intercept).astype(np.float32), None
        )

    x_scored, y = x[:n_scored], y[:n_scored]
    oof_scores = np.zeros((n_scored, len(tags)))
    splits = (
        cv_splits(x_scored, y_tagged, folds, settings)
        if fold_rows is None
        else _checked_folds(fold_rows, n_scored)
    )
    for test in splits:
        oof_scores[test] = held_out(test)  # as if fitted on the other folds
    scale = _fit_temperature(oof_scores[:n_tagged], y_tagged)
    oof_p = _softmax(scale * oof_scores)
    predicted = oof_p.argmax(axis=1)
    cv_accuracy = float((predicted[:n_tagged] == y_tagged).mean())
    head = LinearHead(
        tags,
        (scale * coef).astype(np.float32),
        (scale * intercept).astype(np.float32),
        cv_accuracy,
        oof_probabilities=oof_p[:n_tagged].astype(np.float32),
        cv_folds=len(splits),
    )
    if not calibrate:
        return head
    # Negatives count as known items that are always wrong: a tag predicted on a "none of these"
    # photo with some confidence needs more than that to be auto-applied.
    known = OutOfFold(
        tag=predicted,
        confidence=oof_p.max(axis=1),
        correct=predicted == y,
        unknown=np.zeros(len(y), bool),
        truth=y,
    )
    evidence = OutOfFold.concat([known, _unknown_predictions(held_out, y, len(tags), scale)])
    head = replace(head, evidence=evidence)
    calibration = calibrate_thresholds(evidence, len(tags), target=target, settings=settings)
    return _with_calibration(head, calibration, temperature=scale)


def _checked_folds(folds: Sequence[np.ndarray], n_rows: int) -> list[np.ndarray]:
    """Given test rows of each fold, checked to cover every scored row exactly once."""
    rows = np.concatenate([np.asarray(f, dtype=np.int64) for f in folds]) if folds else np.zeros(0, np.int64)
    if len(folds) < 2 or len(rows) != n_rows or not np.array_equal(np.sort(rows), np.arange(n_rows)):
        raise TrainingInputError(
            f"folds must split the {n_rows} scored rows (examples, then negatives) into 2 or more parts"
        )
    return [np.asarray(f, dtype=np.int64) for f in folds]


def _unknown_predictions(
    held_out: Callable[[np.ndarray], np.ndarray], y: np.ndarray, n_tags: int, scale: float
) -> OutOfFold:
    """Each group of tags' examples as predicted by a model that never saw those tags.

    Such a model is the ridge fit without the group's examples (the other tags' targets are zero
    on them), restricted to the tags it saw: ``held_out`` (the fit's, leaving views out with their
    sources) gives it without fitting again. Negatives (``y == -1``) belong to no group.
    """
    groups = min(UNKNOWN_GROUPS, n_tags)
    if groups < 2:
        return OutOfFold.concat([])
    order = np.random.default_rng(0).permutation(n_tags)
    group_of = np.empty(n_tags, dtype=np.int64)
    group_of[order] = np.arange(n_tags) % groups
    parts = []
    for g in range(groups):
        held = (y >= 0) & (group_of[np.maximum(y, 0)] == g)
        seen = np.nonzero(group_of != g)[0]
        if len(seen) < 2:
            continue
        p = _softmax(scale * held_out(np.nonzero(held)[0])[:, seen])
        parts.append(
            OutOfFold(
                tag=seen[p.argmax(axis=1)],
                confidence=p.max(axis=1),
                correct=np.zeros(int(held.sum()), bool),
                unknown=np.ones(int(held.sum()), bool),
            )
        )
    return OutOfFold.concat(parts)


def _with_calibration(head: LinearHead, calibration: Calibration, **extra: float) -> LinearHead:
    metrics: dict[str, Any] = {**calibration.metrics(), **extra}
    return replace(head, thresholds=calibration.thresholds, calibration=metrics)


# --- multi-label: one logistic regression per tag ---------------------------------------------------
def _fit_binary(x: np.ndarray, yb: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, yb)
    return clf.coef_[0], float(clf.intercept_[0])


def _fit_multilabel(
    x: np.ndarray,
    sets: list[frozenset[str]],
    c: float,
    target: float,
    calibrate: bool,
    views: np.ndarray | None = None,
    view_source: np.ndarray | None = None,
    settings: CalibrationSettings = DEFAULT_CALIBRATION,
) -> LinearHead:
    tags = tuple(sorted(set().union(*sets)))
    if len(tags) < 1:
        raise TrainingInputError("a multi-label model needs at least one tag with examples")
    truth = np.array([[t in s for t in tags] for s in sets], dtype=bool)
    for j, tag in enumerate(tags):
        if truth[:, j].all():
            raise TrainingInputError(f"tag {tag!r} is on every example: add examples without it")
    source = np.zeros(0, dtype=np.int64) if views is None or view_source is None else view_source
    # Views are extra training rows with their source's tags; never scored.
    x_all = x if not len(source) else np.concatenate([x, np.asarray(views, dtype=x.dtype)])
    truth_all = truth if not len(source) else np.concatenate([truth, truth[source]])
    fitted = [_fit_binary(x_all, truth_all[:, j], c) for j in range(len(tags))]
    head = LinearHead(
        tags,
        np.asarray([w for w, _ in fitted], np.float32),
        np.asarray([b for _, b in fitted], np.float32),
        None,
    )
    folds = min(CV_FOLDS, len(sets))
    if not calibrate or folds < 2:
        return head
    oof = np.full(truth.shape, np.nan)
    for train, test in KFold(folds, shuffle=True, random_state=0).split(x):
        train = _with_views(train, source, len(x))  # the views of the held-out examples stay out
        for j in range(len(tags)):
            yb = truth_all[train, j]
            if yb.all() or not yb.any():
                continue  # this fold cannot learn the tag: its examples give no evidence
            w, b = _fit_binary(x_all[train], yb, c)
            oof[test, j] = 1.0 / (1.0 + np.exp(-(x[test] @ w + b)))
    head = replace(head, oof_probabilities=np.nan_to_num(oof, nan=0.0).astype(np.float32), cv_folds=folds)
    rows, cols = np.nonzero(~np.isnan(oof))
    candidates = OutOfFold(
        tag=cols,
        confidence=oof[rows, cols],
        correct=truth[rows, cols],
        unknown=np.zeros(len(rows), bool),
    )
    head = replace(head, evidence=candidates)
    return _with_calibration(
        head, calibrate_thresholds(candidates, len(tags), target=target, settings=settings)
    )
