"""``near_duplicate_pairs`` computes each similarity at most once, block by block, after an exact
pre-filter (projections onto the groups' centres): it must find exactly the pairs a brute-force
comparison of every row with every other finds, across block boundaries and at any threshold."""

from __future__ import annotations

import numpy as np
import pytest
from tagsmith.examples import near_duplicate_pairs


def brute_force(
    x: np.ndarray, groups: list[int], similarity: float, rows: set[int] | None
) -> set[tuple[int, int]]:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = x.astype(np.float64) @ x.T.astype(np.float64)
    return {
        (i, j)
        for i in range(len(x))
        for j in range(i + 1, len(x))
        if sims[i, j] >= similarity and groups[i] != groups[j] and (rows is None or i in rows or j in rows)
    }


def planted(dim: int) -> tuple[np.ndarray, list[int]]:
    """1,300 rows in 40 groups (three blocks of 512) with near-copies planted far apart."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1300, dim)).astype(np.float32)
    groups = [i % 40 for i in range(1300)]
    for a, b in [(3, 1290), (600, 601), (511, 512), (1024, 7), (100, 140)]:  # 100/140: same group
        x[b] = x[a] + 0.01 * rng.standard_normal(dim).astype(np.float32)
    return x, groups


PLANTED = {(3, 1290), (600, 601), (511, 512), (7, 1024)}


@pytest.mark.parametrize(
    ("dim", "similarity"),
    [
        (24, 0.99),  # fewer dimensions than groups: the projection keeps everything
        (200, 0.99),  # more: the projection filters
        (200, 0.2),  # a low threshold lets many pairs through the filter
    ],
)
def test_near_duplicate_pairs_finds_every_pair_across_blocks(dim: int, similarity: float) -> None:
    x, groups = planted(dim)
    found = near_duplicate_pairs(x, groups, similarity=similarity)
    assert {(i, j) for i, j, _ in found} == brute_force(x, groups, similarity, None)
    assert {(i, j) for i, j, _ in found} >= PLANTED
    assert all(i < j for i, j, _ in found)
    assert [s for _, _, s in found] == sorted((s for _, _, s in found), reverse=True)


@pytest.mark.parametrize("dim", [24, 200])
def test_near_duplicate_pairs_of_some_rows_only(dim: int) -> None:
    x, groups = planted(dim)
    rows = {1290, 512, 5}
    found = near_duplicate_pairs(x, groups, similarity=0.99, rows=sorted(rows))
    assert {(i, j) for i, j, _ in found} == brute_force(x, groups, 0.99, rows)
    assert {(i, j) for i, j, _ in found} >= {(3, 1290), (511, 512)}


def test_near_duplicate_pairs_needs_two_groups() -> None:
    x, _ = planted(24)
    assert near_duplicate_pairs(x, [0] * len(x), similarity=0.5) == []
    assert near_duplicate_pairs(x[:1], [0], similarity=0.5) == []
