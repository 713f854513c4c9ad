"""OCR benchmark: what reading the print adds to the product's tag models on ../shared/datasets/grocery
(overall, and on the packaged products: milk, juice, yoghurt, oat drinks... under ``Packages/``),
and what OCR costs per image.

Protocol: the team's few-shot splits ``splits/dev_k{5,10,30}_seed{0..4}.csv`` (k support photos per
class from train/, all of val/ as test), the product's default encoder (embeddings cached by
``benchmarks.run`` in ``var/bench-cache/<encoder id>.npz``), and the product's own fitting, exactly
what :class:`tagsmith.trainer.TrainingService` runs (calibrated per-tag thresholds for 98%
precision, never-seen groups simulated):

* ``image``: :func:`tagsmith.tagmodels.fit_linear_head` (a model trained without ``--text``);
* ``image+text``: :func:`tagsmith.tagmodels.text_head.fit_fused_head` over the same embeddings and
  the rapidocr text of each photo (a model trained with ``--text``).

Both train, as the trainer does by default, on the support photos plus their augmented views
(``DEFAULT_AUGMENT_VIEWS`` per photo, carrying the photo's text; cached by ``benchmarks.run``);
``--augment 0`` measures without.

Each model is applied with its stored form (:class:`TagModel`, ``predict`` then the product's
routing), giving top-1 (all test photos and packaged products), the precision and coverage of the
auto-applied tags, and, for k=10, the share of never-seen products (a model trained on a random
half of the classes, tested on the other half) that is *not* auto-applied.

OCR results are cached in ``var/bench-cache/ocr-grocery-<engine>.jsonl`` (about 2,900 photos, ~1 s
each on 2 cores the first time; ``fill=False`` refuses to start OCR and reports what is missing).

    python -m benchmarks.run --only ocr      # or: python -m benchmarks.ocr [--seeds 0] [--no-fill]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GROCERY = Path(os.environ.get("TAGSMITH_GROCERY_DIR", ROOT.parent / "shared" / "datasets" / "grocery"))
CACHE = ROOT / "var" / "bench-cache"
SEEDS = (0, 1, 2, 3, 4)
SHOTS = (5, 10, 30)
UNKNOWN_K = 10
PACKAGED_PREFIX = ("train/Packages/", "val/Packages/")
VARIANTS = ("image", "image+text")


def ocr_cache(
    paths: Sequence[str], *, fill: bool = True, progress: Callable[[str], None] = lambda _m: None
) -> dict[str, dict[str, Any]]:
    """``{path: {"text": ..., "seconds": ...}}``, reading (and with ``fill``, appending to)
    ``ocr-grocery-<engine>.jsonl``. Without ``fill`` a missing photo is an error naming how many."""
    from PIL import Image
    from tagsmith.ocr import RAPIDOCR_ENGINE_ID, RapidOcrEngine

    CACHE.mkdir(parents=True, exist_ok=True)
    file = CACHE / f"ocr-grocery-{RAPIDOCR_ENGINE_ID}.jsonl"
    done: dict[str, dict[str, Any]] = {}
    if file.exists():
        for line in file.read_text().splitlines():
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a line being written by a running fill
                done[row["path"]] = row
    missing = [p for p in paths if p not in done]
    if missing and not fill:
        raise RuntimeError(
            f"{len(missing)} of {len(paths)} photos have no cached OCR in {file}; run with fill"
        )
    if missing:
        engine = RapidOcrEngine()
        with file.open("a") as out:
            for n, path in enumerate(missing, 1):
                with Image.open(GROCERY / path) as im:
                    rgb = im.convert("RGB")
                start = time.perf_counter()
                lines = engine.read(rgb)
                row = {
                    "path": path,
                    "text": "\n".join(line.text for line in lines),
                    "scores": [line.score for line in lines],
                    "seconds": round(time.perf_counter() - start, 4),
                }
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
                done[path] = row
                if n % 50 == 0:
                    progress(f"OCR {n}/{len(missing)}")
    return {p: done[p] for p in paths}


def fresh_timing(paths: Sequence[str], n: int = 24) -> dict[str, Any]:
    """OCR of ``n`` images timed now (the cache's timings were taken whenever it was filled), with
    the process CPU time: on a busy machine wall time overstates the cost."""
    import resource

    from PIL import Image
    from tagsmith.ocr import RapidOcrEngine

    engine = RapidOcrEngine()
    sample = list(paths[:: max(len(paths) // n, 1)][:n])
    images = []
    for p in sample:
        with Image.open(GROCERY / p) as im:
            images.append(im.convert("RGB"))
    engine.read(images[0])  # load the models outside the timing

    def cpu() -> float:
        u = resource.getrusage(resource.RUSAGE_SELF)
        return u.ru_utime + u.ru_stime

    wall, cpu0 = time.perf_counter(), cpu()
    for image in images:
        engine.read(image)
    wall, used = time.perf_counter() - wall, cpu() - cpu0
    return {
        "images": len(images),
        "wall_seconds_per_image": round(wall / len(images), 3),
        "cpu_seconds_per_image": round(used / len(images), 3),
        "load_average_1min": round(os.getloadavg()[0], 1),
    }


# --- the product's fit ----------------------------------------------------------------------------
def fit_model(
    variant: str,
    x: np.ndarray,
    labels: list[str],
    texts: list[str],
    encoder_id: str,
    views: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
) -> Any:
    """The stored model a training would produce (``--text`` for ``image+text``); ``views``:
    augmented views of the support photos and each one's source row."""
    from tagsmith.encoder import ridge_alpha_for
    from tagsmith.ocr import RAPIDOCR_ENGINE_ID
    from tagsmith.tagmodels import ModelKind, TagModel, fit_linear_head
    from tagsmith.tagmodels.model import TextFeatures
    from tagsmith.tagmodels.text_head import fit_fused_head
    from tagsmith.tagmodels.training import DEFAULT_RIDGE_ALPHA
    from tagsmith.trainer import DEFAULT_THRESHOLD

    alpha = ridge_alpha_for(encoder_id) or DEFAULT_RIDGE_ALPHA  # as the trainer fits
    if variant == "image":
        head: Any = fit_linear_head(
            x, labels, kind=ModelKind.EXCLUSIVE, views=views[0], view_source=views[1], alpha=alpha
        )
        text = None
    else:
        head = fit_fused_head(
            x,
            texts,
            labels,
            features=TextFeatures(engine=RAPIDOCR_ENGINE_ID),
            views=views[0],
            view_source=views[1],
            alpha=alpha,
        )
        text = head.text_head(threshold=None, default=DEFAULT_THRESHOLD)
    return TagModel(
        tenant="bench",
        model_id="grocery",
        version=variant,
        kind=ModelKind.EXCLUSIVE,
        encoder_id=encoder_id,
        tags=head.tags,
        coef=head.coef,
        intercept=head.intercept,
        thresholds=head.thresholds_or(DEFAULT_THRESHOLD),
        text=text,
    )


def route(model: Any, x: np.ndarray, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(top tag, auto-applied?) per row, through the product's routing."""
    from tagsmith.records import TagState
    from tagsmith.tagmodels import route_prediction

    probs = model.predict(x, texts if model.text is not None else None)
    top = np.array(model.tags)[probs.argmax(axis=1)]
    applied = np.array(
        [any(a.state is TagState.APPLIED for a in route_prediction(model, row)) for row in probs], dtype=bool
    )
    return top, applied


def _fit_on(
    variant: str,
    support: list[tuple[str, str]],
    x: np.ndarray,
    index: dict[str, int],
    ocr: dict[str, dict[str, Any]],
    encoder_id: str,
    views: Any,
) -> Any:
    """:func:`fit_model` on these (path, label) support rows, with their text and augmented views."""
    from benchmarks.run import support_views

    return fit_model(
        variant,
        x[[index[p] for p, _ in support]],
        [label for _, label in support],
        [ocr[p]["text"] for p, _ in support],
        encoder_id,
        support_views(views, support),
    )


def evaluate_split(
    variant: str,
    x: np.ndarray,
    index: dict[str, int],
    ocr: dict[str, dict[str, Any]],
    split: Any,
    encoder_id: str,
    views: Any = None,
) -> dict[str, float]:
    started = time.perf_counter()
    model = _fit_on(variant, split.support, x, index, ocr, encoder_id, views)
    fit_seconds = time.perf_counter() - started
    top, applied = route(model, x[[index[p] for p, _ in split.test]], [ocr[p]["text"] for p, _ in split.test])
    truth = np.array([label for _, label in split.test])
    packaged = np.array([p.startswith(PACKAGED_PREFIX) for p, _ in split.test])
    right = top == truth
    return {
        "accuracy": float(right.mean()),
        "packaged_accuracy": float(right[packaged].mean()),
        "precision": float(right[applied].mean()) if applied.any() else float("nan"),
        "coverage": float(applied.mean()),
        "packaged_coverage": float(applied[packaged].mean()),
        "fit_seconds": fit_seconds,
        "text_weight": float(model.text.weight) if model.text is not None else 0.0,
    }


def evaluate_unknown(
    variant: str,
    x: np.ndarray,
    index: dict[str, int],
    ocr: dict[str, dict[str, Any]],
    split: Any,
    encoder_id: str,
    views: Any = None,
) -> float:
    """A model trained on a random half of the classes: the share of the other half's test photos
    it does not auto-apply (the same halves as ``benchmarks.run.evaluate_unknown``)."""
    classes = sorted({label for _, label in split.support})
    known = set(np.random.default_rng(split.seed).permutation(classes)[: len(classes) // 2].tolist())
    support = [(p, label) for p, label in split.support if label in known]
    unseen = [p for p, label in split.test if label not in known]
    model = _fit_on(variant, support, x, index, ocr, encoder_id, views)
    _, applied = route(model, x[[index[p] for p in unseen]], [ocr[p]["text"] for p in unseen])
    return float(1.0 - applied.mean())


def _stat(values: Iterable[float]) -> dict[str, float]:
    arr = np.asarray([v for v in values if not np.isnan(v)], dtype=np.float64)
    if arr.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": round(float(arr.mean()), 4), "std": round(float(arr.std()), 4), "n": int(arr.size)}


def run(
    *,
    shots: Iterable[int] = SHOTS,
    seeds: Iterable[int] = SEEDS,
    fill: bool = True,
    timing: bool = True,
    augment: int | None = None,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
) -> dict[str, Any]:
    """Accuracy, honest confidence and never-seen items with and without OCR text; OCR cost.
    ``augment``: augmented views per support photo (None: the trainer's default)."""
    from tagsmith.encoder import DEFAULT_RECIPE
    from tagsmith.trainer import DEFAULT_AUGMENT_VIEWS

    from benchmarks.run import cached_embeddings, cached_views, load_split, split_paths, support_paths

    augment = DEFAULT_AUGMENT_VIEWS if augment is None else augment

    if not (GROCERY / "splits").is_dir():
        return {"skipped": f"the grocery dataset is not at {GROCERY}"}
    shots, seeds = tuple(shots), tuple(seeds)
    paths = split_paths(tuple(sorted({*shots, UNKNOWN_K})), seeds)
    ocr = ocr_cache(paths, fill=fill, progress=log)
    encoder_id = DEFAULT_RECIPE.id
    x, _ = cached_embeddings(encoder_id, paths, log)
    index = {p: i for i, p in enumerate(paths)}
    views = None
    if augment:
        support = support_paths(tuple(sorted({*shots, UNKNOWN_K})), seeds)
        views = (cached_views(encoder_id, support, augment, log), {p: i for i, p in enumerate(support)})
    timings = [float(ocr[p]["seconds"]) for p in paths]
    results: dict[str, Any] = {
        "encoder_id": encoder_id,
        "augmented_views": augment,
        "seeds": list(seeds),
        "images_with_text": round(sum(1 for p in paths if ocr[p]["text"].strip()) / len(paths), 3),
        "ocr_seconds_per_image_while_caching": {
            "mean": round(statistics.fmean(timings), 3),
            "median": round(statistics.median(timings), 3),
            "images": len(timings),
        },
        "load_average_at_start": round(os.getloadavg()[0], 1),
        "per_k": {},
        "unknown": {},
    }
    for k in shots:
        splits = [load_split(k, s) for s in seeds]
        row: dict[str, Any] = {}
        for variant in VARIANTS:
            runs = [evaluate_split(variant, x, index, ocr, split, encoder_id, views) for split in splits]
            row[variant] = {key: _stat(r[key] for r in runs) for key in runs[0]}
            r = row[variant]
            log(
                f"k={k} {variant}: top-1 {r['accuracy']['mean']:.3f} (packaged {r['packaged_accuracy']['mean']:.3f}), "
                f"auto-applied precision {r['precision']['mean']:.3f} coverage {r['coverage']['mean']:.3f}, "
                f"fit {r['fit_seconds']['mean']:.2f} s"
            )
        row["test_photos"] = {
            "overall": len(splits[0].test),
            "packaged": sum(p.startswith(PACKAGED_PREFIX) for p, _ in splits[0].test),
        }
        results["per_k"][str(k)] = row
    unknown_splits = [load_split(UNKNOWN_K, s) for s in seeds]
    for variant in VARIANTS:
        results["unknown"][variant] = _stat(
            evaluate_unknown(variant, x, index, ocr, split, encoder_id, views) for split in unknown_splits
        )
        log(f"never-seen not applied (k={UNKNOWN_K}) {variant}: {results['unknown'][variant]['mean']:.3f}")
    if timing:
        results["ocr_timed_now"] = fresh_timing(paths)
        log(f"OCR timed now: {results['ocr_timed_now']}")
    return results


def markdown(results: dict[str, Any]) -> str:
    def pct(s: dict[str, float]) -> str:
        return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}%" if s.get("n") else "n/a"

    lines = [
        "| k | top-1: image -> image+text | packaged products | auto-applied precision / coverage: image "
        "| image+text | fit s (image / +text) |",
        "|---|---|---|---|---|---|",
    ]
    for k, row in results["per_k"].items():
        a, b = row["image"], row["image+text"]
        lines.append(
            f"| {k} | {pct(a['accuracy'])} -> **{pct(b['accuracy'])}** | {pct(a['packaged_accuracy'])} -> "
            f"**{pct(b['packaged_accuracy'])}** | {pct(a['precision'])} / {pct(a['coverage'])} | "
            f"{pct(b['precision'])} / {pct(b['coverage'])} | {a['fit_seconds']['mean']:.2f} / "
            f"{b['fit_seconds']['mean']:.2f} |"
        )
    u = results["unknown"]
    lines.append(
        f"\nnever-seen products not auto-applied (k={UNKNOWN_K}): image {pct(u['image'])}, "
        f"image+text {pct(u['image+text'])}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ocr", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--shots", default=",".join(map(str, SHOTS)))
    parser.add_argument("--no-fill", action="store_true", help="never run OCR; fail if a photo is not cached")
    parser.add_argument("--no-timing", action="store_true", help="skip timing OCR on 24 photos now")
    parser.add_argument(
        "--augment", type=int, default=None, help="augmented views per support photo (default: the trainer's)"
    )
    args = parser.parse_args(argv)
    results = run(
        augment=args.augment,
        shots=[int(k) for k in args.shots.split(",")],
        seeds=[int(s) for s in args.seeds.split(",")],
        fill=not args.no_fill,
        timing=not args.no_timing,
    )
    print(json.dumps(results, indent=1))
    if "per_k" in results:
        print(markdown(results), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
