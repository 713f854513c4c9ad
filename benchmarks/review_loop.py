"""The review loop on both dev catalogues: how automation grows as reviewers answer the queue.

    python -m benchmarks.review_loop                       # k=10 and k=5, both catalogues, 5 seeds
    python -m benchmarks.review_loop --ks 10 --seeds 0,1 --catalogues grocery

Per seed (``splits/dev_k{k}_seed<s>.csv``): the model starts from the k support photos per tag; the
rest of the part they are drawn from is the tenant's library of uploads (grocery's ``train/``,
clothing's ``part=train`` contributors), never labelled; the split's test photos measure. Each round:

1. the active model routes every library photo not answered yet (the product's routing), and its
   review items are put in the console's order (:func:`tagsmith.console.order_queue`: most
   informative first); "random" takes them in random order instead;
2. a reviewer answers the first 100 from the ground truth: accept a right suggestion, pick the
   right tag otherwise (also for a "none of the trained tags" suggestion: every library photo here
   shows one of the tags);
3. the answers join the examples and :class:`tagsmith.trainer.TrainingService` trains again, as the
   retrain the corrections trigger does (all previous examples plus every answer); the promotion
   gate decides whether the new version replaces the active one;
4. the active model is measured on the test photos: top-1, the share auto-applied (coverage) and the
   precision of what it auto-applies.

Everything goes through the product's trainer with the cached embeddings of
:mod:`benchmarks.automation` (pixels are never decoded twice). Results go to
``var/review-loop-results.json`` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.automation import (
    RECIPE_FEATURES,
    TENANT,
    Catalogue,
    components,
    oracle_coverage,
    route,
    sha_of,
    unreadable,
)
from benchmarks.catalogues import ROOT, SEEDS, catalogue_dir, load_split, pool_labels, pool_paths

RESULTS = ROOT / "var" / "review-loop-results.json"
ANSWERS = (0, 100, 200, 300, 400, 500)
BATCH = 100


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def review_queue(model: Any, paths: Sequence[str], x: np.ndarray) -> list[Any]:
    """The library's review items as ingest makes them (one per photo and model), in the console's order."""
    from tagsmith.console import order_queue
    from tagsmith.records import TagState
    from tagsmith.review import ReviewItem
    from tagsmith.tagmodels import route_prediction

    items = []
    for path, probs in zip(paths, model.predict(x), strict=True):
        for a in route_prediction(model, probs):
            if a.state is TagState.REVIEW:
                items.append(
                    ReviewItem(
                        id=path,
                        tenant=TENANT,
                        asset_path=path,
                        model=model.model_id,
                        model_version=model.version,
                        suggestion=a.tag,
                        confidence=a.confidence or 0.0,
                        threshold=a.threshold or 0.0,
                        alternatives=a.alternatives,
                        created_at="",
                    )
                )
    return order_queue(items)


def loop(cat: Catalogue, k: int, seed: int, strategy: str) -> list[dict[str, Any]]:
    from tagsmith.examples import Example
    from tagsmith.trainer import TrainingOptions

    split = load_split(cat.name, k, seed)
    truth = pool_labels(cat.name)
    tags = {label for _, label in split.support}
    labelled = dict(split.support)
    library = [p for p in pool_paths(cat.name) if p not in labelled and truth[p] in tags]
    trainer, models = components(cat, tuple(RECIPE_FEATURES), views=True)
    rng = random.Random(seed)
    test_truth = np.array([label for _, label in split.test])
    out = []
    answered = accepted = 0
    while True:
        examples = [
            Example.of([lab], p, unreadable, sha256=sha_of(cat.name, p))
            for p, lab in sorted(labelled.items())
        ]
        started = time.perf_counter()
        report = trainer.train(
            tenant=TENANT,
            model_id="m",
            examples=examples,
            options=TrainingOptions(allow_near_duplicates=True),
        )
        seconds = time.perf_counter() - started
        model = models.load_active(TENANT, "m")
        x = np.stack([cat.vectors[model.encoder_id][p] for p, _ in split.test])
        top, conf, applied, _ = route(model, x)
        right = top == test_truth
        out.append(
            {
                "answers": answered,
                "accepted": accepted,
                "top1": float(right.mean()),
                "coverage": float(applied.mean()),
                "precision": float(right[applied].mean()) if applied.any() else float("nan"),
                "oracle_coverage": oracle_coverage(conf, right, model.target_precision),
                "promoted": bool(report.promotion and report.promotion.promoted),
                "recipe": model.encoder_id,
                "train_seconds": seconds,
            }
        )
        log(
            f"  {cat.name} k={k} seed {seed} {strategy} {answered} answers: top-1 {out[-1]['top1']:.3f} "
            f"coverage {out[-1]['coverage']:.3f} precision {out[-1]['precision']:.3f} "
            f"({'promoted' if out[-1]['promoted'] else 'kept the active version'}, {seconds:.1f} s)"
        )
        if answered >= ANSWERS[-1]:
            return out
        remaining = [p for p in library if p not in labelled]
        xq = np.stack([cat.vectors[model.encoder_id][p] for p in remaining])
        queue = review_queue(model, remaining, xq)
        chosen = queue[:BATCH] if strategy == "console" else rng.sample(queue, min(BATCH, len(queue)))
        if not chosen:
            return out
        for item in chosen:
            labelled[item.asset_path] = truth[item.asset_path]
            accepted += item.suggestion == truth[item.asset_path]
        answered += len(chosen)


def summarise(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for per_round in zip(*runs, strict=False):
        row: dict[str, Any] = {"answers": per_round[0]["answers"]}
        for key in ("top1", "coverage", "precision", "oracle_coverage", "accepted", "train_seconds"):
            values = np.array([r[key] for r in per_round], dtype=float)
            row[key] = {
                "mean": float(np.nanmean(values)),
                "std": float(np.nanstd(values)),
                "min": float(np.nanmin(values)),
            }
        row["promoted"] = sum(r["promoted"] for r in per_round)
        row["seeds"] = len(per_round)
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--catalogues", default="grocery,clothing")
    parser.add_argument("--ks", default="10,5")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--strategies", default="console,random")
    args = parser.parse_args(argv)
    names = [c for c in args.catalogues.split(",") if c]
    for name in names:
        if not (catalogue_dir(name) / "splits").is_dir():
            print(f"SKIPPED: {catalogue_dir(name)} is absent (set TAGSMITH_DATASETS_DIR)")
            return 0
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    seeds = [int(s) for s in args.seeds.split(",")]
    for name in names:
        cat = Catalogue.load(name, tuple(RECIPE_FEATURES), extra_paths=pool_paths(name))
        for k in (int(v) for v in args.ks.split(",")):
            for strategy in args.strategies.split(","):
                runs = [loop(cat, k, s, strategy) for s in seeds]
                results.setdefault(name, {}).setdefault(str(k), {})[strategy] = summarise(runs)
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                RESULTS.write_text(json.dumps(results, indent=1))
    print_table(results, names)
    return 0


def run() -> dict[str, Any]:
    """``python -m benchmarks.run --only review_loop``: both catalogues, k=10 and 5, seeds 0-2."""
    main(["--seeds", "0,1,2"])
    return dict(json.loads(RESULTS.read_text()))


def print_table(results: dict[str, Any], names: Sequence[str]) -> None:
    print(
        "| catalogue | k | order | answers | top-1 | coverage | precision (min seed) | oracle coverage | versions promoted |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for k, by_strategy in sorted(results.get(name, {}).items(), key=lambda kv: -int(kv[0])):
            for strategy, rows in by_strategy.items():
                for row in rows:
                    if row["answers"] not in ANSWERS:
                        continue
                    p = row["precision"]
                    print(
                        f"| {name} | {k} | {strategy} | {row['answers']} | {100 * row['top1']['mean']:.1f} ± {100 * row['top1']['std']:.1f} | "
                        f"{100 * row['coverage']['mean']:.1f} ± {100 * row['coverage']['std']:.1f} | "
                        f"{100 * p['mean']:.1f} ({100 * p['min']:.1f}) | {100 * row['oracle_coverage']['mean']:.1f} | "
                        f"{row['promoted']}/{row['seeds']} |"
                    )


if __name__ == "__main__":
    raise SystemExit(main())
