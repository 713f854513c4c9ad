"""``near_duplicate_pairs`` computes each similarity once, block by block: it must find exactly the
pairs a brute-force comparison of every row with every other finds, across block boundaries."""

from __future__ import annotations

import numpy as np
import pytest
from tagsmith.trainer import near_duplicate_pairs


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


@pytest.fixture
def planted() -> tuple[np.ndarray, list[int]]:
    """1,300 rows in 40 groups (three blocks of 512) with near-copies planted far apart."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1300, 24)).astype(np.float32)
    groups = [i % 40 for i in range(1300)]
    for a, b in [(3, 1290), (600, 601), (511, 512), (1024, 7), (100, 140)]:  # 100/140: same group
        x[b] = x[a] + 0.01 * rng.standard_normal(24).astype(np.float32)
    return x, groups


def test_near_duplicate_pairs_finds_every_pair_across_blocks(planted: tuple[np.ndarray, list[int]]) -> None:
    x, groups = planted
    found = near_duplicate_pairs(x, groups, similarity=0.99)
    assert {(i, j) for i, j, _ in found} == brute_force(x, groups, 0.99, None)
    assert {(i, j) for i, j, _ in found} >= {(3, 1290), (600, 601), (511, 512), (7, 1024)}
    assert all(i < j for i, j, _ in found)
    assert [s for _, _, s in found] == sorted((s for _, _, s in found), reverse=True)


def test_near_duplicate_pairs_of_some_rows_only(planted: tuple[np.ndarray, list[int]]) -> None:
    x, groups = planted
    rows = {1290, 512, 5}
    found = near_duplicate_pairs(x, groups, similarity=0.99, rows=sorted(rows))
    assert {(i, j) for i, j, _ in found} == brute_force(x, groups, 0.99, rows)
    assert {(i, j) for i, j, _ in found} >= {(3, 1290), (511, 512)}
