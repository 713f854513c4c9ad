"""Features across catalogues: which crops, layers and heads hold on grocery AND clothing (issue 13).

    python -m benchmarks.catalogues                  # every row (fills its caches first)
    python -m benchmarks.catalogues --only full-s7   # some rows; --list names them

Protocol: both dev catalogues' splits (``splits/dev_k{5,10,30}_seed{0..4}.csv``), mean +- std of
top-1 over the 5 seeds, a ridge head as the product fits it (class-balanced, out-of-fold
temperature), no augmented views and no calibration: the rows compare *features*. The product's
own figures (views, calibration, routing) are ``benchmarks.run``'s.

Features: one pass of EfficientNet-Lite2 at 260 px over every split photo, once on the full frame
and once on the central 70% (``to_model_input(crop=...)``), keeping every output of the taps graph
(the embedding, the ImageNet logits, stages 5-7 pooled, stage 5's second-order pool). Cached per
catalogue and crop under ``var/bench-cache/catalogues/``. A row joins parts as
:class:`tagsmith.encoder.FeatureEncoder` does: each part L2-normalised, the row divided by
sqrt(number of parts).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TAGSMITH_DATASETS_DIR", ROOT.parent / "shared" / "datasets"))
CATALOGUES = ("grocery", "clothing")
CACHE = ROOT / "var" / "bench-cache" / "catalogues"
RESULTS = ROOT / "var" / "catalogues-results.json"
KS = (5, 10, 30)
SEEDS = (0, 1, 2, 3, 4)
PARTS = ("embedding", "logits", "stage7", "stage6", "stage5", "stage5_gram")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Split:
    catalogue: str
    k: int
    seed: int
    support: list[tuple[str, str]]  # (path relative to the catalogue's folder, label)
    test: list[tuple[str, str]]


def catalogue_dir(name: str) -> Path:
    return DATASETS / name


def load_split(catalogue: str, k: int, seed: int) -> Split:
    support: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    with (catalogue_dir(catalogue) / "splits" / f"dev_k{k}_seed{seed}.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            (support if row["split"] == "support" else test).append((row["path"], row["label"]))
    return Split(catalogue, k, seed, support, test)


def split_paths(catalogue: str) -> list[str]:
    paths: set[str] = set()
    for k in KS:
        for s in SEEDS:
            split = load_split(catalogue, k, s)
            paths.update(p for p, _ in split.support)
            paths.update(p for p, _ in split.test)
    return sorted(paths)


def _letterbox(image: Image.Image) -> Image.Image:
    """The whole photo on a square of the encoder's mean grey (nothing cropped)."""
    side = max(image.size)
    canvas = Image.new("RGB", (side, side), (127, 127, 127))
    canvas.paste(image.convert("RGB"), ((side - image.size[0]) // 2, (side - image.size[1]) // 2))
    return canvas


def pool_paths(catalogue: str) -> list[str]:
    """Every photo of the part the support photos are drawn from (the unlabelled library of the
    review-loop benchmark): grocery's ``train/``, clothing's ``part=train`` contributors."""
    root = catalogue_dir(catalogue)
    if catalogue == "grocery":
        return sorted(
            line.split(",")[0].strip()
            for line in (root / "train.txt").read_text().splitlines()
            if line.strip()
        )
    with (root / "images.csv").open(newline="") as f:
        return sorted(f"images/{row['image']}.jpg" for row in csv.DictReader(f) if row["part"] == "train")


def pool_labels(catalogue: str) -> dict[str, str]:
    """The label of every pool photo (what a simulated reviewer answers)."""
    root = catalogue_dir(catalogue)
    if catalogue == "grocery":
        names = {}
        with (root / "classes.csv").open() as f:
            for row in csv.reader(f):
                if len(row) > 1 and row[1].isdigit():
                    names[row[1]] = row[0]
        out = {}
        for line in (root / "train.txt").read_text().splitlines():
            if line.strip():
                path, fine, _ = (p.strip() for p in line.split(","))
                out[path] = names[fine]
        return out
    with (root / "images.csv").open(newline="") as f:
        return {
            f"images/{row['image']}.jpg": row["label"] for row in csv.DictReader(f) if row["part"] == "train"
        }


def _session(variant: str, size: int) -> Any:
    import onnxruntime
    from tagsmith.encoder.lite0 import build_efficientnet_lite_model
    from tagsmith.encoder.torch_legacy import load_lite_state_dict

    model = build_efficientnet_lite_model(
        load_lite_state_dict(variant), input_size=size, name=variant, taps=True
    )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    return onnxruntime.InferenceSession(
        model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
    )


def _cached_pass(
    file: Path,
    paths: Sequence[str],
    images_of: Callable[[str], list[Image.Image]],
    *,
    variant: str,
    size: int,
    crop: float,
    views: int = 0,
) -> dict[str, np.ndarray]:
    """Every taps output for ``paths`` (rows in their order; with ``views``, arrays (photos, views,
    width)), from ``file`` where it has them; the missing ones are computed and added to it."""
    known: dict[str, np.ndarray] = {}
    if file.is_file():
        with np.load(file, allow_pickle=False) as npz:
            known = {k: npz[k] for k in npz.files}
    have = {p: i for i, p in enumerate(known["paths"].tolist())} if known else {}
    missing = [p for p in dict.fromkeys(paths) if p not in have]
    if missing:
        from tagsmith.encoder import to_model_input

        session = _session(variant, size)
        parts: dict[str, list[np.ndarray]] = {p: [] for p in PARTS}
        started = time.perf_counter()
        step = 16 if views else 32
        for i in range(0, len(missing), step):
            images = [im for p in missing[i : i + step] for im in images_of(p)]
            batch = to_model_input(images, size=size, crop=crop)
            n = len(missing[i : i + step])
            for name, value in zip(PARTS, session.run(list(PARTS), {"image": batch}), strict=True):
                value = np.asarray(value, dtype=np.float32)
                parts[name].append(value.reshape(n, views, -1) if views else value.reshape(n, -1))
            if i % (step * 20) == 0:
                log(f"  {file.name}: {i}/{len(missing)} ({time.perf_counter() - started:.0f} s)")
        fresh = {k: np.concatenate(v) for k, v in parts.items()}
        if known:
            known = {k: np.concatenate([known[k], fresh[k]]) for k in PARTS}
            known["paths"] = np.concatenate([np.array(list(have)), np.array(missing)])
        else:
            known = {**fresh, "paths": np.array(missing)}
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp.npz")
        np.savez(tmp, **known)  # type: ignore[arg-type]
        os.replace(tmp, file)
        have = {p: i for i, p in enumerate(known["paths"].tolist())}
    rows = [have[p] for p in paths]
    out = {k: known[k][rows] for k in PARTS}
    out["paths"] = np.array(list(paths))
    return out


def features(
    catalogue: str,
    crop: float,
    *,
    variant: str = "lite2",
    size: int = 260,
    pad: bool = False,
    flip: bool = False,
    paths: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Every taps output of one pass over ``paths`` of ``catalogue`` (default: every split photo),
    rows in ``paths`` order. ``pad``: the whole photo letterboxed to a square instead of the centre
    square; ``flip``: mirrored."""
    suffix = ("-pad" if pad else "") + ("-flip" if flip else "")
    file = CACHE / f"{catalogue}-{variant}-{size}-c{round(crop * 100)}{suffix}.npz"
    root = catalogue_dir(catalogue)
    from tagsmith.encoder import decode_image

    def images_of(path: str) -> list[Image.Image]:
        image = decode_image((root / path).read_bytes()).image
        if pad:
            image = _letterbox(image)
        if flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return [image]

    wanted = split_paths(catalogue) if paths is None else paths
    return _cached_pass(file, wanted, images_of, variant=variant, size=size, crop=crop)


def support_paths(catalogue: str) -> list[str]:
    return sorted({p for k in KS for s in SEEDS for p, _ in load_split(catalogue, k, s).support})


def view_features(
    catalogue: str,
    crop: float,
    *,
    count: int = 2,
    variant: str = "lite2",
    size: int = 260,
    paths: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Every taps output of the trainer's ``count`` augmented views of ``paths`` (default: every
    support photo), seeded by the photo's bytes as :mod:`tagsmith.trainer` draws them: arrays
    (photos, count, width)."""
    file = CACHE / f"{catalogue}-{variant}-{size}-c{round(crop * 100)}-views{count}.npz"
    root = catalogue_dir(catalogue)
    from tagsmith.encoder import decode_image
    from tagsmith.encoder.augment import augmented_views, seed_for_bytes

    def images_of(path: str) -> list[Image.Image]:
        data = (root / path).read_bytes()
        return augmented_views(decode_image(data).image, count=count, seed=seed_for_bytes(data))

    wanted = support_paths(catalogue) if paths is None else paths
    return _cached_pass(file, wanted, images_of, variant=variant, size=size, crop=crop, views=count)


def joined(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Parts joined as the product's FeatureEncoder joins them."""
    normed = [a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12) for a in arrays]
    return (np.concatenate(normed, axis=1) / np.sqrt(len(normed))).astype(np.float32)


@dataclass(frozen=True)
class Row:
    name: str
    parts: tuple[tuple[float, str], ...]  # (crop, part)
    alpha: float = 0.3
    note: str = ""


def rows() -> list[Row]:
    s567 = ("embedding", "stage7", "stage6", "stage5")
    s567g = (*s567, "stage5_gram")
    out = []
    for crop, tag in ((1.0, "full"), (0.7, "c70")):
        out += [
            Row(f"{tag}-emb", tuple((crop, p) for p in ("embedding",))),
            Row(f"{tag}-s7", tuple((crop, p) for p in ("embedding", "stage7"))),
            Row(f"{tag}-s567", tuple((crop, p) for p in s567)),
            Row(f"{tag}-s567g", tuple((crop, p) for p in s567g), alpha=0.1),
            Row(f"{tag}-s567g-a0.3", tuple((crop, p) for p in s567g)),
            Row(f"{tag}-emb-logits", tuple((crop, p) for p in ("embedding", "logits"))),
            Row(f"{tag}-s7-logits", tuple((crop, p) for p in ("embedding", "stage7", "logits"))),
            Row(f"{tag}-logits", ((crop, "logits"),)),
        ]
    out += [
        Row("both-emb", ((1.0, "embedding"), (0.7, "embedding"))),
        Row("both-s7", ((1.0, "embedding"), (1.0, "stage7"), (0.7, "embedding"), (0.7, "stage7"))),
        Row("both-s567g", tuple((c, p) for c in (1.0, 0.7) for p in s567g), alpha=0.1),
    ]
    return out


def evaluate(row: Row, catalogue: str, ks: Sequence[int], seeds: Sequence[int]) -> dict[str, list[float]]:
    from tagsmith.tagmodels import ModelKind, fit_linear_head

    crops = sorted({c for c, _ in row.parts})
    feats = {c: features(catalogue, c) for c in crops}
    index = {p: i for i, p in enumerate(feats[crops[0]]["paths"].tolist())}
    x_all = joined([feats[c][p] for c, p in row.parts])
    out: dict[str, list[float]] = {}
    for k in ks:
        accs = []
        for s in seeds:
            split = load_split(catalogue, k, s)
            xs = x_all[[index[p] for p, _ in split.support]]
            head = fit_linear_head(
                xs,
                [lab for _, lab in split.support],
                kind=ModelKind.EXCLUSIVE,
                alpha=row.alpha,
                calibrate=False,
            )
            xt = x_all[[index[p] for p, _ in split.test]]
            scores = xt @ head.coef.T + head.intercept
            predicted = np.asarray(head.tags)[scores.argmax(axis=1)]
            accs.append(float((predicted == np.array([lab for _, lab in split.test])).mean()))
        out[f"k{k}"] = accs
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help="comma-separated row names")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--quick", action="store_true", help="seeds 0-1 only")
    args = parser.parse_args(argv)
    chosen = rows()
    if args.list:
        print("\n".join(r.name for r in chosen))
        return 0
    if args.only:
        wanted = set(args.only.split(","))
        chosen = [r for r in chosen if r.name in wanted]
    seeds = SEEDS[:2] if args.quick else SEEDS
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for catalogue in CATALOGUES:
        if not (catalogue_dir(catalogue) / "splits").is_dir():
            print(f"SKIPPED {catalogue}: {catalogue_dir(catalogue)} is absent")
            return 0
    print("| row | " + " | ".join(f"{c} k={k}" for c in CATALOGUES for k in KS) + " |")
    for row in chosen:
        cells = []
        for catalogue in CATALOGUES:
            result = evaluate(row, catalogue, KS, seeds)
            results.setdefault(row.name, {})[catalogue] = result
            cells += [f"{100 * np.mean(v):.1f} ± {100 * np.std(v):.1f}" for v in result.values()]
        print(f"| {row.name} | " + " | ".join(cells) + " |", flush=True)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
