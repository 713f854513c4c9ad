"""Training with the real EfficientNet-Lite0 encoder: a manifest of grocery photos, incremental
retraining from the embedding cache, and the near-duplicate check at its measured threshold."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw
from tagsmith.config import Settings
from tagsmith.errors import TrainingInputError
from tagsmith.examples import Example
from tagsmith.manifests import load_examples
from tagsmith.search import InMemorySearchIndex
from tagsmith.storage import MemoryObjectStore
from tagsmith.wiring import Components, build

CLASSES = ("Granny-Smith", "Banana", "Oatly-Oat-Milk")


@pytest.fixture
def components(lite0_encoder: Any) -> Components:
    return build(
        Settings(data_bucket="data", assets_bucket="assets"),
        store=MemoryObjectStore(),
        index=InMemorySearchIndex(),
        encoder=lite0_encoder,
    )


def grocery_manifest(grocery: Path, folder: Path, per_class: int, *, skip: int = 0) -> Path:
    lines = ["path,tag"]
    for name in CLASSES:
        [class_dir] = [p for p in (grocery / "train").rglob(name) if p.is_dir()]
        for photo in sorted(class_dir.glob("*.jpg"))[skip : skip + per_class]:
            lines.append(f"{photo},{name.lower()}")
    manifest = folder / f"examples-{skip}-{per_class}.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


@pytest.mark.slow
@pytest.mark.grocery
def test_lite0_trains_grocery_from_a_manifest_then_retrains_from_cache(
    components: Components, grocery_dir: Path, tmp_path: Path
) -> None:
    first = load_examples(str(grocery_manifest(grocery_dir, tmp_path, 6)))
    report = components.trainer.train(
        tenant="acme", model_id="shelf", examples=first.examples, source="manifest"
    )
    assert (report.embedded, report.cached) == (18, 0)
    assert report.cv_accuracy is not None and report.cv_accuracy >= 0.8
    assert report.promotion is not None and report.promotion.promoted
    # WHEN three more photos per product are added
    more = load_examples(str(grocery_manifest(grocery_dir, tmp_path, 3, skip=6)))
    second = components.trainer.train(
        tenant="acme", model_id="shelf", examples=first.examples + more.examples
    )
    # THEN only they are embedded, and the new version is judged on them
    assert (second.embedded, second.cached) == (9, 18)
    assert second.promotion is not None and second.promotion.held_out == 9
    assert second.promotion.new_correct is not None and second.promotion.new_correct >= 7


def scene(seed: int) -> Image.Image:
    """A synthetic photo: random coloured shapes on a coloured background."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (320, 240), tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x, y = (int(v) for v in rng.integers(0, 300, 2))
        w, h = (int(v) for v in rng.integers(20, 120, 2))
        fill = tuple(int(v) for v in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x, y, x + w, y + h), fill=fill)
    return im


def jpeg(im: Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.mark.slow
def test_lite0_refuses_a_resaved_photo_under_another_tag_naming_both(components: Components) -> None:
    examples = [
        Example(f"scene-{t}", f"scene-{t}/{i}.jpg", lambda t=t, i=i: jpeg(scene(100 * t + i)))
        for t in range(3)
        for i in range(3)
    ]
    # GIVEN the first photo of scene-0, saved again at a lower quality, among scene-1's examples
    examples.append(Example("scene-1", "scene-1/copy.jpg", lambda: jpeg(scene(0), quality=60)))
    with pytest.raises(TrainingInputError, match="nearly identical") as e:
        components.trainer.train(tenant="acme", model_id="scenes", examples=examples)
    assert "scene-0/0.jpg (scene-0) ~ scene-1/copy.jpg (scene-1)" in str(e.value)
