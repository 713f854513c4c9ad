"""The demo tenant: generated product photos, so the demo runs on a fresh machine with no dataset.

Three "products" drawn with Pillow at random positions, sizes, angles, lighting and backgrounds:
a storm-blue jacket, a sunset-orange tote bag and a forest-green bottle. Their labels come in
English, French, German and Japanese, so the search step can show a query in two languages.
"""

from __future__ import annotations

import io
import json
import random
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

TENANT = "acme"
MODEL = "product"

TAXONOMY: dict[str, list[dict[str, Any]]] = {
    "tags": [
        {
            "id": "storm-blue-jacket",
            "labels": {
                "en": "Aurora jacket, storm blue",
                "fr": "veste Aurora bleu orage",
                "de": "Aurora Jacke sturmblau",
                "ja": "オーロラ ジャケット ストームブルー",
            },
            "synonyms": {"en": ["coat", "parka"], "fr": ["blouson"]},
        },
        {
            "id": "sunset-tote",
            "labels": {
                "en": "Sunset tote bag",
                "fr": "sac cabas coucher de soleil",
                "de": "Sonnenuntergang Tragetasche",
                "ja": "サンセット トートバッグ",
            },
            "synonyms": {"en": ["shopper"], "fr": ["sac"]},
        },
        {
            "id": "forest-bottle",
            "labels": {
                "en": "Forest water bottle",
                "fr": "gourde forêt",
                "de": "Wald Trinkflasche",
                "ja": "フォレスト ボトル",
            },
            "synonyms": {"en": ["flask"], "fr": ["bouteille"]},
        },
    ]
}
TAGS: list[str] = [str(t["id"]) for t in TAXONOMY["tags"]]


def _background(rng: random.Random, size: int) -> Image.Image:
    base = tuple(rng.randint(200, 250) for _ in range(3))
    img = Image.new("RGB", (size, size), base)
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(0, 4)):  # shelf lines and clutter
        y = rng.randint(0, size)
        shade = tuple(max(0, c - rng.randint(20, 60)) for c in base)
        d.rectangle([0, y, size, y + rng.randint(2, 10)], fill=shade)
    return img


def _jacket(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, rng: random.Random) -> None:
    blue = (rng.randint(20, 45), rng.randint(50, 80), rng.randint(120, 160))
    body = [
        (cx - 0.35 * s, cy - 0.4 * s),
        (cx + 0.35 * s, cy - 0.4 * s),
        (cx + 0.4 * s, cy + 0.5 * s),
        (cx - 0.4 * s, cy + 0.5 * s),
    ]
    d.polygon(body, fill=blue)
    for side in (-1, 1):
        d.polygon(
            [
                (cx + side * 0.35 * s, cy - 0.4 * s),
                (cx + side * 0.7 * s, cy + 0.3 * s),
                (cx + side * 0.55 * s, cy + 0.38 * s),
                (cx + side * 0.33 * s, cy - 0.05 * s),
            ],
            fill=blue,
        )
    d.line([(cx, cy - 0.4 * s), (cx, cy + 0.5 * s)], fill=(200, 200, 210), width=max(2, int(s * 0.03)))
    d.polygon(
        [(cx - 0.12 * s, cy - 0.4 * s), (cx, cy - 0.25 * s), (cx + 0.12 * s, cy - 0.4 * s)],
        fill=(235, 235, 240),
    )


def _tote(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, rng: random.Random) -> None:
    top = (rng.randint(230, 255), rng.randint(120, 160), rng.randint(20, 60))
    bottom = (rng.randint(190, 230), rng.randint(40, 80), rng.randint(40, 80))
    x0, y0, x1, y1 = cx - 0.4 * s, cy - 0.2 * s, cx + 0.4 * s, cy + 0.5 * s
    steps = 24
    for i in range(steps):
        t = i / (steps - 1)
        color = tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        d.rectangle([x0, y0 + (y1 - y0) * i / steps, x1, y0 + (y1 - y0) * (i + 1) / steps], fill=color)
    d.arc(
        [cx - 0.25 * s, cy - 0.55 * s, cx + 0.25 * s, cy - 0.05 * s],
        180,
        360,
        fill=(90, 50, 30),
        width=max(3, int(s * 0.05)),
    )


def _bottle(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, rng: random.Random) -> None:
    green = (rng.randint(20, 50), rng.randint(110, 150), rng.randint(50, 80))
    d.rounded_rectangle(
        [cx - 0.18 * s, cy - 0.2 * s, cx + 0.18 * s, cy + 0.55 * s], radius=int(0.08 * s), fill=green
    )
    d.rectangle([cx - 0.07 * s, cy - 0.45 * s, cx + 0.07 * s, cy - 0.2 * s], fill=green)
    d.rectangle([cx - 0.09 * s, cy - 0.52 * s, cx + 0.09 * s, cy - 0.44 * s], fill=(40, 40, 40))
    d.rectangle([cx - 0.18 * s, cy + 0.05 * s, cx + 0.18 * s, cy + 0.18 * s], fill=(240, 240, 220))


DRAW = {"storm-blue-jacket": _jacket, "sunset-tote": _tote, "forest-bottle": _bottle}


def product_photo(tag: str, seed: int, *, size: int = 320) -> Image.Image:
    """A generated photo of the demo product ``tag`` (deterministic for a seed)."""
    rng = random.Random(f"{tag}:{seed}")
    img = _background(rng, size)
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    s = size * rng.uniform(0.55, 0.8)
    cx, cy = size / 2 + rng.uniform(-0.12, 0.12) * size, size / 2 + rng.uniform(-0.1, 0.1) * size
    DRAW[tag](ImageDraw.Draw(layer), cx, cy, s, rng)
    layer = layer.rotate(rng.uniform(-20, 20), resample=Image.Resampling.BICUBIC, center=(cx, cy))
    img.paste(layer, (0, 0), layer)
    light = rng.uniform(0.8, 1.15)
    img = img.point(lambda v: min(255, int(v * light)))
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    return img


def blend_photo(a: str, b: str, seed: int) -> Image.Image:
    """Two products at once: a photo the model should not be sure about."""
    return Image.blend(product_photo(a, seed), product_photo(b, seed + 1000), 0.5)


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def training_set(per_tag: int = 8) -> dict[str, list[bytes]]:
    return {tag: [jpeg(product_photo(tag, i)) for i in range(per_tag)] for tag in TAGS}


def uploads() -> dict[str, bytes]:
    """New photos to upload (unseen seeds), one ambiguous photo and one broken file."""
    files = {f"uploads/{tag}-{i}.jpg": jpeg(product_photo(tag, 100 + i)) for tag in TAGS for i in range(2)}
    files["uploads/mixed-shelf.jpg"] = jpeg(blend_photo("storm-blue-jacket", "sunset-tote", 7))
    files["uploads/notes.jpg"] = b"this is a text file with a .jpg name, not a photo\n"
    return files


def taxonomy_json() -> bytes:
    return json.dumps(TAXONOMY, ensure_ascii=False, indent=1).encode()
