"""Which layers, poolings, input sizes and heads to build tag models on (issue 3, session 3).

Every row of "Variants tried in session 3" in docs/benchmarks.md comes from one command:

    python -m benchmarks.stages                       # every row (fills its caches first)
    python -m benchmarks.stages --only s567,s567-a0.05 # some rows; --list names them

Protocol: the grocery splits of ``make bench`` (``splits/dev_k{5,10,30}_seed{0..4}.csv``), mean and
std of top-1 over the 5 seeds; a plain ridge head (one-hot targets, unpenalised intercept, the
product's penalty 0.3 unless the row says otherwise), no augmented views and no calibration: the
rows compare *features*. The product's own figures for the chosen recipe (views, calibration,
routing) are ``benchmarks.run``'s.

Features: one pass of an EfficientNet-Lite graph over every split photo's central 70%
(``to_model_input(crop=0.7)``, as the zoomed recipes), keeping the 1280-d embedding and, for the
head's map and the last block of stages 4 to 7, the global average (``gap``), maximum (``max``),
generalised mean with p = 3 (``gem3``) and the averages of the four overlapping quadrants
(``grid2``). Cached per graph under ``var/bench-cache/explore/pool-<variant>-<size>-c70.npz``
(about 1 min per graph at 260 px on 2 cores, 2 min at 330); the second-order pools of stages 4-6
(``gram:`` parts, :func:`second_order_features`) under ``gram-<variant>-<size>-c70.npz``. A row
joins parts as the product's
:class:`tagsmith.encoder.FeatureEncoder` does: each part L2-normalised, the row divided by
sqrt(number of parts).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.run import CACHE, GROCERY, KS, ROOT, SEEDS, load_split, split_paths

POOL_CACHE = CACHE / "explore"
RESULTS = ROOT / "var" / "stages-results.json"
CROP = 0.7
ALPHA = 0.3
STAGES = (4, 5, 6, 7)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- features ------------------------------------------------------------------------------------
def _pools(maps: np.ndarray) -> dict[str, np.ndarray]:
    m = maps.astype(np.float32)
    h = m.shape[2]
    half = (h + 1) // 2
    quadrants = [
        m[:, :, i : i + half, j : j + half].mean((2, 3)) for i in (0, h - half) for j in (0, h - half)
    ]
    return {
        "gap": m.mean((2, 3)),
        "max": m.max((2, 3)),
        "gem3": np.power((np.maximum(m, 1e-6) ** 3).mean((2, 3)), 1.0 / 3.0),
        "grid2": np.concatenate(quadrants, axis=1),
    }


def _features_of_every_photo(
    name: str, variant: str, size: int, features: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """One pass of EfficientNet-``variant`` at ``size`` px over every split photo's centre,
    exposing ``embedding``, ``head_map`` and the unpooled last block of stages 4-7 (``s4``..``s7``,
    the inputs of the graph's own pool nodes); ``features`` turns a batch of those into named
    arrays. Cached as ``<name>-<variant>-<size>-c70.npz`` (rows in ``paths`` order)."""
    file = POOL_CACHE / f"{name}-{variant}-{size}-c{round(CROP * 100)}.npz"
    if file.is_file():
        with np.load(file, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    import onnxruntime
    from onnx import TensorProto, helper
    from tagsmith.encoder import decode_image, to_model_input
    from tagsmith.encoder.lite0 import build_efficientnet_lite_model
    from tagsmith.encoder.torch_legacy import load_lite_state_dict

    model = build_efficientnet_lite_model(
        load_lite_state_dict(variant), input_size=size, name=variant, taps=True
    )
    outputs = {"embedding": "embedding", "head_map": "head_map"}
    for node in model.graph.node:
        for stage in STAGES:
            if node.name == f"stage{stage}.pool":
                outputs[f"s{stage}"] = node.input[0]
                model.graph.output.append(
                    helper.make_tensor_value_info(node.input[0], TensorProto.FLOAT, None)
                )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
    )
    paths = split_paths(KS, SEEDS)
    parts: dict[str, list[np.ndarray]] = {}
    started = time.perf_counter()
    for i in range(0, len(paths), 32):
        images = [decode_image((GROCERY / p).read_bytes()).image for p in paths[i : i + 32]]
        batch = to_model_input(images, size=size, crop=CROP)
        values = session.run(list(outputs.values()), {"image": batch})
        for key, value in features(dict(zip(outputs, values, strict=True))).items():
            parts.setdefault(key, []).append(value)
        if i % 640 == 0:
            log(f"  {file.name}: {i}/{len(paths)} ({time.perf_counter() - started:.0f} s)")
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["paths"] = np.array(paths)
    out["seconds_per_image"] = np.asarray((time.perf_counter() - started) / len(paths))
    out["load_average"] = np.array(os.getloadavg())
    POOL_CACHE.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp.npz")
    np.savez(tmp, **out)  # type: ignore[arg-type]  # numpy's stub takes the first keyword for allow_pickle
    os.replace(tmp, file)
    return out


def pooled_features(variant: str, size: int) -> dict[str, np.ndarray]:
    """``emb`` and ``<head|s4..s7>_<pooling>`` arrays of every split photo (``pool-*.npz``)."""

    def pools(maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {"emb": np.asarray(maps["embedding"], np.float32)}
        for tag in ("head", *(f"s{stage}" for stage in STAGES)):
            for pooling, value in _pools(maps["head_map" if tag == "head" else tag]).items():
                out[f"{tag}_{pooling}"] = value
        return out

    return _features_of_every_photo("pool", variant, size, pools)


def _gram(maps: np.ndarray, projection: np.ndarray | None, signed_sqrt: bool = True) -> np.ndarray:
    """Second-order pooling: (optionally projected) channels, mean outer product over the positions,
    upper triangle, signed square root (the product's ``stage5_gram`` with its projection)."""
    f = maps.astype(np.float64).reshape(maps.shape[0], maps.shape[1], -1)
    if projection is not None:
        f = np.einsum("nci,ck->nki", f, projection)
    g = np.einsum("nki,nli->nkl", f, f) / f.shape[2]
    rows, cols = np.triu_indices(g.shape[1])
    v = g[:, rows, cols]
    return (np.sign(v) * np.sqrt(np.abs(v)) if signed_sqrt else v).astype(np.float32)


def second_order_features(variant: str, size: int) -> dict[str, np.ndarray]:
    """Second-order pools of stages 4 to 6 of every split photo (``gram-*.npz`` cache): ``s<i>_full``
    (all channels), ``s5_p<k>`` (projected onto the product's :func:`gram_projection` with ``k``
    directions; ``s5_p48`` is the default recipe's ``stage5_gram``), ``s5_raw`` (no square root)."""
    from tagsmith.encoder.lite0 import gram_projection

    def grams(maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        s5 = maps["s5"]
        return {
            "s4_full": _gram(maps["s4"], None),
            "s5_full": _gram(s5, None),
            "s6_full": _gram(maps["s6"], None),
            "s5_raw": _gram(s5, None, signed_sqrt=False),
            **{f"s5_p{k}": _gram(s5, gram_projection(s5.shape[1], k)) for k in (24, 32, 48, 64, 80)},
        }

    return _features_of_every_photo("gram", variant, size, grams)


def joined(parts: Sequence[tuple[str, int, str]]) -> tuple[dict[str, int], np.ndarray]:
    """The rows of ``(variant, size, key)`` parts joined as the product joins a recipe's outputs;
    a ``gram:<key>`` key is one of :func:`second_order_features`."""
    arrays, paths = [], None
    for variant, size, key in parts:
        if key.startswith("gram:"):
            data, key = second_order_features(variant, size), key.removeprefix("gram:")
        else:
            data = pooled_features(variant, size)
        x = data[key]
        arrays.append(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))
        assert paths is None or (data["paths"] == paths).all()
        paths = data["paths"]
    assert paths is not None
    x = np.concatenate(arrays, axis=1) / np.sqrt(len(arrays))
    return {p: i for i, p in enumerate(paths.tolist())}, x.astype(np.float64)


# --- heads ---------------------------------------------------------------------------------------------
def ridge_scores(xs: np.ndarray, ys: np.ndarray, xt: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """Ridge onto one-hot targets with an unpenalised intercept (dual form: rows < dims here)."""
    t = np.eye(n)[ys]
    mx, my = xs.mean(0), t.mean(0)
    xc = xs - mx
    gram = xc @ xc.T
    gram[np.diag_indices_from(gram)] += alpha
    return (xt - mx) @ (xc.T @ np.linalg.solve(gram, t - my)) + my


def sklearn_head(make: Callable[[], object]) -> Callable[..., np.ndarray]:
    def scores(xs: np.ndarray, ys: np.ndarray, xt: np.ndarray, n: int, alpha: float) -> np.ndarray:
        model = make()
        model.fit(xs, ys)  # type: ignore[attr-defined]
        out = np.full((len(xt), n), -np.inf)
        out[:, model.classes_] = model.decision_function(xt)  # type: ignore[attr-defined]
        return out

    return scores


def kernel_head(tau: float) -> Callable[..., np.ndarray]:
    """Kernel ridge with ``k(a, b) = exp((a.b - 1) / tau)`` on the unit-length rows."""

    def scores(xs: np.ndarray, ys: np.ndarray, xt: np.ndarray, n: int, alpha: float) -> np.ndarray:
        t = np.eye(n)[ys]
        my = t.mean(0)
        k = np.exp((xs @ xs.T - 1.0) / tau)
        k[np.diag_indices_from(k)] += alpha
        return np.exp((xt @ xs.T - 1.0) / tau) @ np.linalg.solve(k, t - my) + my

    return scores


# --- the rows ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    name: str
    what: str
    parts: tuple[tuple[str, int, str], ...]
    alpha: float = ALPHA
    head: Callable[..., np.ndarray] = ridge_scores
    ingest_cost: float = 1.0  # network passes per photo relative to the default's one Lite2-260 pass


def _stages(variant: str, size: int, keys: Sequence[str]) -> tuple[tuple[str, int, str], ...]:
    return tuple((variant, size, k) for k in keys)


def rows() -> dict[str, Row]:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    s7 = ("emb", "s7_gap")
    s67 = (*s7, "s6_gap")
    s567 = (*s67, "s5_gap")
    s4567 = (*s567, "s4_gap")
    l2, l2_330, l0 = ("lite2", 260), ("lite2", 330), ("lite0", 320)
    out = [
        Row("s7", "session-2 default's features: embedding + stage-7 mean (1632-d)", _stages(*l2, s7)),
        Row("s67", "+ stage-6 mean", _stages(*l2, s67)),
        Row("s567", "+ stages 6 and 5 (1960-d)", _stages(*l2, s567)),
        Row("s4567", "+ stages 6, 5 and 4", _stages(*l2, s4567)),
        Row(
            "gem3",
            "head map and stage 7, generalised mean (p=3) instead of the mean",
            _stages(*l2, ("head_gem3", "s7_gem3")),
        ),
        Row("max", "head map and stage 7, maximum instead of the mean", _stages(*l2, ("head_max", "s7_max"))),
        Row(
            "grid2",
            "head map and stage 7, four quadrant means (4x the dims)",
            _stages(*l2, ("head_grid2", "s7_grid2")),
        ),
        Row("s7-grid2", "embedding + stage 7 + head quadrant means", _stages(*l2, (*s7, "head_grid2"))),
        Row("s567-gem3", "s567 + the head map's generalised mean", _stages(*l2, (*s567, "head_gem3"))),
        Row("s567-330", "s567 at 330 px", _stages(*l2_330, s567), ingest_cost=2.0),
        Row("s4567-330", "s4567 at 330 px", _stages(*l2_330, s4567), ingest_cost=2.0),
        Row(
            "s567-330+260",
            "s567 at 330 and at 260 px joined",
            _stages(*l2_330, s567) + _stages(*l2, s567),
            ingest_cost=3.0,
        ),
        Row("lite0-s567", "Lite0 at 320 px, s567", _stages(*l0, s567), ingest_cost=1.0),
        Row("lite1-s567", "Lite1 at 280 px, s567", _stages("lite1", 280, s567), ingest_cost=1.5),
        Row(
            "s567+lite0",
            "s567 with Lite0-320's s567 joined (two networks)",
            _stages(*l2, s567) + _stages(*l0, s567),
            ingest_cost=2.0,
        ),
    ]
    for alpha in (1.0, 0.1, 0.05, 0.03, 0.01):
        out.append(Row(f"s567-a{alpha:g}", f"s567, ridge penalty {alpha:g}", _stages(*l2, s567), alpha=alpha))
    out += [
        Row("s7-a0.03", "s7, ridge penalty 0.03", _stages(*l2, s7), alpha=0.03),
        Row(
            "s567-330-a0.1", "s567 at 330 px, penalty 0.1", _stages(*l2_330, s567), alpha=0.1, ingest_cost=2.0
        ),
        Row(
            "s567+lite0-a0.1",
            "s567 + Lite0-320 s567, penalty 0.1",
            _stages(*l2, s567) + _stages(*l0, s567),
            alpha=0.1,
            ingest_cost=2.0,
        ),
        Row(
            "s567-lda",
            "s567, shrinkage LDA (Ledoit-Wolf)",
            _stages(*l2, s567),
            head=sklearn_head(lambda: LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")),
        ),
        Row(
            "s567-svm",
            "s567, linear SVM (C=1)",
            _stages(*l2, s567),
            head=sklearn_head(lambda: LinearSVC(C=1.0)),
        ),
        Row(
            "s567-logreg",
            "s567, multinomial logistic regression (C=100)",
            _stages(*l2, s567),
            head=sklearn_head(lambda: LogisticRegression(C=100, max_iter=300)),
        ),
    ]
    out += [
        Row(
            f"s567-rbf{tau:g}",
            f"s567, kernel ridge exp((cos-1)/{tau:g})",
            _stages(*l2, s567),
            head=kernel_head(tau),
        )
        for tau in (0.5, 0.25)
    ]
    g = "gram:s5_p48"
    out += [
        Row(
            "s567g",
            "s567 + stage 5's second-order pool, 48 projected channels (3136-d): the new default",
            _stages(*l2, (*s567, g)),
        ),
        Row(
            "s567g-full",
            "s567 + stage 5's second-order pool, all 120 channels (9220-d)",
            _stages(*l2, (*s567, "gram:s5_full")),
        ),
        Row(
            "s567g-raw",
            "s567 + the full second-order pool without the square root",
            _stages(*l2, (*s567, "gram:s5_raw")),
        ),
        *(
            Row(
                f"s567g{k}",
                f"s567 + stage 5's second-order pool, {k} projected channels",
                _stages(*l2, (*s567, f"gram:s5_p{k}")),
            )
            for k in (24, 32, 64, 80)
        ),
        Row(
            "s567g4",
            "s567 + stage 4's second-order pool (88 channels)",
            _stages(*l2, (*s567, "gram:s4_full")),
        ),
        Row(
            "s567g6",
            "s567 + stage 6's second-order pool (208 channels, 21736-d)",
            _stages(*l2, (*s567, "gram:s6_full")),
        ),
        Row("s567g-g4", "s567g + stage 4's second-order pool", _stages(*l2, (*s567, g, "gram:s4_full"))),
        Row("s7g", "embedding + stage 7 + stage 5's second-order pool (48)", _stages(*l2, (*s7, g))),
        Row("gram-only", "stage 5's second-order pool alone (all channels)", _stages(*l2, ("gram:s5_full",))),
        Row("s567g-a0.1", "s567g, ridge penalty 0.1", _stages(*l2, (*s567, g)), alpha=0.1),
    ]
    return {r.name: r for r in out}


def evaluate(row: Row, ks: Sequence[int] = KS, seeds: Sequence[int] = SEEDS) -> dict[str, object]:
    index, x = joined(row.parts)
    per_k = {}
    for k in ks:
        accuracies = []
        for seed in seeds:
            split = load_split(k, seed)
            labels = sorted({lab for _, lab in split.support})
            number = {lab: i for i, lab in enumerate(labels)}
            xs = x[[index[p] for p, _ in split.support]]
            ys = np.array([number[lab] for _, lab in split.support])
            xt = x[[index[p] for p, _ in split.test]]
            yt = np.array([number[lab] for _, lab in split.test])
            scores = row.head(xs, ys, xt, len(labels), row.alpha)
            accuracies.append(float((scores.argmax(axis=1) == yt).mean()))
        per_k[str(k)] = {"mean": float(np.mean(accuracies)), "std": float(np.std(accuracies))}
    return {"what": row.what, "dim": int(x.shape[1]), "ingest_cost": row.ingest_cost, "per_k": per_k}


def markdown_row(name: str, result: dict[str, object]) -> str:
    per_k = result["per_k"]
    assert isinstance(per_k, dict)
    cells = " | ".join(f"{100 * per_k[str(k)]['mean']:.1f} ± {100 * per_k[str(k)]['std']:.1f}" for k in KS)
    return f"| `{name}`: {result['what']} | {result['dim']} | {cells} | {result['ingest_cost']:g} |"


COST_RECIPES = ("effnet-lite2-260-s567g-c70-v1", "effnet-lite2-260-s567-c70-v1", "effnet-lite2-260-s7-c70-v1")


def embed_cost(rounds: int = 5, photos: int = 96) -> dict[str, list[float]]:
    """Embedding speed (images/s, decoded photos, 2 threads) of the recipes that share one network
    pass but pool differently, measured alternately ``rounds`` times (the first round warms up)."""
    import statistics

    from tagsmith.encoder import decode_image, feature_encoder

    images = [decode_image((GROCERY / p).read_bytes()).image for p in split_paths(KS, SEEDS)[:photos]]
    encoders = {r: feature_encoder(CACHE / "onnx", r, threads=2) for r in COST_RECIPES}
    speeds: dict[str, list[float]] = {r: [] for r in encoders}
    for _ in range(rounds):
        for recipe, encoder in encoders.items():
            started = time.perf_counter()
            encoder.embed(images)
            speeds[recipe].append(len(images) / (time.perf_counter() - started))
    for recipe, values in speeds.items():
        print(
            f"{recipe}: median {statistics.median(values[1:]):.1f} images/s (rounds: {[round(v, 1) for v in values]})"
        )
    return speeds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stages", description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated row names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    parser.add_argument("--cost", action="store_true", help="time the pooling recipes' embedding and exit")
    args = parser.parse_args(argv)
    table = rows()
    if args.list:
        for row in table.values():
            print(f"{row.name:18s} {row.what}")
        return 0
    if not (GROCERY / "splits").is_dir():
        print(f"SKIPPED: no grocery dataset at {GROCERY} (set TAGSMITH_GROCERY_DIR)")
        return 0
    if args.cost:
        embed_cost()
        return 0
    names = args.only.split(",") if args.only else list(table)
    unknown = sorted(set(names) - set(table))
    if unknown:
        parser.error(f"unknown rows {unknown}; --list names them")
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for name in names:
        started = time.perf_counter()
        results[name] = evaluate(table[name])
        log(f"{name}: {time.perf_counter() - started:.0f} s")
        print(markdown_row(name, results[name]), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
