"""Backfill throughput: re-tag a library of a few thousand assets after a promotion, locally.

Starts the local stack (moto S3/SQS, osmem, every function's Lambda-style poller) on free ports in
a temporary home, trains a small colour model (version 1), uploads ``n`` photos and lets the ingest
function tag them, records a human decision on some of them, then trains version 2: its promotion
event starts the backfill, and the figure is assets re-tagged per second from promotion to the
backfill reporting complete. It also checks that every record ends on version 2 and that every
human decision survived.

One poller per function runs one batch at a time here (Lambda would run up to the function's
``max_concurrency`` in parallel), so this is the floor of one worker on 2 cores, not AWS capacity.

    python -m benchmarks.backfill            # n from TAGSMITH_BENCH_BACKFILL_ASSETS, default 3000
"""

from __future__ import annotations

import functools
import io
import json
import os
import socket
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from tagsmith.records import AssetRecord, TagAssignment

TENANT = "bench"
MODEL = "colour"
COLOURS = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 200), "yellow": (220, 210, 40)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _photo(rgb: tuple[int, int, int], seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(rgb) + rng.normal(0, 30, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _train(c: Any) -> str:
    from tagsmith.examples import Example
    from tagsmith.trainer import TrainingOptions

    examples = [
        Example(tag, f"{tag}-{i}", functools.partial(_photo, rgb, 10_000 + i))
        for tag, rgb in COLOURS.items()
        for i in range(5)
    ]
    return str(
        c.trainer.train(
            tenant=TENANT, model_id=MODEL, examples=examples, options=TrainingOptions(threshold=0.6)
        ).version
    )


def _record(c: Any, path: str) -> AssetRecord:
    from tagsmith.keys import AssetKey

    found = c.records.get(AssetKey(TENANT, path))
    if found is None:
        raise RuntimeError(f"no asset record for {path}")
    return cast("AssetRecord", found[0])


def _with_tags(record: AssetRecord, *, tags: tuple[TagAssignment, ...]) -> AssetRecord:
    return replace(record, tags=tags)


def _versions(c: Any, paths: list[str]) -> dict[str, int]:
    from tagsmith.keys import AssetKey

    counts: dict[str, int] = {}
    for p in paths:
        got = c.records.get(AssetKey(TENANT, p))
        v = got[0].models.get(MODEL, "none") if got else "missing"
        counts[v] = counts.get(v, 0) + 1
    return counts


def run(n: int | None = None, *, humans: int = 50, timeout: float = 1800.0) -> dict[str, Any]:
    """Run the scenario; returns the figures (assets/s) and the checks."""
    from tagsmith.keys import AssetKey
    from tagsmith.local.stack import LocalStack, StackConfig
    from tagsmith.records import Source, TagAssignment, TagState
    from tagsmith.wiring import build

    n = n or int(os.environ.get("TAGSMITH_BENCH_BACKFILL_ASSETS", 3000))
    saved = dict(os.environ)  # the stack exports its endpoints for in-process handlers
    # the capacity is measured, not the default rate limit (50 assets/s)
    os.environ["TAGSMITH_BACKFILL_RATE"] = os.environ.get("TAGSMITH_BENCH_BACKFILL_RATE", "100000")
    with tempfile.TemporaryDirectory(prefix="tagsmith-bench-backfill-") as home:
        config = StackConfig(home=Path(home), moto_port=_free_port(), opensearch_port=_free_port())
        stack = LocalStack(config=config)
        info = stack.start()
        try:
            c = build(info.settings())
            v1 = _train(c)
            stack.wait_idle(timeout=120)  # the promotion of v1 starts a backfill of nothing
            colours = list(COLOURS.values())
            paths = [f"library/{i // 1000:03d}/{i:06d}.jpg" for i in range(n)]
            t0 = time.perf_counter()
            for i, p in enumerate(paths):
                c.store.put(
                    c.settings.assets_bucket,
                    f"{TENANT}/{p}",
                    _photo(colours[i % len(colours)], i),
                    content_type="image/jpeg",
                )
            upload_s = time.perf_counter() - t0
            if not stack.wait_idle(timeout=timeout):
                raise RuntimeError("the first ingest did not finish")
            ingest_s = time.perf_counter() - t0
            first = _versions(c, paths)
            if first.get(v1) != n:
                raise RuntimeError(f"first ingest incomplete: {first}")

            # a reviewer rejected the AI's tag on some assets: the backfill must keep that
            decided: dict[str, TagAssignment] = {}
            for p in paths[:humans]:
                record = _record(c, p)
                ai = next(t for t in record.tags if t.model == MODEL and t.source is Source.AI)
                human = TagAssignment(MODEL, ai.tag, TagState.REJECTED, Source.HUMAN, decided_by="bench")
                c.records.update(AssetKey(TENANT, p), functools.partial(_with_tags, tags=(human,)))
                decided[p] = human

            time.sleep(1.1)  # version ids are named by the second
            t1 = time.perf_counter()
            v2 = _train(c)
            train_s = time.perf_counter() - t1
            backfill_id = f"{MODEL}-{v2}"
            status = None
            while time.perf_counter() - t1 < timeout:
                time.sleep(2)
                if backfill_id in c.backfill.list_ids(TENANT):
                    status = c.backfill.status(TENANT, backfill_id)
                    if status.complete:
                        break
            backfill_s = time.perf_counter() - t1
            if status is None or not status.complete:
                raise RuntimeError(f"backfill did not complete in {timeout} s: {status and status.to_dict()}")
            after = _versions(c, paths)
            kept = sum(1 for p, h in decided.items() if h in _record(c, p).tags)
        finally:
            stack.stop()
            process = getattr(stack._osmem, "process", None)
            if process is not None and process.stdout is not None and not process.stdout.closed:
                process.stdout.close()
            os.environ.clear()
            os.environ.update(saved)
    return {
        "assets": n,
        "upload_assets_per_s": round(n / upload_s, 1),
        "first_ingest_assets_per_s": round(n / ingest_s, 1),
        "training_seconds": round(train_s, 1),
        "backfill_seconds": round(backfill_s, 1),
        "backfill_assets_per_s": round(n / backfill_s, 1),
        "backfill_counts": status.counts,
        "backfill_messages": status.progress.messages,
        "records_on_new_version": after.get(v2, 0),
        "human_decisions_kept": f"{kept}/{len(decided)}",
        "note": "local stack on this machine: one poller per function, one batch at a time; "
        "re-tag reuses cached embeddings (decode + models + record + index per asset)",
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
