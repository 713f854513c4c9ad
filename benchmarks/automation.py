"""The product's automation on both dev catalogues, through the real trainer (issues 12 and 13).

    python -m benchmarks.automation                 # grocery and clothing, k = 5 / 10 / 30, 5 seeds
    python -m benchmarks.automation --quick         # seeds 0-1
    python -m benchmarks.automation --catalogues clothing --ks 10

Every model is trained by :class:`tagsmith.trainer.TrainingService` exactly as a tenant's would be:
the candidate recipes compared by cross-validation (:data:`tagsmith.encoder.CANDIDATE_RECIPES`),
augmented views for tags with few examples, the calibration, the "none of the trained tags" level.
Only the photos' pixels are skipped: the embeddings of every photo and view by every candidate
recipe are computed once by :mod:`benchmarks.catalogues` (the same graph and preprocessing as the
product's encoders; ``--check`` compares a sample with the product encoders) and handed to the
trainer through its embedding cache.

Per split (``splits/dev_k{k}_seed{s}.csv``: support photos to train on, test photos never seen):

* **top-1**: the model's best tag against the label, every test photo;
* **precision / coverage**: of the tags routing (:func:`tagsmith.tagmodels.route_prediction`)
  auto-applies, the share that is right, and the share of test photos that get one;
* **oracle coverage**: the largest share of test photos one confidence threshold, chosen *on the
  test photos*, could auto-apply at the model's target precision (hindsight; what calibration at
  its best could reach with these scores), and the shipped coverage as a ratio of it;
* **never-seen**: a model trained on a random half of the tags routes the test photos of the other
  half; the share *not* auto-applied, and the share flagged "none of the trained tags";
* **recipe**: which candidate the trainer chose, per split.

Beside it, in the same run, the plain baseline the issue names: EfficientNet-Lite0's 1280-d
embedding at 224 px, a linear probe (the same ridge head, no views, the same calibration).
Results go to ``var/automation-results.json`` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.catalogues import (
    CATALOGUES,
    KS,
    ROOT,
    SEEDS,
    catalogue_dir,
    features,
    joined,
    load_split,
    split_paths,
    support_paths,
    view_features,
)

RESULTS = ROOT / "var" / "automation-results.json"
TENANT = "bench"
#: The parts of the recipes the trainer chooses between (tagsmith.encoder.CANDIDATE_RECIPES).
S567G = ("embedding", "stage7", "stage6", "stage5", "stage5_gram")
#: recipe id -> (crop of the cached features, parts), in the product's order of candidates
#: (tagsmith.encoder.CANDIDATE_RECIPES: the first is the one a model gets without evidence)
RECIPE_FEATURES = {
    "effnet-lite2-260-s567g-c70-v1": (0.7, S567G),
    "effnet-lite2-260-s567g-v1": (1.0, S567G),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sha_of(catalogue: str, path: str) -> str:
    """A stand-in content hash per photo (the trainer keys its caches by content hash)."""
    return hashlib.sha256(f"{catalogue}/{path}".encode()).hexdigest()


class DictEmbeddings:
    """The trainer's embedding cache, in a dict (what :class:`tagsmith.storage.EmbeddingCache` does in S3)."""

    def __init__(self) -> None:
        self.vectors: dict[tuple[str, str], np.ndarray] = {}

    def get(self, tenant: str, encoder_id: str, sha256: str) -> np.ndarray | None:
        return self.vectors.get((encoder_id, sha256))

    def put(self, tenant: str, encoder_id: str, sha256: str, vector: np.ndarray) -> None:
        self.vectors[(encoder_id, sha256)] = np.asarray(vector, dtype=np.float32)


class NoPixels:
    """An encoder that must never run: every embedding comes from the cache."""

    def __init__(self, encoder_id: str, dim: int) -> None:
        self.encoder_id, self.dim = encoder_id, dim

    def embed(self, images: Sequence[Any]) -> np.ndarray:
        raise AssertionError(f"{self.encoder_id}: a photo missed the embedding cache")


@dataclass
class Catalogue:
    """Every photo's embedding by every candidate recipe (and the baseline), and the views'."""

    name: str
    vectors: dict[str, dict[str, np.ndarray]]  # recipe id -> path -> vector
    views: dict[str, dict[str, np.ndarray]]  # recipe id -> support path -> (views, dim)

    @classmethod
    def load(cls, name: str, recipes: Sequence[str], *, extra_paths: Sequence[str] = ()) -> Catalogue:
        """The split photos' embeddings (and the support photos' views), and those of
        ``extra_paths`` too (a library of uploads that may become examples)."""
        vectors, views = {}, {}
        paths = sorted(set(split_paths(name)) | set(extra_paths))
        view_paths = sorted(set(support_paths(name)) | set(extra_paths))
        for recipe in recipes:
            crop, parts = RECIPE_FEATURES[recipe]
            f = features(name, crop, paths=paths)
            x = joined([f[p] for p in parts])
            vectors[recipe] = dict(zip(f["paths"].tolist(), x, strict=True))
            v = view_features(name, crop, paths=view_paths)
            n, count = v[parts[0]].shape[:2]
            xv = joined([v[p].reshape(n * count, -1) for p in parts]).reshape(n, count, -1)
            views[recipe] = dict(zip(v["paths"].tolist(), xv, strict=True))
        base = features(name, 1.0, variant="lite0", size=224, paths=paths)
        vectors[BASELINE] = dict(zip(base["paths"].tolist(), joined([base["embedding"]]), strict=True))
        return cls(name, vectors, views)


BASELINE = "effnet-lite0-v1"


def components(cat: Catalogue, recipes: Sequence[str], views: bool, calibration: Any = None) -> Any:
    """A trainer on memory adapters whose cache holds every photo's (and view's) embedding."""
    from tagsmith.encoder.registry import EncoderSet
    from tagsmith.storage import MemoryObjectStore
    from tagsmith.tagging import Tagger
    from tagsmith.tagmodels import ActiveModels, ModelStore
    from tagsmith.trainer import TrainingService, view_cache_key

    cache = DictEmbeddings()
    for recipe in recipes:
        for path, vec in cat.vectors[recipe].items():
            cache.put(TENANT, recipe, sha_of(cat.name, path), vec)
        if views:
            for path, rows in cat.views.get(recipe, {}).items():
                for i, vec in enumerate(rows):
                    cache.put(TENANT, recipe, view_cache_key(sha_of(cat.name, path), i), vec)
    encoders = [NoPixels(r, len(next(iter(cat.vectors[r].values())))) for r in recipes]
    store = MemoryObjectStore()
    models = ModelStore(store=store, bucket="data")
    tagger = Tagger(
        encoders=EncoderSet(default=encoders[0], candidates=encoders),  # type: ignore[arg-type]
        models=ActiveModels(models=models, ttl=0.0),
        embeddings=cache,  # type: ignore[arg-type]
    )
    from tagsmith.tagmodels.calibration import DEFAULT_CALIBRATION

    return TrainingService(
        tagger=tagger, models=models, calibration=calibration or DEFAULT_CALIBRATION
    ), models


def unreadable() -> bytes:
    raise OSError("the benchmark keeps no pixels")


def train(
    cat: Catalogue,
    support: Sequence[tuple[str, str]],
    recipes: Sequence[str],
    *,
    views: bool,
    calibration: Any = None,
) -> Any:
    from tagsmith.examples import Example
    from tagsmith.trainer import TrainingOptions

    trainer, models = components(cat, recipes, views, calibration)
    examples = [Example.of([label], p, unreadable, sha256=sha_of(cat.name, p)) for p, label in support]
    report = trainer.train(
        tenant=TENANT,
        model_id="m",
        examples=examples,
        options=TrainingOptions(augment=2 if views else 0, allow_near_duplicates=True),
    )
    model = models.load_active(TENANT, "m")
    return model, report


def route(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(top tag, confidence, auto-applied, flagged "none of the trained tags") per row."""
    from tagsmith.records import NONE_TAG, TagState
    from tagsmith.tagmodels import route_prediction

    p = model.predict(x)
    top = np.array(model.tags)[p.argmax(axis=1)]
    applied, none = [], []
    for row in p:
        routed = route_prediction(model, row)
        applied.append(any(a.state is TagState.APPLIED for a in routed))
        none.append(any(a.tag == NONE_TAG for a in routed))
    return top, p.max(axis=1), np.array(applied, bool), np.array(none, bool)


def oracle_coverage(conf: np.ndarray, correct: np.ndarray, precision: float) -> float:
    """The largest share one threshold chosen on these very photos auto-applies at ``precision``."""
    order = np.argsort(-conf, kind="stable")
    c, right = conf[order], correct[order]
    share = np.cumsum(right) / np.arange(1, len(right) + 1)
    last = np.append(c[1:] != c[:-1], True)
    ok = np.nonzero((share >= precision) & last)[0]
    return float((ok.max() + 1) / len(right)) if ok.size else 0.0


def evaluate(
    cat: Catalogue, k: int, seed: int, recipes: Sequence[str], *, views: bool, calibration: Any = None
) -> dict[str, Any]:
    split = load_split(cat.name, k, seed)
    started = time.perf_counter()
    model, report = train(cat, split.support, recipes, views=views, calibration=calibration)
    seconds = time.perf_counter() - started
    x = np.stack([cat.vectors[model.encoder_id][p] for p, _ in split.test])
    truth = np.array([label for _, label in split.test])
    top, conf, applied, none = route(model, x)
    right = top == truth
    # never-seen: half the tags trained, the other half's test photos routed
    classes = sorted({label for _, label in split.support})
    known = set(np.random.default_rng(seed).permutation(classes)[: len(classes) // 2].tolist())
    half, _ = train(
        cat,
        [(p, lab) for p, lab in split.support if lab in known],
        recipes,
        views=views,
        calibration=calibration,
    )
    unseen = [p for p, lab in split.test if lab not in known]
    _, _, u_applied, u_none = route(half, np.stack([cat.vectors[half.encoder_id][p] for p in unseen]))
    target = model.target_precision
    orc = oracle_coverage(conf, right, target)
    return {
        "top1": float(right.mean()),
        "precision": float(right[applied].mean()) if applied.any() else float("nan"),
        "coverage": float(applied.mean()),
        "oracle_coverage": orc,
        "coverage_ratio": float(applied.mean() / orc) if orc else float("nan"),
        "none_flagged_known": float(none.mean()),
        "never_seen_not_applied": float(1.0 - u_applied.mean()),
        "never_seen_flagged_none": float(u_none.mean()),
        "cv_precision": report.calibration.get("cv_precision"),
        "cv_precision_lower": report.calibration.get("cv_precision_lower"),
        "cv_coverage": report.calibration.get("cv_coverage"),
        "recipe": model.encoder_id,
        "train_seconds": seconds,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in runs[0]:
        values = [r[key] for r in runs]
        if isinstance(values[0], str):
            out[key] = {v: values.count(v) for v in sorted(set(values))}
            continue
        arr = np.array([np.nan if v is None else v for v in values], dtype=float)
        out[key] = {
            "mean": float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan"),
            "std": float(np.nanstd(arr)) if np.isfinite(arr).any() else float("nan"),
            "min": float(np.nanmin(arr)) if np.isfinite(arr).any() else float("nan"),
            "values": [None if not np.isfinite(v) else round(float(v), 4) for v in arr],
        }
    return out


def pct(cell: dict[str, Any], *, std: bool = True) -> str:
    if not np.isfinite(cell["mean"]):
        return "n/a"
    return f"{100 * cell['mean']:.1f} ± {100 * cell['std']:.1f}" if std else f"{100 * cell['mean']:.1f}"


def _calibration(**changes: Any) -> Any:
    from tagsmith.tagmodels.calibration import CalibrationSettings

    return CalibrationSettings(**changes)


VARIANTS: dict[str, tuple[tuple[str, ...], bool, dict[str, Any]]] = {
    # name: (recipes the trainer may choose between, augmented views, calibration settings changed)
    "product": (tuple(RECIPE_FEATURES), True, {}),
    "zoom only": (("effnet-lite2-260-s567g-c70-v1",), True, {}),
    "full frame only": (("effnet-lite2-260-s567g-v1",), True, {}),
    "product without views": (tuple(RECIPE_FEATURES), False, {}),
    "baseline (Lite0 linear probe)": ((BASELINE,), False, {}),
    # the calibration's choices, each changed alone (tagsmith.tagmodels.calibration)
    "calibration: whole error budget out of fold": (tuple(RECIPE_FEATURES), True, {"error_share": 1.0}),
    "calibration: half the error budget": (tuple(RECIPE_FEATURES), True, {"error_share": 0.5}),
    "calibration: never-seen gate at 10%": (tuple(RECIPE_FEATURES), True, {"never_seen_pass": 0.10}),
    "calibration: no per-tag confusion floors": (tuple(RECIPE_FEATURES), True, {"confusion_margin": 1.0}),
}
#: What ``make bench`` runs (the calibration rows on demand: ``--variants``).
DEFAULT_VARIANTS = (
    "product", "zoom only", "full frame only", "product without views", "baseline (Lite0 linear probe)",
)  # fmt: skip


def check_against_product(name: str, count: int = 6) -> float:
    """Largest difference between the cached features and the product encoders' embeddings."""
    from tagsmith.encoder import decode_image, feature_encoder

    cache = ROOT / "var" / "bench-cache" / "onnx"
    worst = 0.0
    cat = Catalogue.load(name, tuple(RECIPE_FEATURES))
    paths = sorted(cat.vectors[next(iter(RECIPE_FEATURES))])[:: max(1, 2000 // count)][:count]
    images = [decode_image((catalogue_dir(name) / p).read_bytes()).image for p in paths]
    for recipe in RECIPE_FEATURES:
        product = feature_encoder(cache, recipe, threads=2).embed(images)
        mine = np.stack([cat.vectors[recipe][p] for p in paths])
        worst = max(worst, float(np.abs(product - mine).max()))
    return worst


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--catalogues", default=",".join(CATALOGUES))
    parser.add_argument("--ks", default=",".join(map(str, KS)))
    parser.add_argument(
        "--variants",
        default=";".join(DEFAULT_VARIANTS),
        help=f"semicolon-separated, of: {'; '.join(VARIANTS)}",
    )
    parser.add_argument("--quick", action="store_true", help="seeds 0-1 only")
    parser.add_argument(
        "--check", action="store_true", help="compare cached features with the product encoders"
    )
    args = parser.parse_args(argv)
    seeds = SEEDS[:2] if args.quick else SEEDS
    ks = [int(k) for k in args.ks.split(",")]
    names = [c for c in args.catalogues.split(",") if c]
    for name in names:
        if not (catalogue_dir(name) / "splits").is_dir():
            print(f"SKIPPED: {catalogue_dir(name)} is absent (set TAGSMITH_DATASETS_DIR)")
            return 0
    if args.check:
        for name in names:
            print(
                f"{name}: cached features vs product encoders, max difference {check_against_product(name):.2e}"
            )
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    variants = [v for v in args.variants.split(";") if v]
    for name in names:
        cat = Catalogue.load(name, tuple(RECIPE_FEATURES))
        for variant in variants:
            recipes, views, changes = VARIANTS[variant]
            calibration = _calibration(**changes) if changes else None
            for k in ks:
                runs = [evaluate(cat, k, s, recipes, views=views, calibration=calibration) for s in seeds]
                row = summarise(runs)
                results.setdefault(name, {}).setdefault(variant, {})[str(k)] = row
                log(
                    f"{name} {variant} k={k}: top-1 {pct(row['top1'])}, precision {pct(row['precision'])} "
                    f"(min {100 * row['precision']['min']:.1f}), coverage {pct(row['coverage'])} = "
                    f"{row['coverage_ratio']['mean']:.2f}x oracle {pct(row['oracle_coverage'], std=False)}; "
                    f"never-seen not applied {pct(row['never_seen_not_applied'])}; recipes {row['recipe']}"
                )
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                RESULTS.write_text(json.dumps(results, indent=1))
    print_tables(results, names, variants, ks)
    return 0


def recipe_counts(counts: dict[str, int]) -> str:
    """``3x zoom, 2x full frame``: which recipe the trainer chose over the seeds."""
    short = {"effnet-lite2-260-s567g-c70-v1": "zoom", "effnet-lite2-260-s567g-v1": "full frame"}
    return ", ".join(f"{n}x {short.get(r, r)}" for r, n in counts.items())


def run() -> dict[str, Any]:
    """``python -m benchmarks.run --only automation``: every variant, both catalogues, 5 seeds."""
    main([])
    return dict(json.loads(RESULTS.read_text()))


def print_tables(
    results: dict[str, Any], names: Sequence[str], variants: Sequence[str], ks: Sequence[int]
) -> None:
    for name in names:
        print(f"\n### {name}\n")
        print(
            "| variant | k | top-1 | auto-applied precision (min seed) | coverage | oracle coverage | shipped / oracle | never-seen not applied | never-seen flagged none | recipe chosen |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for variant in variants:
            for k in ks:
                row = results.get(name, {}).get(variant, {}).get(str(k))
                if row is None:
                    continue
                print(
                    f"| {variant} | {k} | {pct(row['top1'])} | {pct(row['precision'])} ({100 * row['precision']['min']:.1f}) | "
                    f"{pct(row['coverage'])} | {pct(row['oracle_coverage'])} | {row['coverage_ratio']['mean']:.2f} | "
                    f"{pct(row['never_seen_not_applied'])} | {pct(row['never_seen_flagged_none'])} | "
                    f"{recipe_counts(row['recipe'])} |"
                )


if __name__ == "__main__":
    raise SystemExit(main())
