"""The review loop on the grocery data: how accuracy and coverage move as reviewers answer the
model's least certain predictions and the model is retrained on their answers.

Per seed (``splits/dev_k5_seed<s>.csv``): start from k=5 photos per class (81 classes); the rest of
``train/`` is an unlabelled pool of uploads; ``val/`` is the test set. Each round:

1. fit the tag model on every labelled photo with the production head and calibration
   (:func:`tagsmith.tagmodels.fit_linear_head` on the default encoder's embeddings, per-tag
   thresholds for 98% precision) and route every pool photo with the production router
   (auto-apply at or above a tag's threshold, review between the review floor and it);
2. measure on ``val``: top-1 accuracy, coverage (share of photos whose tag would be applied without
   review) and the precision of those auto-applied tags;
3. a reviewer answers the first ``batch`` items of the review queue in the console's order (most
   informative first: smallest margin between the top two tags), from the ground truth: accept
   when the suggestion is right, else pick the right tag. Those photos join the labelled set.

For comparison the same loop runs with the reviewer taking ``batch`` random items from the queue.

Run: ``python -m benchmarks.review_loop`` (``--unbalanced``: heads without class balancing) or ``python -m benchmarks.run --only review_loop``
(embeddings are shared with ``make bench``'s cache in ``var/bench-cache/<encoder id>.npz``).
"""

from __future__ import annotations

import csv
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GROCERY = ROOT.parent / "shared" / "datasets" / "grocery"
CACHE = ROOT / "var" / "bench-cache"
REVIEW_FLOOR = 0.2  # TagModel's default


def _split(seed: int, k: int = 5) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    support: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    with (GROCERY / "splits" / f"dev_k{k}_seed{seed}.csv").open() as f:
        for row in csv.DictReader(f):
            (support if row["split"] == "support" else test).append((row["path"], row["label"]))
    return support, test


def _all_train() -> list[tuple[str, str]]:
    names = {}
    with (GROCERY / "classes.csv").open() as f:
        for row in csv.reader(f):
            if row[1].isdigit():
                names[row[1]] = row[0]
    out = []
    for line in (GROCERY / "train.txt").read_text().splitlines():
        path, fine, _coarse = (p.strip() for p in line.split(","))
        out.append((path, names[fine]))
    return out


def embeddings(paths: list[str], *, log: Callable[[str], None] = print) -> dict[str, np.ndarray]:
    """Default-encoder embeddings of grocery photos, from (and added to) ``make bench``'s cache."""
    from tagsmith.encoder import DEFAULT_RECIPE

    from benchmarks.run import cached_embeddings

    x, _ = cached_embeddings(DEFAULT_RECIPE.id, paths, log)
    return dict(zip(paths, x, strict=True))


#: The product fits class-balanced heads; ``--unbalanced`` measures the loop without (the "before").
BALANCED = True


def _fit(x: np.ndarray, y: list[str]) -> Any:
    from tagsmith.encoder import DEFAULT_RECIPE
    from tagsmith.tagmodels import ModelKind, fit_linear_head

    from benchmarks.run import model_from_head

    head = fit_linear_head(x, y, kind=ModelKind.EXCLUSIVE, balanced=BALANCED)
    return model_from_head(head, DEFAULT_RECIPE.id)


def coverage_at_precision(conf: np.ndarray, correct: np.ndarray, precision: float) -> float:
    """The largest share of photos that can be auto-applied (most confident first) while the
    applied tags stay at least ``precision`` right: what a well-chosen threshold would give."""
    order = np.argsort(-conf, kind="stable")
    right = np.cumsum(correct[order])
    ok = right / np.arange(1, len(order) + 1) >= precision
    return float((np.nonzero(ok)[0].max() + 1) / len(order)) if ok.any() else 0.0


def _evaluate(model: Any, x: np.ndarray, truth: list[str]) -> dict[str, float]:
    from benchmarks.run import route_rows

    p = model.predict(x)
    conf = p.max(axis=1)
    predicted, applied = route_rows(model, x)
    correct = predicted == np.array(truth)
    return {
        "accuracy": round(float(correct.mean()), 4),
        "coverage": round(float(applied.mean()), 4),
        "applied_precision": round(float(correct[applied].mean()), 4) if applied.any() else 0.0,
        "coverage_at_90": round(coverage_at_precision(conf, correct, 0.90), 4),
        "coverage_at_95": round(coverage_at_precision(conf, correct, 0.95), 4),
        "review_share": round(float(((conf >= REVIEW_FLOOR) & ~applied).mean()), 4),
    }


def _queue(model: Any, pool: list[str], x: np.ndarray) -> list[Any]:
    """The pool's review items, as ingest would make them (one per photo), in the console's order."""
    from tagsmith.console import order_queue
    from tagsmith.records import TagState
    from tagsmith.review import ReviewItem
    from tagsmith.tagmodels import route_prediction

    items = []
    for path, probs in zip(pool, model.predict(x), strict=True):
        for a in route_prediction(model, probs):
            if a.state is TagState.REVIEW:
                items.append(
                    ReviewItem(
                        id=path,
                        tenant="bench",
                        asset_path=path,
                        model="grocery",
                        model_version="r",
                        suggestion=a.tag,
                        confidence=a.confidence or 0.0,
                        threshold=model.threshold_for(a.tag),
                        alternatives=a.alternatives,
                        created_at="",
                    )
                )
    return order_queue(items)


def loop(
    seed: int, vectors: dict[str, np.ndarray], *, rounds: int, batch: int, strategy: str
) -> list[dict[str, Any]]:
    support, test = _split(seed)
    truth = dict(_all_train())
    labelled = {p: lab for p, lab in support}
    pool = [p for p in truth if p not in labelled]
    test_x = np.stack([vectors[p] for p, _ in test])
    test_y = [lab for _, lab in test]
    rng = random.Random(seed)
    out = []
    reviewed = accepted = 0
    for r in range(rounds + 1):
        paths = sorted(labelled)
        model = _fit(np.stack([vectors[p] for p in paths]), [labelled[p] for p in paths])
        remaining = [p for p in pool if p not in labelled]
        queue = _queue(model, remaining, np.stack([vectors[p] for p in remaining]))
        row = {
            "round": r,
            "labelled": len(labelled),
            "reviewed": reviewed,
            "accepted": accepted,
            **_evaluate(model, test_x, test_y),
            "queue": len(queue),
        }
        out.append(row)
        if r == rounds:
            break
        chosen = queue[:batch] if strategy == "uncertain" else rng.sample(queue, min(batch, len(queue)))
        for item in chosen:  # the reviewer answers from the ground truth: accept or pick the right tag
            labelled[item.asset_path] = truth[item.asset_path]
            accepted += item.suggestion == truth[item.asset_path]
        reviewed += len(chosen)
    return out


def _mean_std(rows: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    summary = []
    for per_round in zip(*rows, strict=True):
        entry: dict[str, Any] = {
            "round": per_round[0]["round"],
            "reviewed": per_round[0]["reviewed"],
            "labelled": per_round[0]["labelled"],
        }
        for key in (
            "accuracy",
            "coverage",
            "applied_precision",
            "coverage_at_90",
            "coverage_at_95",
            "review_share",
            "queue",
            "accepted",
        ):
            values = [float(r[key]) for r in per_round]
            entry[key] = round(statistics.fmean(values), 4)
            entry[f"{key}_std"] = round(statistics.pstdev(values), 4)
        summary.append(entry)
    return summary


def run(
    *,
    seeds: tuple[int, ...] = (0, 1, 2),
    rounds: int = 5,
    batch: int = 100,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The loop per strategy, mean and std over ``seeds``; figures for docs/benchmarks.md."""
    if not GROCERY.is_dir():
        return {"skipped": f"the grocery dataset is not at {GROCERY}"}
    started = time.perf_counter()
    paths = sorted({p for p, _ in _all_train()} | {p for s in seeds for p, _ in _split(s)[1]})
    vectors = embeddings(paths, log=log)
    results: dict[str, Any] = {
        "dataset": "grocery (81 classes): start k=5 per class, pool = rest of train/ (~2,235), test = val/ (296)",
        "thresholds": "calibrated per tag for 98% precision (fit_linear_head)",
        "review_floor": REVIEW_FLOOR,
        "batch": batch,
        "rounds": rounds,
        "seeds": list(seeds),
        "strategies": {},
    }
    for strategy in ("uncertain", "random"):
        per_seed = []
        for seed in seeds:
            per_seed.append(loop(seed, vectors, rounds=rounds, batch=batch, strategy=strategy))
            last = per_seed[-1][-1]
            first = per_seed[-1][0]
            log(
                f"  {strategy:9s} seed {seed}: accuracy {first['accuracy']:.1%} -> {last['accuracy']:.1%}, "
                f"coverage at 90% precision {first['coverage_at_90']:.1%} -> {last['coverage_at_90']:.1%}"
            )
        results["strategies"][strategy] = _mean_std(per_seed)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def table(results: dict[str, Any]) -> str:
    """Markdown table of the run (mean ± std over seeds)."""
    lines = [
        "| queue order | round | reviewed | accuracy | auto-applied (precision) | oracle coverage at 90% precision "
        "| oracle coverage at 95% precision | suggestion was right |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for strategy, rows in results["strategies"].items():
        name = "most informative first" if strategy == "uncertain" else "random"
        for r in rows:
            right = f"{r['accepted'] / r['reviewed']:.0%}" if r["reviewed"] else "-"
            lines.append(
                f"| {name} | {r['round']} | {r['reviewed']} | {r['accuracy']:.1%} ± {r['accuracy_std']:.1%} "
                f"| {r['coverage']:.1%} ({r['applied_precision']:.1%}) | {r['coverage_at_90']:.1%} ± {r['coverage_at_90_std']:.1%} "
                f"| {r['coverage_at_95']:.1%} ± {r['coverage_at_95_std']:.1%} | {right} |"
            )
    return "\n".join(lines)


def main() -> None:
    global BALANCED
    BALANCED = "--unbalanced" not in sys.argv[1:]
    results = run()
    if "skipped" in results:
        print(results["skipped"])
        return
    print(table(results))
    out = CACHE / "review_loop.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"\n{results['seconds']} s; figures in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
