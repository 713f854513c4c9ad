"""In-process ingest against decode + embed, with every request counted, on the grocery photos.

    .venv/bin/python -m benchmarks.ingest                      # 300 photos, batches of 10, no latency
    .venv/bin/python -m benchmarks.ingest --latency-ms 10      # each store/index call waits 10 ms
    .venv/bin/python -m benchmarks.ingest --profile            # and where the time goes (cProfile)
    .venv/bin/python -m benchmarks.ingest --photo-side 4032    # 12 MP camera photos (upscaled)
    .venv/bin/python -m benchmarks.ingest --before preview-reuse   # and the path without it, same run

A tenant's model is trained on the k=5 support photos of split seed 0 (through the real
``TrainingService``); then the photos are uploaded to an in-memory bucket and ingested through the
real :class:`~tagsmith.ingest.IngestService` built by ``wiring.build`` (decode, embed, models,
preview, record, review items, index, outbound), ``--batch`` per call as the ingest handler gets
them from SQS. Every object-store and search-index call is counted by method, so requests per
asset can be compared between versions of the ingest path. ``--latency-ms`` adds a fixed wait to
each call, standing for S3's and OpenSearch's round trips (the in-memory adapters have none):
with 0 the benchmark measures CPU, with 10-20 ms what sequential I/O costs on AWS.

Decode + embed alone is measured in the same run on the same photos and batch size, alternating
with ingest in ``--rounds`` rounds (a shared machine's load moves either figure by 2x within
minutes); the median of the rounds' ratios ingest / decode+embed is the figure to quote (the
issue's target is >= 0.9). Decode + embed decodes as ingestion does for the encoder (JPEG draft
mode at the tagger's ``decode_draft_size``), so large photos are compared like with like.

``--photo-side N`` re-encodes each photo as a JPEG (quality 90) upscaled to N px on its long side
and 3:4 (a 4032 x 3024 phone photo for 4032): the grocery photos are 348 px, where no draft
scale applies and the preview is the decoded image itself; camera photos exercise both.

``--before NAME`` also ingests with one change of the ingest path switched back (see
:data:`BEFORE`), alternating with the current path in the same rounds: each round ingests half its
photos one way and half the other (the embedding cache would make a second pass over the same
photos free), and decode + embed runs on each half, so each way gets its own ratio.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from benchmarks.run import CACHE, GROCERY, load_split, split_paths


def _preview_reuse_off(components: Any) -> Callable[[], AbstractContextManager[None]]:
    """The preview made from the encoder's decoded image only when it is whole or >= 1024 px."""
    import tagsmith.previews as previews

    @contextmanager
    def switched() -> Iterator[None]:
        reuse = previews.PREVIEW_REUSE_SIDE
        previews.PREVIEW_REUSE_SIDE = previews.PREVIEW_SIDE
        try:
            yield
        finally:
            previews.PREVIEW_REUSE_SIDE = reuse

    return switched


def _spinning(components: Any) -> Callable[[], AbstractContextManager[None]]:
    """onnxruntime's worker threads spinning between runs (its default): a second session of each
    encoder the warm-up used, swapped in for the rounds of the path before."""
    encoders = [e for e in components.tagger.encoders._built.values() if getattr(e, "_session", None)]
    spinning = {}
    for e in encoders:
        e.spin = True
        spinning[e] = e._create_session()
        e.spin = False

    @contextmanager
    def switched() -> Iterator[None]:
        quiet = {e: e._session for e in encoders}
        for e in encoders:
            e._session = spinning[e]
        try:
            yield
        finally:
            for e in encoders:
                e._session = quiet[e]

    return switched


#: Changes that ``--before`` can switch back, each given the warmed-up components.
BEFORE: dict[str, Callable[[Any], Callable[[], AbstractContextManager[None]]]] = {
    "preview-reuse": _preview_reuse_off,
    "spinning": _spinning,
}


def _camera_photo(data: bytes, side: int) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        big = im.convert("RGB").resize((side, side * 3 // 4), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=90)
    return out.getvalue()


class _Counted:
    """Counts (and optionally delays) every public method call on the way through; thread-safe,
    since the ingest path may call from a pool."""

    def __init__(self, inner: Any, prefix: str, counts: Counter[str], lock: threading.Lock) -> None:
        self._inner, self._prefix, self._counts, self._lock = inner, prefix, counts, lock
        self.latency = 0.0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def counted(*args: Any, **kw: Any) -> Any:
            with self._lock:
                self._counts[f"{self._prefix}.{name}"] += 1
            if self.latency:
                time.sleep(self.latency)
            return attr(*args, **kw)

        return counted


def run(
    *,
    photos: int = 300,
    batch: int = 10,
    rounds: int = 5,
    latency_ms: float = 0.0,
    profile: bool = False,
    photo_side: int | None = None,
    before: str | None = None,
) -> dict[str, Any]:
    from tagsmith.config import Settings
    from tagsmith.encoder import decode_image
    from tagsmith.events import ObjectRef
    from tagsmith.search import InMemorySearchIndex
    from tagsmith.storage.memory import MemoryObjectStore
    from tagsmith.trainer import Example
    from tagsmith.wiring import build

    counts: Counter[str] = Counter()
    lock = threading.Lock()
    raw_store = MemoryObjectStore()
    store = _Counted(raw_store, "s3", counts, lock)
    index = _Counted(InMemorySearchIndex(), "search", counts, lock)
    settings = Settings(data_bucket="data", assets_bucket="assets", encoder_cache_dir=CACHE / "onnx")
    components = build(settings, store=store, index=index)  # type: ignore[arg-type]

    split = load_split(5, 0)
    examples = [Example(label, path, (GROCERY / path).read_bytes) for path, label in split.support]
    components.trainer.train(tenant="bench", model_id="grocery", examples=examples)
    support = {p for p, _ in split.support}
    chosen = [p for p in split_paths((5,), (0,)) if p not in support]
    pool = [str(p.relative_to(GROCERY)) for p in sorted((GROCERY / "train").rglob("*.jpg"))]
    chosen = (chosen + [p for p in pool if p not in support and p not in set(chosen)])[: photos + 2]
    refs = []
    for p in chosen:
        key = f"bench/{p}"
        data = (GROCERY / p).read_bytes()
        raw_store.put(
            "assets", key, _camera_photo(data, photo_side) if photo_side else data, content_type="image/jpeg"
        )
        refs.append(ObjectRef("assets", key))
    components.ingest.ingest(refs[:2])  # warm-up: sessions, models in memory (excluded below)
    refs = refs[2:]

    counts.clear()
    encoder = components.encoder
    draft = components.tagger.limits.decode_draft_size
    profiler = cProfile.Profile() if profile else None
    outcomes: Counter[str] = Counter()
    switch = BEFORE[before](components) if before else None
    ways = ("after", "before") if switch else ("after",)
    took: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}  # (ingest, decode+embed)
    photos_of: Counter[str] = Counter()

    def ingest(part: list[Any], way: str) -> float:
        store.latency = index.latency = latency_ms / 1000
        started = time.perf_counter()
        if profiler and way == "after":
            profiler.enable()
        try:
            with switch() if switch and way == "before" else nullcontext():
                for i in range(0, len(part), batch):
                    for outcome in components.ingest.ingest(part[i : i + batch]):
                        kind = type(outcome).__name__ if isinstance(outcome, Exception) else outcome.status
                        outcomes[kind] += 1
        finally:
            if profiler:
                profiler.disable()
            store.latency = index.latency = 0.0
        return time.perf_counter() - started

    def decode_embed(part: list[Any], way: str) -> float:
        data = [raw_store.get(ref.bucket, ref.key).body for ref in part]
        started = time.perf_counter()
        with switch() if switch and way == "before" else nullcontext():
            for i in range(0, len(data), batch):
                encoder.embed([decode_image(d, draft_size=draft).image for d in data[i : i + batch]])
        return time.perf_counter() - started

    # Alternate: a round of ingest, then decode + embed alone on the same photos, so both see the
    # same load (other work on a shared machine moves either by 2x between minutes).
    chunk = max(batch * len(ways), len(refs) // rounds // (batch * len(ways)) * batch * len(ways))
    for start in range(0, len(refs), chunk):
        part = refs[start : start + chunk]
        halves: dict[str, list[Any]] = {}
        for n, way in enumerate(ways):
            # batches of `batch` photos, the ways' batches interleaved along the part
            halves[way] = [
                r for b in range(n * batch, len(part), len(ways) * batch) for r in part[b : b + batch]
            ]
        for way in ways if start // chunk % 2 == 0 else reversed(ways):
            took[way].append((ingest(halves[way], way), decode_embed(halves[way], way)))
            photos_of[way] += len(halves[way])
    requests = dict(sorted(counts.items()))
    n = len(refs)
    result: dict[str, Any] = {
        "photos": n,
        "photo_side": photo_side or 348,
        "batch": batch,
        "latency_ms": latency_ms,
        "outcomes": dict(outcomes),
        "requests_per_asset": round(sum(requests.values()) / n, 2),
        "requests_per_asset_by_call": {k: round(v / n, 2) for k, v in requests.items()},
    }
    for way in ways:
        label = "" if way == "after" else f"before {before}: "
        pairs = took[way]
        ratios = [e / i for i, e in pairs]
        result[f"{label}rounds"] = len(pairs)
        result[f"{label}ingest_images_per_second"] = round(photos_of[way] / sum(i for i, _ in pairs), 1)
        result[f"{label}decode_embed_images_per_second"] = round(photos_of[way] / sum(e for _, e in pairs), 1)
        result[f"{label}ratio_median"] = round(statistics.median(ratios), 2)
        result[f"{label}ratios"] = [round(r, 2) for r in ratios]
    if profiler:
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("cumulative").print_stats(35)
        result["profile"] = buf.getvalue()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5, help="ingest and embed-only alternate this often")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every store/index call")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    parser.add_argument("--photo-side", type=int, help="upscale each photo to this long side (JPEG q90)")
    parser.add_argument("--before", choices=sorted(BEFORE), help="also ingest with this change switched back")
    args = parser.parse_args(argv)
    if not (GROCERY / "splits").is_dir():
        print(f"SKIPPED: the grocery dataset is not at {GROCERY} (set TAGSMITH_GROCERY_DIR)")
        return 0
    result = run(
        photos=args.photos,
        batch=args.batch,
        rounds=args.rounds,
        latency_ms=args.latency_ms,
        profile=args.profile,
        photo_side=args.photo_side,
        before=args.before,
    )
    profile = result.pop("profile", None)
    print(json.dumps(result, indent=2))
    if profile:
        print(profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
