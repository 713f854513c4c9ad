"""Training speed: retraining 100 tags x 30 examples once embeddings are cached, and the time to
embed new examples with the real encoder.

* ``cached_train``: 3,000 distinct JPEG files in tag folders (generated), their embeddings already in
  the embedding cache by both candidate recipes (synthetic vectors of the default encoder's 3136 dimensions, clustered by tag,
  so fitting works on a realistic problem), and those of each photo's ``DEFAULT_AUGMENT_VIEWS``
  augmented views (the photo's vector plus a little noise; the product's default, so 3,000 examples
  are 9,000 training rows), trained end to end with :meth:`TrainingService.train`:
  read and hash every file (a first training has no record of them), cache look-ups, checks (incl.
  near-duplicates), fit with calibration, cross-validation for the report, comparison with the
  active version, save. Reported with its stages, and again as an incremental retraining that adds
  one tag of 30 new (cached) examples: the 3,000 known files are not read again (same path, size
  and modification time as recorded in the active version's ``examples.json``).
* ``embed_new``: real photos (``../shared/datasets/grocery`` if present, else generated scenes)
  decoded and embedded by the default encoder, as training does for examples not in the cache:
  images per second, and the seconds a 30-photo tag takes, with its augmented views drawn and
  embedded too (the default).

``run()`` returns the figures as a dict (for ``benchmarks.run``); ``python -m
benchmarks.training_speed`` prints them as JSON. ``TAGSMITH_BENCH_TRAIN_TAGS`` /
``TAGSMITH_BENCH_TRAIN_PER_TAG`` shrink the problem for a quick look;
``TAGSMITH_BENCH_TRAIN_CANDIDATES=1`` trains as a deployment pinned to one recipe (no choice).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
GROCERY = ROOT.parent / "shared" / "datasets" / "grocery"
TENANT, MODEL = "bench", "products"
DIM = 3136  # the default encoder's (tagsmith.encoder.DEFAULT_RECIPE.dim; checked in cached_train)


class CachedOnlyEncoder:
    """An encoder for the cached benchmark: every embedding must come from the cache. Two of them
    stand for the deployment's two candidate recipes: the trainer compares a model by both."""

    dim = DIM

    def __init__(self, encoder_id: str = "bench-synthetic-zoom") -> None:
        self.encoder_id = encoder_id

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        raise AssertionError(f"{len(images)} image(s) missed the embedding cache")


#: The candidates, as tagsmith.encoder.CANDIDATE_RECIPES are for the default deployment.
CANDIDATES = ("bench-synthetic-zoom", "bench-synthetic-full")


def _scene(seed: int, size: int = 96) -> Image.Image:
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(im)
    for _ in range(6):
        x, y, w, h = (int(v) for v in rng.integers(0, size, 4))
        draw.rectangle((x, y, x + w // 2, y + h // 2), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return im


def _jpeg(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _write_examples(root: Path, tags: Sequence[str], per_tag: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Tag folders of JPEGs; returns cache key -> a synthetic embedding near its tag's centre: the
    photo's (its sha256) and its augmented views' (near the photo's)."""
    from tagsmith.trainer import DEFAULT_AUGMENT_VIEWS, view_cache_key

    rng = np.random.default_rng(seed)
    vectors = {}
    for t, tag in enumerate(tags):
        centre = np.random.default_rng(int(hashlib.md5(tag.encode()).hexdigest()[:8], 16)).normal(size=DIM)
        (root / tag).mkdir(parents=True, exist_ok=True)
        for i in range(per_tag):
            data = _jpeg(_scene(seed * 1_000_003 + t * 1000 + i))
            (root / tag / f"{i:03d}.jpg").write_bytes(data)
            v = centre + 1.2 * rng.normal(size=DIM)
            sha = hashlib.sha256(data).hexdigest()
            vectors[sha] = (v / np.linalg.norm(v)).astype(np.float32)
            for j in range(DEFAULT_AUGMENT_VIEWS):
                w = v + 0.6 * rng.normal(size=DIM)
                vectors[view_cache_key(sha, j)] = (w / np.linalg.norm(w)).astype(np.float32)
    return vectors


def _counting(load: Callable[[], bytes], reads: list[int]) -> Callable[[], bytes]:
    def counted() -> bytes:
        reads[0] += 1
        return load()

    return counted


def cached_train(tags: int = 100, per_tag: int = 30) -> dict[str, Any]:
    from tagsmith.config import Settings
    from tagsmith.encoder import CANDIDATE_RECIPES, DEFAULT_RECIPE, EncoderSet
    from tagsmith.examples import examples_from_folder
    from tagsmith.search import InMemorySearchIndex
    from tagsmith.storage import MemoryObjectStore
    from tagsmith.trainer import DEFAULT_AUGMENT_VIEWS
    from tagsmith.wiring import build

    assert DEFAULT_RECIPE.dim == DIM, f"the default encoder is {DEFAULT_RECIPE.dim}-d now: update DIM"
    names = [f"sku-{i:03d}" for i in range(tags + 1)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "examples"
        vectors = _write_examples(root, names[:tags], per_tag)
        c = build(Settings(data_bucket="data"), store=MemoryObjectStore(), index=InMemorySearchIndex())
        assert len(CANDIDATE_RECIPES) == len(CANDIDATES)
        # TAGSMITH_BENCH_TRAIN_CANDIDATES=1: a deployment pinned to one recipe (no choice to make)
        count = int(os.environ.get("TAGSMITH_BENCH_TRAIN_CANDIDATES", len(CANDIDATES)))
        encoders = [CachedOnlyEncoder(e) for e in CANDIDATES[:count]]
        c.__dict__["encoders"] = EncoderSet(default=encoders[0], candidates=encoders)  # type: ignore[arg-type]
        cache = c.tagger.embeddings
        assert cache is not None

        def fill(vectors: dict[str, np.ndarray]) -> None:
            # the second candidate's view of a photo: the same, a little moved (another crop)
            noise = np.random.default_rng(7)
            for key, vec in vectors.items():
                cache.put(TENANT, CANDIDATES[0], key, vec)
                other = vec + 0.3 * noise.normal(size=DIM).astype(np.float32) / np.sqrt(DIM)
                cache.put(TENANT, CANDIDATES[1], key, (other / np.linalg.norm(other)).astype(np.float32))

        fill(vectors)
        examples, _ = examples_from_folder(root)
        load_at_start = os.getloadavg()
        started = time.perf_counter()
        first = c.trainer.train(tenant=TENANT, model_id=MODEL, examples=examples)
        first_s = time.perf_counter() - started
        # incremental: one more tag of per_tag new examples (their embeddings cached too)
        fill(_write_examples(root, names[tags:], per_tag, seed=1))
        examples, _ = examples_from_folder(root)
        reads = [0]
        examples = [replace(ex, load=_counting(ex.load, reads)) for ex in examples]
        started = time.perf_counter()
        second = c.trainer.train(tenant=TENANT, model_id=MODEL, examples=examples)
        second_s = time.perf_counter() - started
    return {
        "load_average_at_start": list(load_at_start),
        "candidate_recipes": count,
        "dim": DIM,
        "tags": tags,
        "examples": tags * per_tag,
        "augmented_views_per_example": DEFAULT_AUGMENT_VIEWS,
        "seconds": round(first_s, 2),
        "stages": first.timings,
        "cached": first.cached,
        "embedded": first.embedded,
        "cv_accuracy": first.cv_accuracy,
        "add_one_tag_seconds": round(second_s, 2),
        "add_one_tag_stages": second.timings,
        "add_one_tag_images_read": reads[0],
        "add_one_tag_promotion": second.promotion.reason if second.promotion else None,
    }


def embed_new(count: int = 90) -> dict[str, Any]:
    from tagsmith.encoder import decode_image, default_encoder
    from tagsmith.encoder.augment import augmented_views, seed_for_bytes
    from tagsmith.trainer import DEFAULT_AUGMENT_VIEWS

    if GROCERY.is_dir():
        files = sorted((GROCERY / "train").rglob("*.jpg"))[::29][:count]
        blobs, source = [f.read_bytes() for f in files], "grocery photos (348x348 JPEG)"
    else:
        blobs, source = [_jpeg(_scene(i, size=400)) for i in range(count)], "generated 400x400 JPEG scenes"
    with tempfile.TemporaryDirectory() as tmp:
        encoder = default_encoder(Path(tmp), threads=2)
        encoder.embed([decode_image(blobs[0]).image])  # warm the session
        started = time.perf_counter()
        images = [decode_image(b).image for b in blobs]
        decoded_s = time.perf_counter() - started
        encoder.embed(images)
        total = time.perf_counter() - started
        started = time.perf_counter()
        views = [
            v
            for b, im in zip(blobs, images, strict=True)
            for v in augmented_views(im, count=DEFAULT_AUGMENT_VIEWS, seed=seed_for_bytes(b))
        ]
        drawn_s = time.perf_counter() - started
        encoder.embed(views)
        views_s = time.perf_counter() - started
    per_s = len(blobs) / total
    return {
        "source": source,
        "images": len(blobs),
        "seconds": round(total, 2),
        "decode_seconds": round(decoded_s, 2),
        "images_per_second": round(per_s, 1),
        "seconds_for_30_new_examples": round(30 / per_s, 2),
        "augmented_views_per_example": DEFAULT_AUGMENT_VIEWS,
        "views_draw_seconds": round(drawn_s, 2),
        "views_seconds": round(views_s, 2),
        "seconds_for_30_new_examples_with_views": round(30 * (total + views_s) / len(blobs), 2),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "encoder": encoder.encoder_id,
    }


def run() -> dict[str, Any]:
    """Both figures: ``{"cached_train": {...}, "embed_new": {...}}``."""
    tags = int(os.environ.get("TAGSMITH_BENCH_TRAIN_TAGS", 100))
    per_tag = int(os.environ.get("TAGSMITH_BENCH_TRAIN_PER_TAG", 30))
    return {"cached_train": cached_train(tags, per_tag), "embed_new": embed_new()}


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
