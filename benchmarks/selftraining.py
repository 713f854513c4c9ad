"""Self-training on the unlabelled library: measured, not shipped (issue 12).

    python -m benchmarks.selftraining                # grocery and clothing, k = 5 / 10, 5 seeds
    python -m benchmarks.selftraining --taus 0.9 0.7 0.5

The question: a tenant's library holds thousands of untagged photos of the same products. Does a
head refitted on its own confident predictions about them (pseudo-labels) tag new photos better,
and does the calibration the product already has still hold for it?

Per split, one fixed recipe per catalogue (the one the product's choice settles on most often:
the zoom for grocery, the whole photo for clothing), the product's exclusive ridge head
(:func:`tagsmith.tagmodels.fit_linear_head`, calibrated on the support photos as shipped), then:

1. score the library (``benchmarks.catalogues.pool_paths`` minus the support photos: grocery's
   ``train/``, clothing's ``train`` contributors) and keep the photos whose best tag's confidence is
   at least ``tau``;
2. refit the ridge on the support photos (class-balanced weights) plus those photos, each weighing
   one, with their best tag as the label; keep the support-only head's temperature and thresholds;
3. measure top-1, coverage and precision of the auto-applied tags on the test photos.

``tau`` is compared on the test photos it is reported on: the figures are an upper bound for the
idea, not a tuned setting. Uses cached features (``benchmarks.catalogues``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np
from tagsmith.encoder import ridge_alpha_for
from tagsmith.tagmodels import ModelKind, fit_linear_head
from tagsmith.tagmodels.calibration import OutOfFold, calibrate_thresholds
from tagsmith.tagmodels.training import (
    CV_FOLDS,
    _fit_temperature,
    _RidgeFit,
    _unknown_predictions,
    class_balanced_weights,
    cv_splits,
    l2_normalise,
)

from benchmarks.automation import RECIPE_FEATURES, Catalogue
from benchmarks.catalogues import SEEDS, load_split, pool_paths

RECIPE = {"grocery": "effnet-lite2-260-s567g-c70-v1", "clothing": "effnet-lite2-260-s567g-v1"}


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def one_split(cat: Catalogue, name: str, k: int, seed: int, tau: float | None) -> tuple[float, ...]:
    """(top-1, coverage, precision of the applied, share of the library pseudo-labelled)."""
    recipe = RECIPE[name]
    alpha = ridge_alpha_for(recipe) or 0.3
    split = load_split(name, k, seed)
    support = [p for p, _ in split.support]
    labels = [lab for _, lab in split.support]
    taken = set(support)
    xs = np.stack([cat.vectors[recipe][p] for p in support])
    xp = l2_normalise(np.stack([cat.vectors[recipe][p] for p in pool_paths(name) if p not in taken]))
    xt = l2_normalise(np.stack([cat.vectors[recipe][p] for p, _ in split.test]))
    yt = np.array([lab for _, lab in split.test])
    head = fit_linear_head(xs, labels, kind=ModelKind.EXCLUSIVE, alpha=alpha)
    assert head.thresholds is not None
    tags = np.asarray(head.tags)
    scale = float(head.calibration["temperature"])
    coef, intercept, kept = head.coef, head.intercept, 0.0
    if tau is not None:
        p = softmax(xp @ coef.T + intercept)
        keep = p.max(axis=1) >= tau
        kept = float(keep.mean())
        y = np.array([list(tags).index(lab) for lab in labels])
        fit = _RidgeFit(
            np.concatenate([l2_normalise(xs), xp[keep]]),
            np.concatenate([y, p.argmax(axis=1)[keep]]),
            len(tags),
            alpha,
            weights=np.concatenate([class_balanced_weights(y, len(tags)), np.ones(int(keep.sum()))]),
        )
        coef, intercept = scale * fit.coef, scale * fit.intercept
    pt = softmax(xt @ coef.T + intercept)
    best = pt.argmax(axis=1)
    applied = pt.max(axis=1) >= head.thresholds[best]
    right = tags[best] == yt
    precision = float(right[applied].mean()) if applied.any() else 1.0
    return float(right.mean()), float(applied.mean()), precision, kept


def self_trained(
    xs: np.ndarray, y: np.ndarray, n_tags: int, xp: np.ndarray, alpha: float, scale: float, tau: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """(coef, intercept) of the ridge refitted on ``xs`` plus the library photos its own fit
    labels at a confidence of at least ``tau`` (confidence with the temperature ``scale``), and the
    share of the library used."""
    w = class_balanced_weights(y, n_tags)
    first = _RidgeFit(xs, y, n_tags, alpha, weights=w)
    p = softmax(scale * (xp @ first.coef.T + first.intercept))
    keep = p.max(axis=1) >= tau
    fit = _RidgeFit(
        np.concatenate([xs, xp[keep]]),
        np.concatenate([y, p.argmax(axis=1)[keep]]),
        n_tags,
        alpha,
        weights=np.concatenate([w, np.ones(int(keep.sum()))]),
    )
    return fit.coef, fit.intercept, float(keep.mean())


def in_fold_split(cat: Catalogue, name: str, k: int, seed: int, tau: float) -> tuple[float, ...]:
    """Self-training calibrated honestly: every cross-validation fold and every never-seen group
    pseudo-labels the library with its own model (one that never saw the held-out photos, or
    their tags) before it scores them; the temperature and the thresholds come from those scores
    by the product's own rules. Returns what :func:`one_split` does."""
    recipe = RECIPE[name]
    alpha = ridge_alpha_for(recipe) or 0.3
    split = load_split(name, k, seed)
    support = [p for p, _ in split.support]
    taken = set(support)
    tags = np.array(sorted({lab for _, lab in split.support}))
    index = {t: i for i, t in enumerate(tags)}
    y = np.array([index[lab] for _, lab in split.support])
    xs = l2_normalise(np.stack([cat.vectors[recipe][p] for p in support]))
    xp = l2_normalise(np.stack([cat.vectors[recipe][p] for p in pool_paths(name) if p not in taken]))
    xt = l2_normalise(np.stack([cat.vectors[recipe][p] for p, _ in split.test]))
    yt = np.array([lab for _, lab in split.test])
    # The pseudo-labelling confidence uses the support-only temperature (as shipped) everywhere.
    scale0 = _support_scale(xs, y, len(tags), alpha)

    def held_out(rows: np.ndarray) -> np.ndarray:
        rest = np.setdiff1d(np.arange(len(y)), rows)
        seen = np.unique(y[rest])
        # A fit that never saw some tags knows only the others (as the product's never-seen groups).
        remap = -np.ones(len(tags), dtype=np.int64)
        remap[seen] = np.arange(len(seen))
        coef, icpt, _ = self_trained(xs[rest], remap[y[rest]], len(seen), xp, alpha, scale0, tau)
        scores = np.zeros((len(rows), len(tags)))
        scores[:, seen] = xs[rows] @ coef.T + icpt
        return scores

    splits = cv_splits(xs, y, min(CV_FOLDS, int(np.bincount(y).min())))
    oof = np.zeros((len(y), len(tags)))
    for test in splits:
        oof[test] = held_out(test)
    scale = _fit_temperature(oof, y)
    p_oof = softmax(scale * oof)
    predicted = p_oof.argmax(axis=1)
    known = OutOfFold(
        tag=predicted, confidence=p_oof.max(axis=1), correct=predicted == y,
        unknown=np.zeros(len(y), bool), truth=y,
    )  # fmt: skip
    evidence = OutOfFold.concat([known, _unknown_predictions(held_out, y, len(tags), scale)])
    thresholds = calibrate_thresholds(evidence, len(tags), target=0.98).thresholds
    coef, icpt, kept = self_trained(xs, y, len(tags), xp, alpha, scale0, tau)
    pt = softmax(scale * (xt @ coef.T + icpt))
    best = pt.argmax(axis=1)
    applied = pt.max(axis=1) >= thresholds[best]
    right = tags[best] == yt
    precision = float(right[applied].mean()) if applied.any() else 1.0
    return float(right.mean()), float(applied.mean()), precision, kept


def _support_scale(xs: np.ndarray, y: np.ndarray, n_tags: int, alpha: float) -> float:
    head = fit_linear_head(xs, [str(v) for v in y], kind=ModelKind.EXCLUSIVE, alpha=alpha)
    return float(head.calibration["temperature"])


def run(
    taus: Sequence[float] = (0.7, 0.5), ks: Sequence[int] = (5, 10), *, in_fold: bool = True
) -> dict[str, Any]:
    """Every (catalogue, k, tau, calibration) row, means over the seeds (``tau`` None: no
    self-training); ``in_fold`` adds the rows calibrated on self-trained folds."""
    rows = []
    for name in RECIPE:
        cat = Catalogue.load(name, tuple(RECIPE_FEATURES), extra_paths=pool_paths(name))
        for k in ks:
            cases = [(tau, "support") for tau in [None, *taus]]
            cases += [(tau, "self-trained folds") for tau in taus] if in_fold else []
            for tau, calibration in cases:
                if calibration == "support":
                    got = np.array([one_split(cat, name, k, s, tau) for s in SEEDS])
                else:
                    assert tau is not None
                    got = np.array([in_fold_split(cat, name, k, s, tau) for s in SEEDS])
                top1, cov, prec, kept = (100 * got[:, i] for i in range(4))
                rows.append(
                    {
                        "catalogue": name, "k": k, "tau": tau, "calibration": calibration, "top1": float(top1.mean()),
                        "coverage": float(cov.mean()), "precision": float(prec.mean()),
                        "precision_min": float(prec.min()), "library_used": float(kept.mean()),
                    }
                )  # fmt: skip
                print(table_row(rows[-1]), flush=True)
    return {"rows": rows}


def table_row(r: dict[str, Any]) -> str:
    tau = "none" if r["tau"] is None else r["tau"]
    return (
        f"| {r['catalogue']} | {r['k']} | {tau} | {r['calibration']} | {r['top1']:.1f} | {r['coverage']:.1f} "
        f"| {r['precision']:.1f} ({r['precision_min']:.1f}) | {r['library_used']:.0f}% |"
    )


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--taus", type=float, nargs="+", default=[0.7, 0.5])
    ap.add_argument("--ks", type=int, nargs="+", default=[5, 10])
    ap.add_argument("--support-only", action="store_true", help="skip the self-trained folds (slow)")
    args = ap.parse_args(argv)
    print(
        "| catalogue | k | pseudo-labels at | thresholds from | top-1 | coverage | precision (min seed) "
        "| library used |"
    )
    print("|---|---|---|---|---|---|---|---|")
    run(args.taus, args.ks, in_fold=not args.support_only)


if __name__ == "__main__":
    main()
