"""The exclusive head's shortcuts are exact: leave-rows-out predictions from one factorisation equal
fitting again without those rows, and the bisected temperature equals the full grid search."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from tagsmith.tagmodels.training import (
    _TEMPERATURES,
    LABEL_SMOOTHING,
    _fit_temperature,
    _RidgeFit,
    one_blas_thread,
)
from threadpoolctl import threadpool_info


def refit_scores(x: np.ndarray, y: np.ndarray, n_classes: int, alpha: float, rows: np.ndarray) -> np.ndarray:
    """The reference: a float64 ridge fitted on every row but ``rows``, scoring ``rows``."""
    keep = np.setdiff1d(np.arange(len(y)), rows)
    xs = x[keep].astype(np.float64)
    targets = np.eye(n_classes)[y[keep]]
    mx, my = xs.mean(axis=0), targets.mean(axis=0)
    xc = xs - mx
    cov = xc.T @ xc + alpha * np.eye(x.shape[1])
    coef = np.linalg.solve(cov, xc.T @ (targets - my)).T
    return x[rows].astype(np.float64) @ coef.T + (my - coef @ mx)


def unit_clusters(n_tags: int, per_tag: int, dim: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_tags, dim))
    x = np.repeat(centres, per_tag, axis=0) + 1.2 * rng.standard_normal((n_tags * per_tag, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(n_tags), per_tag)


@pytest.mark.parametrize(
    ("n_tags", "per_tag", "dim"),
    [(6, 20, 16), (12, 5, 64)],  # more rows than dimensions (primal), fewer (dual)
)
@pytest.mark.parametrize("max_woodbury_rows", [10**9, 0])  # always one factorisation; always refit
def test_ridge_held_out_equals_fitting_without_the_rows(
    n_tags: int, per_tag: int, dim: int, max_woodbury_rows: int
) -> None:
    x, y = unit_clusters(n_tags, per_tag, dim)
    fit = _RidgeFit(x, y, n_tags, 0.3, max_woodbury_rows=max_woodbury_rows)
    rng = np.random.default_rng(1)
    for rows in (
        np.sort(rng.choice(len(y), size=len(y) // 5, replace=False)),  # a cross-validation fold
        np.nonzero(y < 2)[0],  # every example of two tags (a never-seen group)
        np.array([3]),
    ):
        np.testing.assert_allclose(fit.held_out(rows), refit_scores(x, y, n_tags, 0.3, rows), atol=2e-4)


def test_ridge_refits_when_the_left_out_block_is_large() -> None:
    x, y = unit_clusters(6, 20, 16)
    fit = _RidgeFit(x, y, 6, 0.3)  # default: up to max(1024, 1.5 d) rows by one factorisation
    assert fit.max_woodbury_rows == 1024
    fit.held_out(np.arange(10))
    assert fit._m is not None  # the factorisation was used
    small = _RidgeFit(x, y, 6, 0.3, max_woodbury_rows=5)
    np.testing.assert_allclose(
        small.held_out(np.arange(10)), refit_scores(x, y, 6, 0.3, np.arange(10)), atol=2e-4
    )
    assert small._m is None  # ten rows > 5: refitted, the d x n solve never made


def test_ridge_full_fit_matches_the_normal_equations() -> None:
    x, y = unit_clusters(5, 12, 20, seed=3)
    fit = _RidgeFit(x, y, 5, 0.3)
    x64 = x.astype(np.float64)
    targets = np.eye(5)[y]
    xc, yc = x64 - x64.mean(axis=0), targets - targets.mean(axis=0)
    coef = np.linalg.solve(xc.T @ xc + 0.3 * np.eye(20), xc.T @ yc).T
    np.testing.assert_allclose(fit.coef, coef, atol=1e-4)
    np.testing.assert_allclose(
        x64 @ fit.coef.T + fit.intercept,
        x64 @ coef.T + targets.mean(axis=0) - coef @ x64.mean(axis=0),
        atol=1e-4,
    )


def grid_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """The reference: every temperature of the grid, the first with the lowest loss."""
    n, t = scores.shape
    target = np.full((n, t), LABEL_SMOOTHING / (t - 1))
    target[np.arange(n), y] = 1.0 - LABEL_SMOOTHING
    losses = []
    for s in _TEMPERATURES:
        z = s * scores
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        losses.append(float(-(target * log_p).sum(axis=1).mean()))
    return float(_TEMPERATURES[int(np.argmin(losses))])


@pytest.mark.parametrize("noise", [0.02, 0.1, 0.3, 1.0, 3.0])
def test_temperature_bisection_finds_the_grid_minimum(noise: float) -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 8, 300)
    scores = np.eye(8)[y] + noise * rng.standard_normal((300, 8))
    assert _fit_temperature(scores, y) == grid_temperature(scores, y)


def test_temperature_at_the_ends_of_the_grid() -> None:
    y = np.repeat(np.arange(4), 10)
    separated = np.eye(4)[y] * 1e-3  # tiny scores: only the largest scale fits the labels
    assert _fit_temperature(separated, y) == grid_temperature(separated, y) == float(_TEMPERATURES[-1])
    swapped = np.eye(4)[(y + 1) % 4]  # always wrong: the smallest scale hedges most
    assert _fit_temperature(swapped, y) == grid_temperature(swapped, y) == float(_TEMPERATURES[0])


def blas_threads() -> dict[str, int]:
    return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_one_blas_thread_limits_inside_and_restores_even_when_two_threads_overlap() -> None:
    before = blas_threads()
    assert before  # NumPy's (and SciPy's) OpenBLAS are loaded
    with one_blas_thread():
        assert set(blas_threads().values()) == {1}
        with one_blas_thread():  # nested blocks are fine
            assert set(blas_threads().values()) == {1}
    assert blas_threads() == before
    # WHEN a second thread enters while the first is inside, and leaves after it
    first_inside, second_starting = threading.Event(), threading.Event()

    def first() -> None:
        with one_blas_thread():
            first_inside.set()
            second_starting.wait(5)
            time.sleep(0.2)

    def second() -> None:
        first_inside.wait(5)
        second_starting.set()
        with one_blas_thread():
            time.sleep(0.3)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    # THEN the settings are back to what they were (not left at the first block's limit)
    assert blas_threads() == before
