"""Image-side exploration for issue 3 (few-shot accuracy, coverage of confident tags).

Every row of "Variants tried in session 2" in docs/benchmarks.md comes from one command:

    python -m benchmarks.explore --only <variant>[,<variant>...]     # or --list, or --only all
    python -m benchmarks.explore --only cache                        # fill the feature caches only

Protocol: the grocery splits of ``make bench`` (``splits/dev_k{5,10,30}_seed{0..4}.csv``), mean and
std over the 5 seeds. Per variant and k:

* ``top1``: the head's best tag against the label;
* ``cov98`` / ``cov95``: the largest share of test photos that an *oracle* confidence threshold
  (chosen on the test set itself) can auto-apply while keeping 98% (95%) precision: how well the
  confidence ranks right answers above wrong ones, whatever the calibration;
* ``fit_s``: seconds to fit the head (under whatever load the machine had; see ``load``).

Costs are relative to the product default (``effnet-lite2-260-s7-v1``, one network pass per
photo): ``ingest_cost`` per uploaded photo, ``train_cost`` network passes per example photo.

Features come from one ONNX graph per input size, the default encoder's graph (Lite2 at 260 px with
taps) with one more output, ``prehead_map``: the (352, 9, 9) map that feeds the head's 1x1 conv
(the "deep" variants adapt that conv; the graph is built here, the product's graphs are
unchanged). Everything is embedded at most once and cached under
``var/bench-cache/explore/`` (npz, ``allow_pickle=False``):

* ``orig.npz``: every split photo, the product's centre crop (features and pre-head maps);
* ``aug-view<j>.npz``: view ``j`` (:mod:`tagsmith.encoder.augment`, seeded by the photo's bytes) of
  every support photo, with maps; ``aug-crop70-view<j>.npz``: the same views through the zoom;
* ``crop<pct>.npz``: the central <pct>% of every photo, through ``to_model_input(crop=)``.

``--ks`` / ``--seeds`` restrict a run (stored as ``<variant>@k<ks>-s<seeds>``, never over a full run).
The ``product-*`` rows run the product's own ``fit_linear_head`` and routing, so they follow
``tagmodels/training.py`` and ``calibration.py`` as they are when run.

Results go to ``var/explore-results.json`` (merged with earlier runs, one entry per variant).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.run import CACHE, GROCERY, KS, ROOT, SEEDS, Split, load_split, split_paths

EXPLORE_CACHE = CACHE / "explore"
RESULTS = ROOT / "var" / "explore-results.json"
THREADS = 2
AUG_VIEWS = 4
DEFAULT_ID = "effnet-lite2-260-s7-v1"
ALPHA = 0.3  # the product's ridge penalty (tagsmith.tagmodels.training.DEFAULT_RIDGE_ALPHA)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the graph with the pre-head map -------------------------------------------------------------
def prehead_graph_path() -> Path:
    """Lite2 at 260 px with taps plus ``prehead_map`` (the input of ``_conv_head``), built once."""
    import onnx
    from onnx import TensorProto, helper
    from tagsmith.encoder.lite0 import build_efficientnet_lite_model
    from tagsmith.encoder.torch_legacy import load_lite_state_dict

    path = EXPLORE_CACHE / "effnet-lite2-260-prehead.onnx"
    if path.is_file():
        return path
    EXPLORE_CACHE.mkdir(parents=True, exist_ok=True)
    model = build_efficientnet_lite_model(
        load_lite_state_dict("lite2"), input_size=260, name="efficientnet_lite2", taps=True
    )
    (head,) = [n for n in model.graph.node if n.name == "_conv_head"]
    channels = int(np.prod(next(i for i in model.graph.initializer if i.name == head.input[1]).dims[1:]))
    side = -(-260 // 32)  # five stride-2 stages, "SAME" padding
    model.graph.output.append(
        helper.make_tensor_value_info(head.input[0], TensorProto.FLOAT, ["N", channels, side, side])
    )
    onnx.checker.check_model(model)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(model.SerializeToString())
    os.replace(tmp, path)
    return path


def head_conv() -> tuple[np.ndarray, np.ndarray, str]:
    """The head conv's folded weights (1280, 352), bias (1280,) and the pre-head tensor's name."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(prehead_graph_path()))
    (head,) = [n for n in model.graph.node if n.name == "_conv_head"]
    inits = {i.name: i for i in model.graph.initializer}
    w = numpy_helper.to_array(inits[head.input[1]])
    b = numpy_helper.to_array(inits[head.input[2]])
    return w.reshape(w.shape[0], w.shape[1]).astype(np.float32), b.astype(np.float32), head.input[0]


class MapEncoder:
    """Runs the pre-head graph: product features (1632-d, as the default encoder) and the map."""

    def __init__(self) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        self.prehead_name = head_conv()[2]
        self.session = onnxruntime.InferenceSession(
            str(prehead_graph_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def run(self, images: Sequence[Any], crop: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        from tagsmith.encoder import to_model_input

        batch = to_model_input(images, size=260, crop=crop)
        emb, s7, pre = self.session.run(["embedding", "stage7", self.prehead_name], {"image": batch})
        return product_features(emb, s7), pre.astype(np.float16)


def product_features(embedding: np.ndarray, stage7: np.ndarray) -> np.ndarray:
    """What FeatureEncoder does for the default recipe: each part L2-normalised, joined, / sqrt(2)."""
    parts = [p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12) for p in (embedding, stage7)]
    return (np.concatenate(parts, axis=1) / np.sqrt(2.0)).astype(np.float32)


# --- caches ---------------------------------------------------------------------------------------------
def _embed_all(
    name: str,
    items: list[tuple[str, int]],
    view: Callable[[Any, str, int], Any],
    maps: bool,
    crop: float = 1.0,
) -> dict[str, np.ndarray]:
    """Embed (path, view index) items through ``view(image, path, index)``; cache as ``name``.npz."""
    from tagsmith.encoder import decode_image

    file = EXPLORE_CACHE / f"{name}.npz"
    if file.is_file():
        with np.load(file, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    EXPLORE_CACHE.mkdir(parents=True, exist_ok=True)
    encoder = MapEncoder()
    feats, pres = [], []
    started = time.perf_counter()
    batch = 32
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        images = [view(decode_image((GROCERY / p).read_bytes()).image, p, j) for p, j in chunk]
        f, m = encoder.run(images, crop)
        feats.append(f)
        if maps:
            pres.append(m)
        if (i // batch) % 20 == 0:
            log(f"  {name}: {i + len(chunk)}/{len(items)} ({time.perf_counter() - started:.0f} s)")
    seconds = time.perf_counter() - started
    out: dict[str, np.ndarray] = {
        "paths": np.array([p for p, _ in items]),
        "views": np.array([j for _, j in items], dtype=np.int64),
        "features": np.concatenate(feats),
        "seconds_per_image": np.asarray(seconds / len(items)),
        "load_average": np.array(os.getloadavg()),
    }
    if maps:
        out["prehead"] = np.concatenate(pres)
    tmp = EXPLORE_CACHE / f"{name}.tmp.npz"
    np.savez(tmp, **out)  # type: ignore[arg-type]  # numpy's stub takes the first keyword for allow_pickle
    os.replace(tmp, file)
    log(f"  {name}: {len(items)} images in {seconds:.0f} s, load {os.getloadavg()[0]:.1f}")
    return out


def _support_paths() -> list[str]:
    return sorted({p for k in KS for s in SEEDS for p, _ in load_split(k, s).support})


def orig_cache() -> dict[str, np.ndarray]:
    return _embed_all("orig", [(p, 0) for p in split_paths(KS, SEEDS)], lambda im, p, j: im, maps=True)


def aug_cache(views: int = AUG_VIEWS, crop: float = 1.0) -> dict[str, np.ndarray]:
    """Views ``0..views-1`` of every support photo, one cache file per view index (so that a
    short run can stop after a few views and still be useful); ``crop`` < 1: each view through
    the zoomed recipe's preprocessing (what a tenant on that encoder would train on), no maps."""
    from tagsmith.encoder.augment import augmented_views, seed_for_bytes

    last: dict[str, list[Any]] = {}  # the views of the photo being embedded

    def view(image: Any, path: str, index: int) -> Any:
        key = f"{path}#{index}"
        if key not in last:
            last.clear()
            seed = seed_for_bytes((GROCERY / path).read_bytes())
            # View i depends only on (photo, seed, i): draw i + 1 and keep the last.
            last[key] = augmented_views(image, count=index + 1, seed=seed)
        return last[key][index]

    prefix = "aug" if crop == 1.0 else f"aug-crop{round(crop * 100)}"
    maps = crop == 1.0
    parts = [
        _embed_all(f"{prefix}-view{j}", [(p, j) for p in _support_paths()], view, maps=maps, crop=crop)
        for j in range(views)
    ]
    keys = ("paths", "views", "features", "prehead") if maps else ("paths", "views", "features")
    return {k: np.concatenate([part[k] for part in parts]) for k in keys}


@functools.lru_cache(maxsize=4)
def centre_cache(share: float = 0.7) -> dict[str, np.ndarray]:
    """Every photo through the product's own zoom (``to_model_input(crop=share)``, the
    ``effnet-lite2-260-s7-c70-v1`` recipe's preprocessing at 0.7)."""
    items = [(p, 0) for p in split_paths(KS, SEEDS)]
    return _embed_all(f"crop{round(share * 100)}", items, lambda im, p, j: im, maps=False, crop=share)


# --- heads and metrics -------------------------------------------------------------------------------
def l2n(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def ridge(
    x: np.ndarray, y: np.ndarray, n_classes: int, alpha: float, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted ridge onto one-hot targets with an unpenalised intercept (as the product's)."""
    x64 = x.astype(np.float64)
    w = np.ones(len(y)) if weights is None else weights.astype(np.float64)
    t = np.zeros((len(y), n_classes))
    t[np.arange(len(y)), y] = 1.0
    mx = (w[:, None] * x64).sum(0) / w.sum()
    my = (w[:, None] * t).sum(0) / w.sum()
    sw = np.sqrt(w)[:, None]
    xc, yc = (x64 - mx) * sw, (t - my) * sw
    n, d = xc.shape
    if n <= d:
        gram = xc @ xc.T
        gram[np.diag_indices_from(gram)] += alpha
        coef = np.linalg.solve(gram, yc).T @ xc
    else:
        cov = xc.T @ xc
        cov[np.diag_indices_from(cov)] += alpha
        coef = np.linalg.solve(cov, xc.T @ yc).T
    return coef, my - coef @ mx


def fit_temperature(scores: np.ndarray, y: np.ndarray, smoothing: float = 0.02) -> float:
    """The scale whose softmax best fits labels smoothed by ``smoothing`` (grid search), as the
    product's head did when these figures were taken (``tagmodels/training.py``)."""
    n, t = scores.shape
    target = np.full((n, t), smoothing / max(t - 1, 1))
    target[np.arange(n), y] = 1.0 - smoothing
    best, best_loss = 1.0, np.inf
    for s in np.geomspace(1.0, 300.0, 60):
        z = s * scores
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = float(-(target * log_p).sum(axis=1).mean())
        if loss < best_loss:
            best, best_loss = float(s), loss
    return best


def grouped_folds(y: np.ndarray, groups: np.ndarray, folds: int = 5) -> list[np.ndarray]:
    """Fold of each row: rows of one group (a photo and its augmented views) share a fold,
    stratified by label over the groups."""
    rng = np.random.default_rng(0)
    fold_of_group: dict[int, int] = {}
    for label in np.unique(y):
        g = np.unique(groups[y == label])
        for i, gid in enumerate(rng.permutation(g)):
            fold_of_group[int(gid)] = i % folds
    fold = np.array([fold_of_group[int(g)] for g in groups])
    return [fold == f for f in range(folds)]


@dataclass
class Train:
    """A support set: features, labels (int), source photo of each row, whether it is an original."""

    x: np.ndarray
    y: np.ndarray
    group: np.ndarray
    original: np.ndarray
    n_classes: int


def ridge_probs(
    train: Train, xt: np.ndarray, *, alpha: float = ALPHA, aug_weight: float = 1.0
) -> tuple[np.ndarray, float]:
    """Test probabilities of a ridge head with a temperature fitted on grouped out-of-fold scores."""
    weights = np.where(train.original, 1.0, aug_weight)
    coef, b = ridge(train.x, train.y, train.n_classes, alpha, weights)
    oof = np.zeros((len(train.y), train.n_classes))
    for held in grouped_folds(train.y, train.group):
        c, bb = ridge(train.x[~held], train.y[~held], train.n_classes, alpha, weights[~held])
        oof[held] = train.x[held] @ c.T + bb
    o = train.original
    scale = fit_temperature(oof[o], train.y[o])
    return softmax(scale * (xt @ coef.T + b)), scale


def oracle_coverage(confidence: np.ndarray, correct: np.ndarray, target: float) -> float:
    """Largest share of rows that a confidence threshold can keep at ``target`` precision or more."""
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    precision = hits / np.arange(1, len(order) + 1)
    # A threshold cannot split rows of equal confidence: only the last of a run of ties counts.
    c = confidence[order]
    boundary = np.append(c[1:] != c[:-1], True)
    ok = np.nonzero((precision >= target) & boundary)[0]
    return float((ok[-1] + 1) / len(order)) if ok.size else 0.0


def metrics(probs: np.ndarray, yt: np.ndarray, confidence: np.ndarray | None = None) -> dict[str, float]:
    top = probs.argmax(axis=1)
    right = top == yt
    conf = probs.max(axis=1) if confidence is None else confidence
    return {
        "top1": float(right.mean()),
        "cov98": oracle_coverage(conf, right, 0.98),
        "cov95": oracle_coverage(conf, right, 0.95),
    }


def margin(probs: np.ndarray) -> np.ndarray:
    two = np.sort(probs, axis=1)[:, -2:]
    return two[:, 1] - two[:, 0]


# --- the data of one split ------------------------------------------------------------------------------
class Data:
    """Cached features, looked up by photo path (and augmented views by source path)."""

    def __init__(self, *, aug: int = 0, maps: bool = False, crop: float = 1.0) -> None:
        orig = orig_cache()
        self.paths = {p: i for i, p in enumerate(orig["paths"].tolist())}
        self.x = orig["features"] if crop == 1.0 else centre_cache(crop)["features"]
        self.maps = orig["prehead"] if maps else None
        self.aug_x: np.ndarray | None = None
        self.aug_maps: np.ndarray | None = None
        if aug:
            a = aug_cache(aug, crop)
            keep = a["views"] < aug
            self.aug_rows: dict[str, list[int]] = {}
            for row, p in enumerate(a["paths"].tolist()):
                if keep[row]:
                    self.aug_rows.setdefault(p, []).append(row)
            self.aug_x = a["features"]
            self.aug_maps = a["prehead"] if maps else None

    def split(
        self, split: Split, *, with_aug: bool = True
    ) -> tuple[Train, np.ndarray, np.ndarray, dict[str, Any]]:
        tags = sorted({label for _, label in split.support})
        index = {t: i for i, t in enumerate(tags)}
        rows = [self.paths[p] for p, _ in split.support]
        y = np.array([index[label] for _, label in split.support])
        x, group, original = [self.x[rows]], [np.arange(len(rows))], [np.ones(len(rows), bool)]
        extra: dict[str, Any] = {"rows": rows, "test_rows": [self.paths[p] for p, _ in split.test]}
        ys = [y]
        if with_aug and self.aug_x is not None:
            arows, agroup, ay = [], [], []
            for g, (p, label) in enumerate(split.support):
                for r in self.aug_rows[p]:
                    arows.append(r)
                    agroup.append(g)
                    ay.append(index[label])
            x.append(self.aug_x[arows])
            group.append(np.array(agroup))
            original.append(np.zeros(len(arows), bool))
            ys.append(np.array(ay))
            extra["aug_rows"] = arows
        train = Train(
            np.concatenate(x), np.concatenate(ys), np.concatenate(group), np.concatenate(original), len(tags)
        )
        xt = self.x[extra["test_rows"]]
        yt = np.array([index.get(label, -1) for _, label in split.test])
        return train, xt, yt, extra


# --- variants ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    name: str
    note: str
    run: Callable[[Split], dict[str, float]]
    ingest_cost: float = 1.0
    train_cost: float = 1.0  # network passes per example photo


_DATA: dict[tuple[int, bool, float], Data] = {}


def data(aug: int = 0, maps: bool = False, crop: float = 1.0) -> Data:
    key = (aug, maps, crop)
    if key not in _DATA:
        _DATA[key] = Data(aug=aug, maps=maps, crop=crop)
    return _DATA[key]


def timed(fn: Callable[[], tuple[np.ndarray, np.ndarray | None]], yt: np.ndarray) -> dict[str, float]:
    started = time.perf_counter()
    probs, conf = fn()
    out = metrics(probs, yt, conf)
    out["fit_s"] = time.perf_counter() - started
    return out


def v_ridge(
    *,
    aug: int = 0,
    aug_weight: float = 1.0,
    alpha: float = ALPHA,
    use_margin: bool = False,
    crop: float = 1.0,
) -> Callable[[Split], dict[str, float]]:
    def run(split: Split) -> dict[str, float]:
        train, xt, yt, _ = data(aug, crop=crop).split(split)

        def fit() -> tuple[np.ndarray, np.ndarray | None]:
            p, _ = ridge_probs(train, xt, alpha=alpha, aug_weight=aug_weight)
            return p, (margin(p) if use_margin else None)

        return timed(fit, yt)

    return run


def v_centre(mode: str, share: float = 0.7) -> Callable[[Split], dict[str, float]]:
    """Multi-crop: the product view and the central 70%, averaged or concatenated, or the central
    70% alone (the same view on both sides: support and test)."""

    def run(split: Split) -> dict[str, float]:
        d = data()
        train, _, yt, extra = d.split(split)
        centre_x = centre_cache(share)["features"]

        def join(rows: list[int]) -> np.ndarray:
            a, b = d.x[rows], centre_x[rows]
            if mode == "only":
                return b
            if mode == "avg":
                return l2n(a + b)
            if mode == "cat":
                return np.concatenate([a, b], axis=1) / np.sqrt(2.0)
            raise ValueError(mode)

        train.x = join(extra["rows"])
        return timed(lambda: (ridge_probs(train, join(extra["test_rows"]))[0], None), yt)

    return run


def transform_features(kind: str, xs: np.ndarray, xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if kind == "standardise":
        mu, sd = xs.mean(0), xs.std(0) + 1e-3 * xs.std(0).mean()
        return l2n((xs - mu) / sd), l2n((xt - mu) / sd)
    if kind == "centre":
        mu = xs.mean(0)
        return l2n(xs - mu), l2n(xt - mu)
    if kind == "power":
        f = lambda a: l2n(np.sign(a) * np.sqrt(np.abs(a)))  # noqa: E731
        return f(xs), f(xt)
    if kind == "pca-whiten":
        mu = xs.mean(0)
        _, s, vt = np.linalg.svd(xs - mu, full_matrices=False)
        keep = s > 1e-6 * s[0]
        proj = vt[keep].T / (s[keep] + s[keep].mean() * 0.1)  # regularised whitening
        return l2n((xs - mu) @ proj), l2n((xt - mu) @ proj)
    raise ValueError(kind)


def v_transform(kind: str, *, aug: int = 0) -> Callable[[Split], dict[str, float]]:
    def run(split: Split) -> dict[str, float]:
        train, xt, yt, _ = data(aug).split(split)
        train.x, xt = transform_features(kind, train.x, xt)
        return timed(lambda: (ridge_probs(train, xt)[0], None), yt)

    return run


def prototype_probs(train: Train, xt: np.ndarray, scale: float = 30.0) -> np.ndarray:
    """Nearest class mean by cosine, as probabilities (softmax of scaled cosines)."""
    means = np.zeros((train.n_classes, train.x.shape[1]))
    np.add.at(means, train.y, train.x)
    return softmax(scale * (xt @ l2n(means).T))


def v_experts(mode: str, *, aug: int = 0, proto_scale: float = 30.0) -> Callable[[Split], dict[str, float]]:
    """Ridge and nearest-class-mean: alone, or multiplied (product of experts), or gated by agreement."""

    def run(split: Split) -> dict[str, float]:
        train, xt, yt, _ = data(aug).split(split)

        def fit() -> tuple[np.ndarray, np.ndarray | None]:
            proto = prototype_probs(train, xt, proto_scale)
            if mode == "proto":
                return proto, None
            ridge_p, _ = ridge_probs(train, xt)
            if mode == "product":
                p = ridge_p * proto
                return p / p.sum(axis=1, keepdims=True), None
            if mode == "agree":
                agree = ridge_p.argmax(1) == proto.argmax(1)
                return ridge_p, np.where(agree, ridge_p.max(1), ridge_p.max(1) - 1.0)
            if mode == "min":
                top = ridge_p.argmax(1)
                return ridge_p, np.minimum(ridge_p.max(1), proto[np.arange(len(top)), top])
            raise ValueError(mode)

        return timed(fit, yt)

    return run


def v_knn_margin(*, aug: int = 0) -> Callable[[Split], dict[str, float]]:
    """Ridge top-1; confidence is ridge's probability times the cosine margin of the nearest support
    photo of the predicted tag over the nearest of any other tag (a near-twin of another tag hurts)."""

    def run(split: Split) -> dict[str, float]:
        train, xt, yt, _ = data(aug).split(split)

        def fit() -> tuple[np.ndarray, np.ndarray | None]:
            p, _ = ridge_probs(train, xt)
            top = p.argmax(1)
            sims = xt @ train.x.T
            same = train.y[None, :] == top[:, None]
            best_same = np.where(same, sims, -2).max(1)
            best_other = np.where(~same, sims, -2).max(1)
            return p, p.max(1) * np.clip(0.5 + 5 * (best_same - best_other), 0, 1)

        return timed(fit, yt)

    return run


# --- deep mode: adapt the head conv with NumPy ---------------------------------------------------------------
@dataclass(frozen=True)
class DeepSettings:
    rank: int = 32
    epochs: int = 20
    lr: float = 3e-3
    batch: int = 64
    crop: int = 7  # random crops of the 9x9 map during training
    weight_decay: float = 1e-4
    smoothing: float = 0.1
    image_aug: int = 0  # also train on this many augmented views' maps


class DeepHead:
    """Head conv ``W0`` (frozen) + low-rank update ``U @ V``, per-channel scale/shift, ReLU6, mean
    pool, joined with the (frozen) stage-7 pool, L2-normalised, then a linear classifier. Trained
    with softmax cross-entropy (label smoothing) and Adam, from the ridge solution as a start."""

    def __init__(
        self, w0: np.ndarray, b0: np.ndarray, settings: DeepSettings, n_classes: int, seed: int
    ) -> None:
        rng = np.random.default_rng(seed)
        self.s = settings
        self.w0, self.b0 = w0, b0
        c_out, c_in = w0.shape
        r = settings.rank
        self.params: dict[str, np.ndarray] = {
            "u": np.zeros((c_out, r), np.float32),
            "v": (rng.standard_normal((r, c_in)) / np.sqrt(c_in)).astype(np.float32),
            "gamma": np.ones(c_out, np.float32),
            "beta": np.zeros(c_out, np.float32),
            "wc": np.zeros((n_classes, c_out + c_in), np.float32),
            "bc": np.zeros(n_classes, np.float32),
        }
        self.scale = 1.0
        self.rng = rng

    def features(
        self, maps: np.ndarray, z0: np.ndarray | None = None, *, grad: bool = False
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """maps: (N, P, C_in) float32 -> (N, 1280 + 352) unit rows (and what backward needs).

        ``z0`` is the frozen conv's output ``maps @ W0.T + b0`` when the caller has it already (a
        1x1 conv commutes with crops and flips, so it is computed once per photo, not per step).
        """
        p = self.params
        n, n_pos, c_in = maps.shape
        m2 = maps.reshape(-1, c_in)
        z = (m2 @ self.w0.T + self.b0) if z0 is None else z0.reshape(-1, self.w0.shape[0]).copy()
        low = m2 @ p["v"].T  # (N*P, r)
        if p["u"].shape[1]:
            z += low @ p["u"].T
        a = z * p["gamma"]
        a += p["beta"]
        h = np.clip(a, 0.0, 6.0)
        e = h.reshape(n, n_pos, -1).mean(axis=1)
        m = maps.mean(axis=1)
        ne = np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        nm = np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        f = np.concatenate([e / ne, m / nm], axis=1) / np.float32(np.sqrt(2.0))
        cache = {"m2": m2, "low": low, "z": z, "a": a, "e": e, "ne": ne, "n_pos": n_pos} if grad else {}
        return f.astype(np.float32), cache

    def backward(self, df: np.ndarray, cache: dict[str, Any]) -> dict[str, np.ndarray]:
        p = self.params
        de_n = df[:, : self.w0.shape[0]] / np.float32(np.sqrt(2.0))
        u = cache["e"] / cache["ne"]
        de = ((de_n - u * (de_n * u).sum(1, keepdims=True)) / cache["ne"]).astype(np.float32)
        n_pos, a = cache["n_pos"], cache["a"]
        # d(loss)/d(a): the pooled gradient spread over the positions, where ReLU6 is not flat
        da = ((a > 0) & (a < 6)).astype(np.float32).reshape(len(de), n_pos, -1)
        da *= de[:, None, :] / np.float32(n_pos)
        da = da.reshape(-1, da.shape[-1])
        grads = {"gamma": (da * cache["z"]).sum(0), "beta": da.sum(0)}
        if p["u"].shape[1]:
            dz = da * p["gamma"]
            grads["u"] = dz.T @ cache["low"]
            grads["v"] = (dz @ p["u"]).T @ cache["m2"]
        else:
            grads["u"], grads["v"] = np.zeros_like(p["u"]), np.zeros_like(p["v"])
        return grads

    def fit(self, maps: np.ndarray, y: np.ndarray, init_features: np.ndarray, alpha: float = ALPHA) -> None:
        s = self.s
        n_classes = self.params["bc"].shape[0]
        coef, b = ridge(init_features, y, n_classes, alpha)
        # In-sample ridge scores separate the examples perfectly, so a fitted temperature would
        # be huge and the loss flat; a moderate fixed scale leaves gradients to learn from.
        self.scale = 10.0
        self.params["wc"] = (coef * self.scale).astype(np.float32)
        self.params["bc"] = (b * self.scale).astype(np.float32)
        moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in self.params.items()}
        side = math.isqrt(maps.shape[1])
        grid = maps.reshape(len(maps), side, side, -1)
        z0 = np.empty((*maps.shape[:2], self.w0.shape[0]), np.float32)
        for i in range(0, len(maps), 64):
            z0[i : i + 64] = maps[i : i + 64] @ self.w0.T + self.b0
        z0grid = z0.reshape(len(maps), side, side, -1)
        target_off = s.smoothing / max(n_classes - 1, 1)
        step = 0
        for _epoch in range(s.epochs):
            order = self.rng.permutation(len(y))
            for start in range(0, len(y), s.batch):
                idx = order[start : start + s.batch]
                oy, ox = self.rng.integers(0, side - s.crop + 1, 2)
                crop = grid[idx, oy : oy + s.crop, ox : ox + s.crop]
                zcrop = z0grid[idx, oy : oy + s.crop, ox : ox + s.crop]
                if self.rng.uniform() < 0.5:
                    crop, zcrop = crop[:, :, ::-1], zcrop[:, :, ::-1]
                batch_maps = np.ascontiguousarray(crop.reshape(len(idx), -1, grid.shape[-1]))
                batch_z0 = np.ascontiguousarray(zcrop.reshape(len(idx), -1, z0grid.shape[-1]))
                f, cache = self.features(batch_maps, batch_z0, grad=True)
                logits = f @ self.params["wc"].T + self.params["bc"]
                prob = softmax(logits)
                t = np.full_like(prob, target_off)
                t[np.arange(len(idx)), y[idx]] = 1.0 - s.smoothing
                dlogits = (prob - t) / len(idx)
                grads = self.backward(dlogits @ self.params["wc"], cache)
                grads["wc"] = dlogits.T @ f
                grads["bc"] = dlogits.sum(0)
                step += 1
                for k, g in grads.items():
                    m1, m2 = moments[k]
                    g = g + s.weight_decay * self.params[k] * (k in ("u", "v", "wc"))
                    m1 *= 0.9
                    m1 += 0.1 * g
                    m2 *= 0.999
                    m2 += 0.001 * g * g
                    upd = (m1 / (1 - 0.9**step)) / (np.sqrt(m2 / (1 - 0.999**step)) + 1e-8)
                    self.params[k] -= (s.lr * upd).astype(np.float32)

    def predict(self, maps: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(maps), 64):
            f, _ = self.features(maps[i : i + 64])
            out.append(softmax(f @ self.params["wc"].T + self.params["bc"]))
        return np.concatenate(out)


def _flat_maps(maps: np.ndarray) -> np.ndarray:
    n, c, h, w = maps.shape
    return np.ascontiguousarray(maps.astype(np.float32).reshape(n, c, h * w).transpose(0, 2, 1))


def v_deep(settings: DeepSettings) -> Callable[[Split], dict[str, float]]:
    def run(split: Split) -> dict[str, float]:
        d = data(aug=settings.image_aug, maps=True)
        train, _, yt, extra = d.split(split, with_aug=settings.image_aug > 0)
        assert d.maps is not None
        w0, b0, _ = head_conv()
        maps = [d.maps[extra["rows"]]]
        if settings.image_aug:
            assert d.aug_maps is not None
            maps.append(d.aug_maps[extra["aug_rows"]])
        support = _flat_maps(np.concatenate(maps))
        test = _flat_maps(d.maps[extra["test_rows"]])
        started = time.perf_counter()
        head = DeepHead(w0, b0, settings, train.n_classes, seed=split.seed)
        head.fit(support, train.y, train.x)
        fit_s = time.perf_counter() - started
        log(f"    deep k={split.k} seed={split.seed}: fit {fit_s:.0f} s (load {os.getloadavg()[0]:.1f})")
        out = metrics(head.predict(test), yt)
        out["fit_s"] = fit_s
        return out

    return run


def v_product(source: str, share: float = 0.7) -> Callable[[Split], dict[str, float]]:
    """The product's own head and routing (``fit_linear_head`` with calibrated thresholds,
    ``route_prediction``) on ``source`` features: what ``make bench`` reports, plus the never-seen
    figure (a model on half of the tags; k=10 in make bench, every k here)."""
    from benchmarks.run import evaluate_split, evaluate_unknown

    def run(split: Split) -> dict[str, float]:
        d = data()
        x = d.x if source == "orig" else centre_cache(share)["features"]
        out = evaluate_split(x, d.paths, split, DEFAULT_ID)
        out.update(evaluate_unknown(x, d.paths, split, DEFAULT_ID))
        return {
            "top1": out["accuracy"],
            "precision": out["precision"],
            "coverage": out["coverage"],
            "unknown_not_applied": out["unknown_not_applied"],
            "fit_s": out["train_seconds"],
        }

    return run


def v_check_recipe(recipe_id: str, share: float) -> Callable[[Split], dict[str, float]]:
    """The explore cache's zoomed features against the product recipe's encoder (32 photos)."""

    def run(split: Split) -> dict[str, float]:
        from tagsmith.encoder import decode_image, feature_encoder

        encoder = feature_encoder(CACHE / "onnx", recipe_id, threads=THREADS)
        paths = [p for p, _ in split.support[:32]]
        product = encoder.embed([decode_image((GROCERY / p).read_bytes()).image for p in paths])
        cached = centre_cache(share)["features"][[data().paths[p] for p in paths]]
        return {"max_abs_diff": float(np.abs(product - cached).max())}

    return run


def v_check_default() -> Callable[[Split], dict[str, float]]:
    """The explore cache's features against ``make bench``'s cache of the default encoder."""

    def run(split: Split) -> dict[str, float]:
        d = data()
        with np.load(CACHE / f"{DEFAULT_ID}.npz", allow_pickle=False) as npz:
            bench = dict(zip(npz["paths"].tolist(), npz["embeddings"], strict=True))
        rows = [p for p, _ in split.support + split.test]
        diff = max(float(np.abs(bench[p] - d.x[d.paths[p]]).max()) for p in rows)
        return {"max_abs_diff": diff}

    return run


def variants() -> dict[str, Variant]:
    a = AUG_VIEWS
    vs = [
        Variant("check-default", "explore features == make bench's default-encoder cache", v_check_default()),
        Variant(
            "check-c70",
            "explore's zoomed features == the effnet-lite2-260-s7-c70-v1 recipe's encoder",
            v_check_recipe("effnet-lite2-260-s7-c70-v1", 0.7),
        ),
        Variant("default", "product default: ridge a=0.3 on the 1632-d features", v_ridge()),
        Variant("product-default", "product head + calibrated routing, product view", v_product("orig")),
        Variant("product-centre70", "product head + calibrated routing, central 70%", v_product("centre")),
        Variant(
            "default-margin", "default, confidence = top-1 minus top-2 probability", v_ridge(use_margin=True)
        ),
        Variant("aug2", "support + 2 augmented views per photo", v_ridge(aug=2), train_cost=3.0),
        Variant(f"aug{a}", f"support + {a} augmented views per photo", v_ridge(aug=a), train_cost=1.0 + a),
        Variant(f"aug{a}-w0.5", f"{a} views, weight 0.5", v_ridge(aug=a, aug_weight=0.5), train_cost=1.0 + a),
        Variant(f"aug{a}-a1", f"{a} views, ridge a=1", v_ridge(aug=a, alpha=1.0), train_cost=1.0 + a),
        Variant(f"aug{a}-a0.1", f"{a} views, ridge a=0.1", v_ridge(aug=a, alpha=0.1), train_cost=1.0 + a),
        Variant(
            f"aug{a}-margin",
            f"{a} views, margin confidence",
            v_ridge(aug=a, use_margin=True),
            train_cost=1.0 + a,
        ),
        Variant(
            "centre70-avg",
            "product view + central 70% averaged (support and test)",
            v_centre("avg"),
            ingest_cost=2.0,
            train_cost=2.0,
        ),
        Variant(
            "c70-aug2",
            "zoomed recipe (central 70%) + 2 augmented views per photo, each zoomed too",
            v_ridge(aug=2, crop=0.7),
            train_cost=3.0,
        ),
        Variant(
            "c70-aug4",
            "zoomed recipe + 4 augmented views per photo",
            v_ridge(aug=4, crop=0.7),
            train_cost=5.0,
        ),
        Variant("centre60-only", "the central 60% instead of the product view", v_centre("only", 0.6)),
        Variant("centre80-only", "the central 80% instead of the product view", v_centre("only", 0.8)),
        Variant("centre85-only", "the central 85% instead of the product view", v_centre("only", 0.85)),
        Variant(
            "product-centre85", "product head + calibrated routing, central 85%", v_product("centre", 0.85)
        ),
        Variant(
            "centre70-only",
            "the central 70% instead of the product view (support and test)",
            v_centre("only"),
        ),
        Variant(
            "centre70-cat",
            "product view + central 70% concatenated",
            v_centre("cat"),
            ingest_cost=2.0,
            train_cost=2.0,
        ),
        Variant("standardise", "features z-scored on the support set", v_transform("standardise")),
        Variant("centre-support", "support mean subtracted", v_transform("centre")),
        Variant("power", "signed square root of the features", v_transform("power")),
        Variant(
            "pca-whiten", "PCA whitening fitted on the support set (regularised)", v_transform("pca-whiten")
        ),
        Variant("proto", "nearest class mean (cosine)", v_experts("proto")),
        Variant(
            "ridge-x-proto",
            "product of experts: ridge probabilities x prototype softmax",
            v_experts("product"),
        ),
        Variant("ridge-agree-proto", "ridge, confident only when the prototype agrees", v_experts("agree")),
        Variant(
            "ridge-min-proto",
            "ridge, confidence = min(ridge, prototype prob. of the same tag)",
            v_experts("min"),
        ),
        Variant("knn-margin", "ridge, confidence x nearest-support margin", v_knn_margin()),
        Variant(
            f"aug{a}-x-proto",
            f"{a} views + product of experts",
            v_experts("product", aug=a),
            train_cost=1.0 + a,
        ),
        Variant(
            f"aug{a}-standardise",
            f"{a} views + z-scored features",
            v_transform("standardise", aug=a),
            train_cost=1.0 + a,
        ),
        Variant(
            "deep-r32",
            "deep: rank-32 head-conv update + BN scale/shift + classifier, map crops/flips",
            v_deep(DeepSettings()),
        ),
        Variant("deep-r0", "deep: BN scale/shift + classifier only", v_deep(DeepSettings(rank=0))),
        Variant(
            "deep-r32-aug2",
            "deep rank 32 on the photos and 2 augmented views (not run: ~3x deep-r32's time)",
            v_deep(DeepSettings(image_aug=2)),
            train_cost=3.0,
        ),
    ]
    return {v.name: v for v in vs}


# --- driver -------------------------------------------------------------------------------------------
def _mean_std(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    ok = arr[~np.isnan(arr)]  # a precision is NaN when nothing was applied
    return {
        "mean": float(ok.mean()) if ok.size else float("nan"),
        "std": float(ok.std()) if ok.size else float("nan"),
        "n": int(ok.size),
        "values": arr.tolist(),
    }


def evaluate(variant: Variant, ks: Sequence[int], seeds: Sequence[int]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "note": variant.note,
        "ingest_cost": variant.ingest_cost,
        "train_cost": variant.train_cost,
        "seeds": list(seeds),
        "load_average_at_start": list(os.getloadavg()),
        "per_k": {},
    }
    for k in ks:
        runs = [variant.run(load_split(k, s)) for s in seeds]
        out["per_k"][str(k)] = {key: _mean_std([r[key] for r in runs]) for key in runs[0]}
        row = out["per_k"][str(k)]
        log(f"  {variant.name} k={k}: " + ", ".join(_fmt(key, st) for key, st in row.items()))
    return out


def _fmt(key: str, st: dict[str, float]) -> str:
    if key in ("top1", "cov98", "cov95", "precision", "coverage", "unknown_not_applied"):
        return f"{key} {100 * st['mean']:.1f} ± {100 * st['std']:.1f}"
    return f"{key} {st['mean']:.3g}"


def markdown_rows(results: dict[str, Any]) -> list[str]:
    """One docs row per variant: top-1 and oracle coverage at 98% / 95% per k, costs."""

    def cell(row: dict[str, Any], key: str) -> str:
        st = row.get(key)
        if not st or not st.get("n"):
            return "n/a"
        return f"{100 * st['mean']:.1f} ± {100 * st['std']:.1f}"

    lines = []
    for name, r in results.items():
        per_k = r["per_k"]
        if not any("top1" in row for row in per_k.values()):
            continue
        top = " | ".join(cell(per_k.get(str(k), {}), "top1") for k in KS)
        cov = " | ".join(
            f"{cell(per_k.get(str(k), {}), 'cov98')} / {cell(per_k.get(str(k), {}), 'cov95')}"
            if "cov98" in per_k.get(str(k), {})
            else f"{cell(per_k.get(str(k), {}), 'precision')} / {cell(per_k.get(str(k), {}), 'coverage')} (calibrated)"
            for k in KS
        )
        fit = max(row["fit_s"]["mean"] for row in per_k.values() if "fit_s" in row)
        seeds = len(r["seeds"])
        lines.append(
            f"| `{name}`: {r['note']} | {top} | {cov} | {r['ingest_cost']:g} / {r['train_cost']:g} "
            f"| {fit:.2g} s | {seeds} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.explore", description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated variant names, 'all', or 'cache'")
    parser.add_argument("--list", action="store_true", help="list the variants and exit")
    parser.add_argument("--table", action="store_true", help="print docs rows from the results file")
    parser.add_argument("--ks", default=",".join(map(str, KS)))
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    args = parser.parse_args(argv)
    table = variants()
    if args.table:
        print("\n".join(markdown_rows(json.loads(RESULTS.read_text()))))
        return 0
    if args.list or not args.only:
        for v in table.values():
            print(f"{v.name:24} {v.note}")
        return 0
    if not (GROCERY / "splits").is_dir():
        log(f"SKIPPED: the grocery dataset is not at {GROCERY} (set TAGSMITH_GROCERY_DIR)")
        return 0
    if args.only == "cache":
        orig_cache()
        aug_cache(AUG_VIEWS)
        centre_cache(0.7)
        aug_cache(2, 0.7)
        centre_cache(0.85)
        aug_cache(AUG_VIEWS, 0.7)
        return 0
    names = list(table) if args.only == "all" else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in table]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; see --list")
    ks = [int(k) for k in args.ks.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    for name in names:
        log(f"variant {name} (load {os.getloadavg()[0]:.1f})")
        result = evaluate(table[name], ks, seeds)
        # Re-read just before writing: another run may have added its variants meanwhile.
        results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
        # A partial run never replaces a full one: it is stored under its own key.
        partial = (tuple(ks), tuple(seeds)) != (tuple(KS), tuple(SEEDS))
        key = f"{name}@k{'+'.join(map(str, ks))}-s{'+'.join(map(str, seeds))}" if partial else name
        results[key] = result
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        tmp = RESULTS.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=2) + "\n")
        os.replace(tmp, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
