"""Cold start and memory of each Lambda handler: import, first invocation, peak RSS.

    .venv/bin/python -m benchmarks.coldstart                # every handler's import; ingest's first call
    .venv/bin/python -m benchmarks.coldstart --images 1000  # and ingest's RSS after that many images
    .venv/bin/python -m benchmarks.coldstart --handlers ingest --images 200 --photo-side 4032  # 12 MP

Each handler module is imported in a fresh Python process (what a Lambda container's init does):
the seconds that takes and the process's peak RSS after it. For the ingest handler the process
then handles a first SQS event (one photo: models loaded, the encoder's ONNX session built and
run) on in-memory adapters injected with ``components.set`` (nothing on the network: the
figure is the handler's own start-up, not S3's), then ``--images`` more photos in batches of 10 with
the peak RSS after each 100, to show whether memory grows with the images seen.

The tenant's model is trained once beforehand, in this process, on generated photos (two colours)
and handed to each child as a folder of objects (``FileObjectStore``), so a child pays for
nothing but its own start. The photos are 640 x 480; with ``--photo-side N`` they are N px wide and
3:4 (4032: a 12 MP phone photo; a few distinct pictures, each upload made unique by bytes after
the JPEG's end, so the embedding cache never answers for the encoder).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = ("ingest", "train", "search", "review", "backfill", "video", "webhooks", "sweep")
CACHE = ROOT / "var" / "bench-cache" / "onnx"


def _rss_mb() -> float:
    """Peak RSS of this process (VmHWM: ru_maxrss would carry over the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _photo(seed: int) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = np.array([(200, 40, 40), (40, 60, 200)][seed % 2], dtype=np.int16)
    pixels = np.clip(base + rng.integers(-30, 30, (480, 640, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _settings(root: Path) -> Any:
    from tagsmith.config import Settings

    return Settings(data_bucket="data", assets_bucket="assets", encoder_cache_dir=CACHE)


def _camera_photo(seed: int, side: int) -> bytes:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(_photo(seed))) as im:
        big = im.resize((side, side * 3 // 4), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    big.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def prepare(root: Path, images: int, photo_side: int | None = None) -> None:
    """Train the tenant's model and upload ``images + 1`` photos, into ``root`` (a folder store)."""
    from tagsmith.search import InMemorySearchIndex
    from tagsmith.storage import FileObjectStore
    from tagsmith.trainer import Example
    from tagsmith.wiring import build

    store = FileObjectStore(root=root)
    c = build(_settings(root), store=store, index=InMemorySearchIndex())
    examples = [
        Example(("red", "blue")[i % 2], f"ex-{i}.jpg", functools.partial(_photo, 1000 + i)) for i in range(16)
    ]
    c.trainer.train(tenant="acme", model_id="colour", examples=examples)
    bases = [_camera_photo(i, photo_side) for i in range(8)] if photo_side else []
    for i in range(images + 1):
        data = bases[i % 8] + i.to_bytes(4, "big") if bases else _photo(i)  # decoders ignore the tail
        store.put("assets", f"acme/cold/{i:05d}.jpg", data, content_type="image/jpeg")


class _NoIndex:
    """A search index that keeps nothing: the in-memory one holds every document, which would
    show as the handler's memory growing with the images seen."""

    def ensure_tenant(self, tenant: str) -> None:
        pass

    def upsert(self, record: Any, taxonomies: Any) -> None:
        pass

    def delete(self, tenant: str, asset_key: str, *, revision: int | None = None) -> None:
        pass

    def bulk_upsert(self, items: Any, tenant: str) -> list[Any]:
        list(items)
        return []


def _event(keys: list[str]) -> dict[str, Any]:
    records = []
    for n, key in enumerate(keys):
        body = {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": "assets"}, "object": {"key": key}},
                }
            ]
        }
        records.append(
            {
                "messageId": f"m-{n}",
                "receiptHandle": f"r-{n}",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:tagsmith-ingest",
            }
        )
    return {"Records": records}


def child(name: str, root: str, images: int) -> dict[str, Any]:
    """Runs in the fresh process: import the handler, and for ingest invoke it."""
    import importlib

    started = time.perf_counter()
    module = importlib.import_module(f"functions.{name}.handler")
    out: dict[str, Any] = {
        "handler": name,
        "import_s": time.perf_counter() - started,
        "rss_import_mb": _rss_mb(),
    }
    if name != "ingest":
        return out
    from tagsmith.keys import records_prefix
    from tagsmith.local.runtime import LambdaContext
    from tagsmith.storage import FileObjectStore
    from tagsmith.wiring import build

    store = FileObjectStore(root=Path(root))
    module.components.set(build(_settings(Path(root)), store=store, index=_NoIndex()))  # type: ignore[arg-type]
    module.backoff.sqs = lambda: None  # no failed message to delay here
    keys = [f"acme/cold/{i:05d}.jpg" for i in range(images + 1)]
    started = time.perf_counter()
    response = module.handler(_event(keys[:1]), LambdaContext("tagsmith-ingest"))
    out["first_invocation_s"] = time.perf_counter() - started
    out["first_failures"] = len(response.get("batchItemFailures", []))
    out["rss_first_mb"] = _rss_mb()
    rss = []
    started = time.perf_counter()
    for i in range(1, len(keys), 10):
        module.handler(_event(keys[i : i + 10]), LambdaContext("tagsmith-ingest"))
        if i % 100 == 91 or i + 10 >= len(keys):
            rss.append((min(i + 9, images), round(_rss_mb(), 1)))
    if images:
        out["images_per_s_warm"] = images / (time.perf_counter() - started)
    out["rss_after_images_mb"] = rss
    out["records_written"] = sum(1 for _ in store.list("data", records_prefix("acme")))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.coldstart", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--images", type=int, default=200, help="photos ingested after the first call")
    parser.add_argument("--handlers", default=",".join(HANDLERS))
    parser.add_argument("--photo-side", type=int, help="camera-sized photos: this many px wide, 3:4")
    parser.add_argument("--child", nargs=3, metavar=("NAME", "ROOT", "IMAGES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        name, root, images = args.child
        print(json.dumps(child(name, root, int(images))))
        return 0
    with tempfile.TemporaryDirectory(prefix="tagsmith-coldstart-") as tmp:
        prepare(Path(tmp), args.images, args.photo_side)
        env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "TAGSMITH_DATA_BUCKET": "data",
               "TAGSMITH_ASSETS_BUCKET": "assets"}  # fmt: skip
        results = []
        for name in args.handlers.split(","):
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.coldstart", "--child", name, tmp, str(args.images)],
                cwd=ROOT, env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                results.append({"handler": name, "error": done.stderr.strip().splitlines()[-1:]})
            else:
                results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
