"""``make bench``: accuracy, honest confidence, unknown items and ingest throughput on the grocery set.

Sections (``--only`` takes a comma-separated list; the default runs the first four):

* ``accuracy``: the product's default (encoder, and the trainer's augmented views of the support
  photos as extra training rows of the same fit, :func:`tagsmith.tagmodels.fit_linear_head`) on
  ``splits/dev_k{5,10,30}_seed{0..4}.csv``, beside the old default (no zoom, no augmentation):
  top-1 accuracy, and, through the real routing (:func:`route_prediction`), the precision of the
  tags it auto-applies and their coverage (share of test photos auto-applied); mean +- std over
  the seeds. Also the unknown-item figure: a model trained on a random half of the classes (k=10)
  tags the test photos of the other half; the share that is *not* auto-applied.
* ``variants``: the same figures for every other encoder recipe tried (docs/benchmarks.md).
* ``embed_cost``: decode + embed images/s of every encoder, measured back to back on the same 96
  photos (the cached figures above come from whenever each cache was filled, under other load).
* The calibration rules are compared by ``python -m benchmarks.automation --variants
  "calibration: ..."`` (through the product trainer, on both catalogues); the session-3 settings
  of this module's former ``calibration`` section are in docs/benchmarks.md as measured then.
* ``throughput``: images/s through the real :class:`IngestService` (decode, embed, every active
  model, record, review items, index) on in-memory adapters, and embed-only images/s.
* ``training_speed``, ``search_latency``, ``video``, ``ocr``, ``review_loop``, ``selftraining``, ``backfill``, ``review_queue``, ``stack_ingest``: the other
  benchmark modules' ``run()``, only when named (some take long).

Embeddings are computed once per encoder and cached in ``var/bench-cache/<encoder id>.npz`` (with
the seconds they took); augmented views of the support photos in
``var/bench-cache/views-<encoder id>-n<views>-aug<version>.npz``. Caches of ``benchmarks.explore``
holding the same features are reused after a max-difference check against the product encoder; results go to ``var/bench-results.json`` and a markdown table on stdout.

    python -m benchmarks.run                      # everything below, ~15 min on 2 cores
    python -m benchmarks.run --quick              # one seed per k
    python -m benchmarks.run --only throughput
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GROCERY = Path(os.environ.get("TAGSMITH_GROCERY_DIR", ROOT.parent / "shared" / "datasets" / "grocery"))
CACHE = ROOT / "var" / "bench-cache"
RESULTS = ROOT / "var" / "bench-results.json"
KS = (5, 10, 30)
SEEDS = (0, 1, 2, 3, 4)
UNKNOWN_K = 10
OWN_SECTIONS = ("accuracy", "variants", "throughput", "embed_cost")
NAMED_SECTIONS: tuple[str, ...] = ()  # own sections that run only when named
EXTRA_SECTIONS = (
    "automation",
    "training_speed",
    "search_latency",
    "video",
    "ocr",
    "review_loop",
    "selftraining",
    "backfill",
    "review_queue",
    "stack_ingest",
)
THREADS = 2  # the size of the machines CI and the docs figures run on


# --- data ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    k: int
    seed: int
    support: list[tuple[str, str]]  # (path relative to GROCERY, label)
    test: list[tuple[str, str]]


def load_split(k: int, seed: int, root: Path = GROCERY) -> Split:
    support: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    with (root / "splits" / f"dev_k{k}_seed{seed}.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            (support if row["split"] == "support" else test).append((row["path"], row["label"]))
    return Split(k, seed, support, test)


def split_paths(ks: Sequence[int], seeds: Sequence[int], root: Path = GROCERY) -> list[str]:
    paths = {p for k in ks for s in seeds for part in _parts(load_split(k, s, root)) for p, _ in part}
    return sorted(paths)


def _parts(split: Split) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    return split.support, split.test


# --- encoders and their cached embeddings --------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """An encoder recipe (or a concatenation of several) evaluated by the benchmark."""

    name: str
    encoder_ids: tuple[str, ...]
    note: str
    augment: int = 0  # augmented views per support photo (one encoder only), as the trainer makes
    alpha: float | None = (
        None  # the head's ridge penalty; None: as the trainer picks it (recipe, else default)
    )


def _make_encoder(encoder_id: str) -> Any:
    from tagsmith.encoder import LITE0_ENCODER_ID, baseline_encoder, feature_encoder

    if encoder_id == LITE0_ENCODER_ID:
        return baseline_encoder(CACHE / "onnx", threads=THREADS)
    return feature_encoder(CACHE / "onnx", encoder_id, threads=THREADS)


#: The encoder the product used before issue 3's zoom (and trained without augmented views).
OLD_DEFAULT_ID = "effnet-lite2-260-s7-v1"
#: The default at the end of session 2: the zoom, one stage pooled beside the embedding.
ZOOM_S7_ID = "effnet-lite2-260-s7-c70-v1"
#: Rows the ``accuracy`` section measures beside the default.
ACCURACY_COMPARISONS = ("old-default", "zoom-s7-aug2", "s567-aug2", "no-augment")


def variants() -> list[Variant]:
    from tagsmith.encoder import DEFAULT_RECIPE, LITE0_ENCODER_ID
    from tagsmith.trainer import AUGMENT_BELOW, DEFAULT_AUGMENT_VIEWS

    views = DEFAULT_AUGMENT_VIEWS
    return [
        Variant("baseline", (LITE0_ENCODER_ID,), "Lite0 224 px, last layer"),
        Variant("lite0-320-s7", ("effnet-lite0-320-s7-v1",), "Lite0 320 px, + stage-7 pool"),
        Variant(
            "default",
            (DEFAULT_RECIPE.id,),
            f"Lite2 260 px + stage-5/6/7 pools + stage-5 second-order pool on the central 70%, {views} augmented "
            f"views per example of tags with fewer than {AUGMENT_BELOW} (product default)",
            augment=views,
        ),
        Variant("old-default", (OLD_DEFAULT_ID,), "Lite2 260 + stage-7, no zoom, no augmentation"),
        Variant(
            "zoom-s7-aug2",
            (ZOOM_S7_ID,),
            f"Lite2 260 + stage-7 on the central 70%, {views} views (session-2 default)",
            augment=views,
        ),
        Variant("no-augment", (DEFAULT_RECIPE.id,), "the default's features, no augmented views"),
        Variant(
            "s567-aug2",
            ("effnet-lite2-260-s567-c70-v1",),
            f"the default without the second-order pool (1960-d), {views} views",
            augment=views,
        ),
        Variant(
            "lite2-330-s567",
            ("effnet-lite2-330-s567-c70-v1",),
            f"the default's recipe at 330 px, {views} views: about twice the ingest cost",
            augment=views,
        ),
        *(
            Variant(
                f"default-a{alpha:g}",
                (DEFAULT_RECIPE.id,),
                f"the default with ridge penalty {alpha:g} instead of its recipe's 0.1",
                augment=views,
                alpha=alpha,
            )
            for alpha in (0.05, 0.3)
        ),
        Variant(
            "lite2-260-s7-flip", ("effnet-lite2-260-s7-flip-v1",), "old default + mirrored view averaged"
        ),
        Variant(
            "ensemble",
            ("effnet-lite0-320-s7-v1", OLD_DEFAULT_ID),
            "lite0-320-s7 and old default concatenated (two networks)",
        ),
    ]


#: ``benchmarks.explore`` caches that hold a recipe's features of the split photos, by encoder id.
EXPLORE_CACHE = CACHE / "explore"
EXPLORE_FEATURES = {ZOOM_S7_ID: "crop70", OLD_DEFAULT_ID: "orig"}
#: ... and of its augmented views of the support photos (``<prefix>-view<j>.npz``).
EXPLORE_VIEWS = {ZOOM_S7_ID: "aug-crop70", OLD_DEFAULT_ID: "aug"}
#: Largest difference from the product encoder tolerated when reusing an explore cache.
REUSE_TOLERANCE = 1e-5
REUSE_CHECKED = 12  # photos re-embedded through the product encoder to check a reused cache


def _explore_features(name: str) -> dict[str, np.ndarray] | None:
    file = EXPLORE_CACHE / f"{name}.npz"
    if not file.is_file():
        return None
    with np.load(file, allow_pickle=False) as npz:
        return dict(zip(npz["paths"].tolist(), npz["features"], strict=True))


def _check_reuse(what: str, product: np.ndarray, cached: np.ndarray) -> float:
    diff = float(np.abs(product - cached).max())
    assert diff <= REUSE_TOLERANCE, f"{what}: differs from the product encoder by {diff:.2e}: not reused"
    return diff


def _support_views(image: Any, data: bytes, count: int) -> list[Any]:
    """The trainer's augmented views of a photo (:mod:`tagsmith.trainer`: seeded by its bytes)."""
    from tagsmith.encoder.augment import augmented_views, seed_for_bytes

    return augmented_views(image, count=count, seed=seed_for_bytes(data))


def cached_views(encoder_id: str, paths: Sequence[str], count: int, log: Callable[[str], None]) -> np.ndarray:
    """(len(paths), count, dim): the trainer's ``count`` augmented views of each photo, embedded
    by ``encoder_id``; computed at most once (or taken from an explore cache after a check)."""
    from tagsmith.encoder import decode_image
    from tagsmith.trainer import AUGMENT_VERSION

    CACHE.mkdir(parents=True, exist_ok=True)
    file = CACHE / f"views-{encoder_id}-n{count}-aug{AUGMENT_VERSION}.npz"
    known: dict[str, np.ndarray] = {}
    if file.is_file():
        with np.load(file, allow_pickle=False) as npz:
            known = dict(zip(npz["paths"].tolist(), npz["views"], strict=True))
    missing = [p for p in paths if p not in known]
    added = bool(missing)
    if missing and encoder_id in EXPLORE_VIEWS:
        parts = [_explore_features(f"{EXPLORE_VIEWS[encoder_id]}-view{j}") for j in range(count)]
        if all(part is not None and all(p in part for p in missing) for part in parts):
            encoder = _make_encoder(encoder_id)
            sample = missing[:: max(1, len(missing) // REUSE_CHECKED)][:REUSE_CHECKED]
            product = []
            for p in sample:
                data = (GROCERY / p).read_bytes()
                product.append(encoder.embed(_support_views(decode_image(data).image, data, count)))
            cached = np.stack([np.stack([part[p] for part in parts if part is not None]) for p in sample])
            diff = _check_reuse(f"explore cache {EXPLORE_VIEWS[encoder_id]}", np.stack(product), cached)
            log(f"reusing {EXPLORE_VIEWS[encoder_id]}-view0..{count - 1} (max difference {diff:.1e})")
            for p in missing:
                known[p] = np.stack([part[p] for part in parts if part is not None])
            missing = []
    if missing:
        encoder = _make_encoder(encoder_id)
        log(f"embedding {count} augmented views of {len(missing)} support photos with {encoder_id} ...")
        started = time.perf_counter()
        for i, p in enumerate(missing):
            data = (GROCERY / p).read_bytes()
            known[p] = encoder.embed(_support_views(decode_image(data).image, data, count))
            if i % 200 == 0:
                log(f"  {i}/{len(missing)} ({time.perf_counter() - started:.0f} s)")
    if added:
        ordered = sorted(known)
        np.savez(file, paths=np.array(ordered), views=np.stack([known[p] for p in ordered]))
    return np.stack([known[p] for p in paths]).astype(np.float32)


def support_paths(ks: Sequence[int], seeds: Sequence[int], root: Path = GROCERY) -> list[str]:
    return sorted({p for k in ks for s in seeds for p, _ in load_split(k, s, root).support})


def cached_embeddings(
    encoder_id: str, paths: Sequence[str], log: Callable[[str], None]
) -> tuple[np.ndarray, float]:
    """(embeddings in ``paths`` order, seconds per image to decode + embed), computed at most once."""
    from tagsmith.encoder import decode_image

    CACHE.mkdir(parents=True, exist_ok=True)
    file = CACHE / f"{encoder_id}.npz"
    known: dict[str, np.ndarray] = {}
    seconds_per_image = float("nan")
    if file.is_file():
        with np.load(file, allow_pickle=False) as npz:
            known = dict(zip(npz["paths"].tolist(), npz["embeddings"], strict=True))
            seconds_per_image = float(npz["seconds_per_image"])
    missing = [p for p in paths if p not in known]
    explore = (
        _explore_features(EXPLORE_FEATURES[encoder_id])
        if missing and encoder_id in EXPLORE_FEATURES
        else None
    )
    if missing and explore is not None and all(p in explore for p in missing):
        encoder = _make_encoder(encoder_id)
        sample = missing[:: max(1, len(missing) // REUSE_CHECKED)][:REUSE_CHECKED]
        product = encoder.embed([decode_image((GROCERY / p).read_bytes()).image for p in sample])
        diff = _check_reuse(
            f"explore cache {EXPLORE_FEATURES[encoder_id]}", product, np.stack([explore[p] for p in sample])
        )
        log(
            f"reusing explore/{EXPLORE_FEATURES[encoder_id]}.npz for {encoder_id} (max difference {diff:.1e})"
        )
        with np.load(EXPLORE_CACHE / f"{EXPLORE_FEATURES[encoder_id]}.npz", allow_pickle=False) as npz:
            seconds_per_image = float(npz["seconds_per_image"])
        known.update({p: explore[p] for p in missing})
        ordered = sorted(known)
        np.savez(
            file,
            paths=np.array(ordered),
            embeddings=np.stack([known[p] for p in ordered]),
            seconds_per_image=np.float64(seconds_per_image),
        )
        missing = []
    if missing:
        encoder = _make_encoder(encoder_id)
        encoder.embed([decode_image((GROCERY / missing[0]).read_bytes()).image])  # build + warm up
        log(f"embedding {len(missing)} photos with {encoder_id} ...")
        started = time.perf_counter()
        for i in range(0, len(missing), 64):
            chunk = missing[i : i + 64]
            images = [decode_image((GROCERY / p).read_bytes()).image for p in chunk]
            for p, v in zip(chunk, encoder.embed(images), strict=True):
                known[p] = v
        seconds_per_image = (time.perf_counter() - started) / len(missing)
        log(f"  {1 / seconds_per_image:.1f} images/s (decode + embed)")
        ordered = sorted(known)
        np.savez(
            file,
            paths=np.array(ordered),
            embeddings=np.stack([known[p] for p in ordered]),
            seconds_per_image=np.float64(seconds_per_image),
        )
    return np.stack([known[p] for p in paths]).astype(np.float32), seconds_per_image


def variant_embeddings(
    variant: Variant, paths: Sequence[str], log: Callable[[str], None]
) -> tuple[np.ndarray, float]:
    parts, cost = [], 0.0
    for encoder_id in variant.encoder_ids:
        x, s = cached_embeddings(encoder_id, paths, log)
        parts.append(x)
        cost += s
    x = np.concatenate(parts, axis=1) / np.float32(np.sqrt(len(parts)))
    return x, cost


# --- evaluation -----------------------------------------------------------------------------------
def model_from_head(head: Any, encoder_id: str) -> Any:
    """A bench model from a fitted head (calibrated thresholds, else a flat 0.8)."""
    from tagsmith.tagmodels import ModelKind, TagModel

    return TagModel(
        tenant="bench",
        model_id="grocery",
        version="bench",
        kind=ModelKind.EXCLUSIVE,
        encoder_id=encoder_id,
        tags=head.tags,
        coef=head.coef,
        intercept=head.intercept,
        thresholds=head.thresholds_or(0.8),
    )


def route_rows(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(top tag per row, whether the routing auto-applied it), through :func:`route_prediction`."""
    from tagsmith.records import TagState
    from tagsmith.tagmodels import route_prediction

    probs = model.predict(x)
    top = np.array(model.tags)[probs.argmax(axis=1)]
    applied = np.array(
        [any(a.state is TagState.APPLIED for a in route_prediction(model, row)) for row in probs], dtype=bool
    )
    return top, applied


def support_views(
    views: Views | None, support: Sequence[tuple[str, str]]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``fit_linear_head``'s ``views`` / ``view_source`` for these support rows (None without views),
    as the trainer gives them: only photos of tags with fewer than ``AUGMENT_BELOW`` examples
    (:func:`tagsmith.trainer.views_per_example`)."""
    from tagsmith.trainer import views_per_example

    if views is None:
        return None, None
    per_photo, where = views
    counts = views_per_example([(label,) for _, label in support], per_photo.shape[1])
    if not sum(counts):
        return None, None
    rows = [per_photo[where[p], :n] for (p, _), n in zip(support, counts, strict=True) if n]
    return np.concatenate(rows), np.repeat(np.arange(len(support)), counts)


#: Augmented views of the support photos (photos, count, dim) and each photo's row in it.
Views = tuple[np.ndarray, dict[str, int]]


def evaluate_split(
    x: np.ndarray,
    index: dict[str, int],
    split: Split,
    encoder_id: str,
    views: Views | None = None,
    alpha: float | None = None,
) -> dict[str, float]:
    from tagsmith.tagmodels import ModelKind, fit_linear_head
    from tagsmith.tagmodels.training import DEFAULT_RIDGE_ALPHA

    xs = x[[index[p] for p, _ in split.support]]
    ys = [label for _, label in split.support]
    xt = x[[index[p] for p, _ in split.test]]
    yt = np.array([label for _, label in split.test])
    started = time.perf_counter()
    v, source = support_views(views, split.support)
    head = fit_linear_head(
        xs, ys, kind=ModelKind.EXCLUSIVE, views=v, view_source=source, alpha=alpha or DEFAULT_RIDGE_ALPHA
    )
    train_seconds = time.perf_counter() - started
    model = model_from_head(head, encoder_id)
    top, applied = route_rows(model, xt)
    right = top == yt
    # Honesty check: does the examples' out-of-fold confidence behave like new photos' at one cut?
    test_conf = model.predict(xt).max(axis=1)
    oof = head.oof_probabilities
    oof_conf = oof.max(axis=1) if oof is not None else np.zeros(0)
    oof_right = (
        np.array(head.tags)[oof.argmax(axis=1)] == np.array(ys) if oof is not None else np.zeros(0, bool)
    )
    return {
        "accuracy": float(right.mean()),
        "coverage": float(applied.mean()),
        "precision": float(right[applied].mean()) if applied.any() else float("nan"),
        "applied": int(applied.sum()),
        "train_seconds": train_seconds,
        "cv_accuracy": float(head.cv_accuracy or float("nan")),
        "oof_coverage_at_0.9": float((oof_conf >= HONESTY_CUT).mean()) if oof_conf.size else float("nan"),
        "oof_precision_at_0.9": _precision_at(oof_conf, oof_right),
        "test_coverage_at_0.9": float((test_conf >= HONESTY_CUT).mean()),
        "test_precision_at_0.9": _precision_at(test_conf, right),
    }


HONESTY_CUT = 0.9


def head_penalty(variant: Variant) -> float:
    """The ridge penalty a tenant's trainer would fit ``variant`` with: the variant's own, else its
    recipe's (``FeatureRecipe.ridge_alpha``), else the head's default."""
    from tagsmith.encoder import ridge_alpha_for
    from tagsmith.tagmodels.training import DEFAULT_RIDGE_ALPHA

    alpha = variant.alpha
    if alpha is None and len(variant.encoder_ids) == 1:
        alpha = ridge_alpha_for(variant.encoder_ids[0])
    return DEFAULT_RIDGE_ALPHA if alpha is None else alpha


def _precision_at(conf: np.ndarray, right: np.ndarray) -> float:
    above = conf >= HONESTY_CUT
    return float(right[above].mean()) if above.any() else float("nan")


def evaluate_unknown(
    x: np.ndarray,
    index: dict[str, int],
    split: Split,
    encoder_id: str,
    views: Views | None = None,
    alpha: float | None = None,
) -> dict[str, float]:
    """Train on a random half of the classes; the share of the other half's test photos not applied."""
    from tagsmith.tagmodels import ModelKind, fit_linear_head
    from tagsmith.tagmodels.training import DEFAULT_RIDGE_ALPHA

    classes = sorted({label for _, label in split.support})
    known = set(np.random.default_rng(split.seed).permutation(classes)[: len(classes) // 2].tolist())
    support = [(p, label) for p, label in split.support if label in known]
    unseen = [p for p, label in split.test if label not in known]
    head = fit_linear_head(
        x[[index[p] for p, _ in support]],
        [lab for _, lab in support],
        kind=ModelKind.EXCLUSIVE,
        views=support_views(views, support)[0],
        view_source=support_views(views, support)[1],
        alpha=alpha or DEFAULT_RIDGE_ALPHA,
    )
    _, applied = route_rows(model_from_head(head, encoder_id), x[[index[p] for p in unseen]])
    return {"unknown_not_applied": float(1.0 - applied.mean()), "unknown_photos": len(unseen)}


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": int(arr.size)}


def evaluate_variant(variant: Variant, seeds: Sequence[int], log: Callable[[str], None]) -> dict[str, Any]:
    paths = split_paths(KS, seeds)
    x, seconds_per_image = variant_embeddings(variant, paths, log)
    index = {p: i for i, p in enumerate(paths)}
    encoder_id = "+".join(variant.encoder_ids)
    views: Views | None = None
    if variant.augment:
        assert len(variant.encoder_ids) == 1, "augmented variants use one encoder"
        support = support_paths(KS, seeds)
        views = (
            cached_views(encoder_id, support, variant.augment, log),
            {p: i for i, p in enumerate(support)},
        )
    penalty = head_penalty(variant)
    out: dict[str, Any] = {
        "note": variant.note,
        "augmented_views": variant.augment,
        "encoder_ids": list(variant.encoder_ids),
        "dim": int(x.shape[1]),
        "embed_images_per_second": 1.0 / seconds_per_image,
        "per_k": {},
    }
    for k in KS:
        runs = [evaluate_split(x, index, load_split(k, s), encoder_id, views, penalty) for s in seeds]
        out["per_k"][str(k)] = {key: _mean_std([r[key] for r in runs]) for key in runs[0]}
        row = out["per_k"][str(k)]
        log(
            f"  {variant.name} k={k}: top-1 {_pct(row['accuracy'])}, precision {_pct(row['precision'])}, "
            f"coverage {_pct(row['coverage'])}, fit {row['train_seconds']['mean']:.2f} s"
        )
    unknown = [
        evaluate_unknown(x, index, load_split(UNKNOWN_K, s), encoder_id, views, penalty) for s in seeds
    ]
    out["unknown"] = {
        "k": UNKNOWN_K,
        "not_applied": _mean_std([u["unknown_not_applied"] for u in unknown]),
        "photos_per_seed": unknown[0]["unknown_photos"],
    }
    log(f"  {variant.name} unknown items not auto-applied: {_pct(out['unknown']['not_applied'])}")
    return out


# --- throughput ---------------------------------------------------------------------------------------
def throughput(log: Callable[[str], None], *, photos: int = 300, batch: int = 10) -> dict[str, Any]:
    """Ingest ``photos`` grocery photos through the real IngestService, ``batch`` objects per call."""
    from tagsmith.config import Settings
    from tagsmith.encoder import decode_image
    from tagsmith.events import ObjectRef
    from tagsmith.examples import Example
    from tagsmith.search import InMemorySearchIndex
    from tagsmith.storage.memory import MemoryObjectStore
    from tagsmith.wiring import build

    split = load_split(5, 0)
    settings = Settings(data_bucket="data", assets_bucket="assets", encoder_cache_dir=CACHE / "onnx")
    store = MemoryObjectStore()
    components = build(settings, store=store, index=InMemorySearchIndex())
    examples = [Example(label, path, (GROCERY / path).read_bytes) for path, label in split.support]
    started = time.perf_counter()
    components.trainer.train(tenant="bench", model_id="grocery", examples=examples)
    train_seconds = time.perf_counter() - started
    log(f"trained on {len(examples)} photos in {train_seconds:.1f} s (embedding included)")

    support = {p for p, _ in split.support}
    chosen = [p for p in split_paths((5,), (0,)) if p not in support]
    pool = sorted((GROCERY / "train").rglob("*.jpg"))
    extra = [str(p.relative_to(GROCERY)) for p in pool if str(p.relative_to(GROCERY)) not in support]
    chosen = (chosen + [p for p in extra if p not in set(chosen)])[:photos]
    refs = []
    for p in chosen:
        key = f"bench/{p}"
        store.put("assets", key, (GROCERY / p).read_bytes(), content_type="image/jpeg")
        refs.append(ObjectRef("assets", key))
    components.ingest.ingest(refs[:2])  # warm-up: sessions, models in memory (excluded below)
    refs = refs[2:]
    started = time.perf_counter()
    outcomes: dict[str, int] = {}
    for i in range(0, len(refs), batch):
        for outcome in components.ingest.ingest(refs[i : i + batch]):
            status = type(outcome).__name__ if isinstance(outcome, Exception) else outcome.status
            outcomes[status] = outcomes.get(status, 0) + 1
    ingest_seconds = time.perf_counter() - started

    encoder = components.encoder
    started = time.perf_counter()
    for i in range(0, len(chosen), 16):
        encoder.embed([decode_image((GROCERY / p).read_bytes()).image for p in chosen[i : i + 16]])
    embed_seconds = time.perf_counter() - started
    result = {
        "encoder_id": encoder.encoder_id,
        "photos": len(refs),
        "batch": batch,
        "outcomes": outcomes,
        "ingest_images_per_second": len(refs) / ingest_seconds,
        "embed_only_images_per_second": len(chosen) / embed_seconds,
        "train_seconds_k5": train_seconds,
    }
    log(
        f"ingest {result['ingest_images_per_second']:.1f} images/s ({len(refs)} photos, {outcomes}); "
        f"decode + embed only {result['embed_only_images_per_second']:.1f} images/s"
    )
    return result


def embed_cost(log: Callable[[str], None], *, photos: int = 96) -> dict[str, float]:
    """Decode + embed images/s per encoder on the same photos, one after the other."""
    from tagsmith.encoder import decode_image

    paths = split_paths((5,), (0,))[:photos]
    data = [(GROCERY / p).read_bytes() for p in paths]
    out = {}
    for encoder_id in dict.fromkeys(e for v in variants() for e in v.encoder_ids):
        encoder = _make_encoder(encoder_id)
        encoder.embed([decode_image(data[0]).image])  # build + warm up
        started = time.perf_counter()
        for i in range(0, len(data), 16):
            encoder.embed([decode_image(d).image for d in data[i : i + 16]])
        out[encoder_id] = len(data) / (time.perf_counter() - started)
        log(f"  {encoder_id}: {out[encoder_id]:.1f} images/s")
    return out


# --- output ---------------------------------------------------------------------------------------------
def _pct(stat: dict[str, float]) -> str:
    if not stat.get("n"):
        return "n/a"
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}%"


def markdown(results: dict[str, Any]) -> str:
    lines = []
    evaluated = {
        **({"default": results["accuracy"]} if "accuracy" in results else {}),
        **results.get("accuracy_comparisons", {}),
        **results.get("variants", {}),
    }
    if evaluated:
        lines += [
            "| variant | dim | top-1 k=5 | top-1 k=10 | top-1 k=30 | precision / coverage k=5 | k=10 | k=30 "
            "| unknown not applied | embed img/s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in evaluated.items():
            per_k = r["per_k"]
            pc = [f"{_pct(per_k[str(k)]['precision'])} / {_pct(per_k[str(k)]['coverage'])}" for k in KS]
            lines.append(
                f"| {name} ({r['note']}) | {r['dim']} | "
                + " | ".join(_pct(per_k[str(k)]["accuracy"]) for k in KS)
                + f" | {' | '.join(pc)} | {_pct(r['unknown']['not_applied'])} | {r['embed_images_per_second']:.1f} |"
            )
    if "throughput" in results:
        t = results["throughput"]
        lines += [
            "",
            "| throughput (2 threads) | images/s |",
            "|---|---|",
            f"| ingest through IngestService, batches of {t['batch']} ({t['encoder_id']}) | "
            f"{t['ingest_images_per_second']:.1f} |",
            f"| decode + embed only | {t['embed_only_images_per_second']:.1f} |",
        ]
    if "embed_cost" in results:
        lines += ["", "| encoder | decode + embed images/s |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in results["embed_cost"].items()]
    for name in EXTRA_SECTIONS:
        if name in results:
            lines += ["", f"{name}: see var/bench-results.json"]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed per k instead of five")
    parser.add_argument(
        "--only",
        default=",".join(OWN_SECTIONS),
        help=f"comma-separated: {', '.join(OWN_SECTIONS + NAMED_SECTIONS + EXTRA_SECTIONS)}",
    )
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(OWN_SECTIONS + NAMED_SECTIONS + EXTRA_SECTIONS)
    if unknown:
        parser.error(
            f"unknown section(s) {sorted(unknown)}; "
            f"choose from {', '.join(OWN_SECTIONS + NAMED_SECTIONS + EXTRA_SECTIONS)}"
        )

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    own = [s for s in sections if s in OWN_SECTIONS + NAMED_SECTIONS]
    if own and not (GROCERY / "splits").is_dir():
        log(f"SKIPPED {', '.join(own)}: the grocery dataset is not at {GROCERY} (set TAGSMITH_GROCERY_DIR)")
        own = []
    seeds = SEEDS[:1] if args.quick else SEEDS
    results: dict[str, Any] = {"machine": machine(), "seeds": list(seeds), "ks": list(KS)}
    started = time.perf_counter()
    all_variants = {v.name: v for v in variants()}
    if "accuracy" in own:
        log("accuracy: default encoder")
        results["accuracy"] = evaluate_variant(all_variants["default"], seeds, log)
        results["accuracy_comparisons"] = {}
        for name in ACCURACY_COMPARISONS:
            log(f"accuracy: {name}")
            results["accuracy_comparisons"][name] = evaluate_variant(all_variants[name], seeds, log)
    if "variants" in own:
        results["variants"] = {}
        for name, variant in all_variants.items():
            if name == "default" or name in results.get("accuracy_comparisons", {}):
                continue
            log(f"variant {name}")
            try:
                results["variants"][name] = evaluate_variant(variant, seeds, log)
            except Exception as e:  # e.g. optional weights missing: report, keep going
                log(f"  {name} failed: {e}")
    if "embed_cost" in own:
        log("embed cost")
        results["embed_cost"] = embed_cost(log)
    if "throughput" in own:
        log("throughput")
        results["throughput"] = throughput(log)
    for name in (s for s in sections if s in EXTRA_SECTIONS):
        log(f"{name} (benchmarks/{name}.py)")
        results[name] = importlib.import_module(f"benchmarks.{name}").run()
    results["seconds"] = time.perf_counter() - started
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(markdown(results))
    print(f"\n{results['seconds']:.0f} s; results in {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
