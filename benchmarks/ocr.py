"""OCR benchmark: time per image, and what reading the print adds to few-shot accuracy on
../shared/datasets/grocery (overall, and on the packaged products: milk, juice, yoghurt, oat drinks...).

Protocol: the team's few-shot splits ``splits/dev_k{K}_seed{S}.csv`` (K support photos per class from
train/, all of val/ as test). For each split a logistic regression is fitted on

* ``image``: the L2-normalised EfficientNet-Lite0 embedding (what tag models use today);
* ``image+text``: the embedding concatenated with ``TEXT_WEIGHT`` x the hashed character n-grams of
  the OCR text (:func:`tagsmith.ocr.text_features`);
* ``late-fusion``: image-head and text-head probabilities multiplied (text head fitted on text only).

OCR results and embeddings are cached under ``var/bench-cache/`` (OCR of ~2,000 photos takes about
half an hour on 2 cores the first time). ``python -m benchmarks.ocr`` prints the figures as JSON.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GROCERY = ROOT.parent / "shared" / "datasets" / "grocery"
CACHE = ROOT / "var" / "bench-cache"
SEEDS = (0,)
SHOTS = (5, 10)
TEXT_WEIGHT = 0.7
PACKAGED_PREFIX = "train/Packages/", "val/Packages/"


def _split(k: int, seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    support, test = [], []
    with open(GROCERY / "splits" / f"dev_k{k}_seed{seed}.csv", newline="") as f:
        for row in csv.DictReader(f):
            (support if row["split"] == "support" else test).append((row["path"], row["label"]))
    return support, test


def _needed_paths(shots: Iterable[int], seeds: Iterable[int]) -> list[str]:
    paths: dict[str, None] = {}
    for k in shots:
        for s in seeds:
            support, test = _split(k, s)
            paths.update(dict.fromkeys(p for p, _ in test))  # test first: every split needs it
            paths.update(dict.fromkeys(p for p, _ in support))
    return list(paths)


def ocr_cache(
    paths: list[str], *, progress: Callable[[str], None] = lambda _m: None
) -> dict[str, dict[str, Any]]:
    """``{path: {"text": ..., "seconds": ...}}``, reading and appending ``ocr-grocery-<engine>.jsonl``."""
    from PIL import Image
    from tagsmith.ocr import RAPIDOCR_ENGINE_ID, RapidOcrEngine

    CACHE.mkdir(parents=True, exist_ok=True)
    file = CACHE / f"ocr-grocery-{RAPIDOCR_ENGINE_ID}.jsonl"
    done: dict[str, dict[str, Any]] = {}
    if file.exists():
        for line in file.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["path"]] = row
    missing = [p for p in paths if p not in done]
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


def embedding_cache(paths: list[str]) -> dict[str, np.ndarray]:
    from PIL import Image
    from tagsmith.encoder import default_encoder

    CACHE.mkdir(parents=True, exist_ok=True)
    file = CACHE / "grocery-lite0-embeddings.npz"
    known: dict[str, np.ndarray] = {}
    if file.exists():
        with np.load(file, allow_pickle=False) as npz:
            known = dict(zip(npz["paths"].tolist(), npz["vectors"], strict=True))
    missing = [p for p in paths if p not in known]
    if missing:
        encoder = default_encoder(CACHE / "encoder")
        for i in range(0, len(missing), 64):
            batch = missing[i : i + 64]
            images = []
            for p in batch:
                with Image.open(GROCERY / p) as im:
                    images.append(im.convert("RGB"))
            for p, v in zip(batch, encoder.embed(images), strict=True):
                known[p] = v
        keys = sorted(known)
        np.savez(file, paths=np.array(keys), vectors=np.stack([known[k] for k in keys]))
    return {p: known[p] for p in paths}


def fresh_timing(paths: list[str], n: int = 24) -> dict[str, Any]:
    """OCR of ``n`` images timed now (the cache's timings were taken whenever it was filled), with
    the process CPU time: on a busy machine wall time overstates the cost."""
    import resource

    from PIL import Image
    from tagsmith.ocr import RapidOcrEngine

    engine = RapidOcrEngine()
    sample = paths[:: max(len(paths) // n, 1)][:n]
    images = []
    for p in sample:
        with Image.open(GROCERY / p) as im:
            images.append(im.convert("RGB"))
    engine.read(images[0])  # load the models outside the timing

    def cpu() -> float:
        u = resource.getrusage(resource.RUSAGE_SELF)
        return u.ru_utime + u.ru_stime

    wall, cpu0 = time.perf_counter(), cpu()
    for im in images:
        engine.read(im)
    wall, used = time.perf_counter() - wall, cpu() - cpu0
    return {
        "images": len(images),
        "wall_seconds_per_image": round(wall / len(images), 3),
        "cpu_seconds_per_image": round(used / len(images), 3),
        "load_average_1min": round(os.getloadavg()[0], 1),
    }


def _fit_predict(train_x: np.ndarray, train_y: list[str], test_x: np.ndarray) -> tuple[np.ndarray, list[str]]:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=10.0, max_iter=2000)
    clf.fit(train_x, train_y)
    return clf.predict_proba(test_x), list(clf.classes_)


def _accuracy(pred: list[str], truth: list[str], mask: list[bool] | None = None) -> float:
    pairs = [(p, t) for i, (p, t) in enumerate(zip(pred, truth, strict=True)) if mask is None or mask[i]]
    return sum(p == t for p, t in pairs) / max(len(pairs), 1)


def run(
    *, shots: Iterable[int] = SHOTS, seeds: Iterable[int] = SEEDS, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Accuracy with and without OCR features, and OCR seconds per image."""
    from tagsmith.ocr import text_features

    if not GROCERY.is_dir():
        return {"skipped": f"the grocery dataset is not at {GROCERY}"}
    shots, seeds = tuple(shots), tuple(seeds)
    paths = _needed_paths(shots, seeds)
    ocr = ocr_cache(paths, progress=log)
    vectors = embedding_cache(paths)
    timings = [ocr[p]["seconds"] for p in paths]
    with_text = sum(1 for p in paths if ocr[p]["text"].strip())
    results: dict[str, Any] = {
        "ocr_timed_now": fresh_timing(paths),
        "ocr_seconds_per_image_while_caching": {
            "mean": round(statistics.fmean(timings), 3),
            "median": round(statistics.median(timings), 3),
            "p90": round(float(np.percentile(timings, 90)), 3),
            "images": len(timings),
            "image_size": "348x348 (some 348x464)",
            "threads": os.cpu_count(),
        },
        "images_with_text": round(with_text / len(paths), 3),
        "text_weight": TEXT_WEIGHT,
        "accuracy": {},
    }
    for k in shots:
        scores: dict[str, dict[str, list[float]]] = {}
        for seed in seeds:
            support, test = _split(k, seed)
            train_x = np.stack([vectors[p] for p, _ in support])
            test_x = np.stack([vectors[p] for p, _ in test])
            train_t = text_features([ocr[p]["text"] for p, _ in support])
            test_t = text_features([ocr[p]["text"] for p, _ in test])
            train_y = [y for _, y in support]
            truth = [y for _, y in test]
            packaged = [p.startswith(PACKAGED_PREFIX) for p, _ in test]

            img_p, classes = _fit_predict(train_x, train_y, test_x)
            cat_p, cat_classes = _fit_predict(
                np.hstack([train_x, TEXT_WEIGHT * train_t]),
                train_y,
                np.hstack([test_x, TEXT_WEIGHT * test_t]),
            )
            txt_p, txt_classes = _fit_predict(train_t, train_y, test_t)
            assert classes == cat_classes == txt_classes
            fused = img_p * txt_p**0.5
            variants = {
                "image": img_p,
                "image+text": cat_p,
                "late-fusion": fused,
                "text-only": txt_p,
            }
            for name, probs in variants.items():
                pred = [classes[i] for i in probs.argmax(axis=1)]
                s = scores.setdefault(name, {"overall": [], "packaged": []})
                s["overall"].append(_accuracy(pred, truth))
                s["packaged"].append(_accuracy(pred, truth, packaged))
            log(f"k={k} seed={seed}: " + ", ".join(f"{n} {scores[n]['overall'][-1]:.3f}" for n in variants))
        results["accuracy"][f"k{k}"] = {
            name: {
                part: {"mean": round(statistics.fmean(v), 4), "std": round(statistics.pstdev(v), 4)}
                for part, v in parts.items()
            }
            for name, parts in scores.items()
        }
        results["accuracy"][f"k{k}"]["test_images"] = {"overall": len(test), "packaged": sum(packaged)}
    return results


if __name__ == "__main__":
    print(json.dumps(run(log=lambda m: print(m, file=sys.stderr)), indent=1))
