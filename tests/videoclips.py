"""Video clips generated with PyAV for tests: known shots, known cuts, and broken files.

Every clip is built in memory in well under a second; nothing is downloaded.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import av
import numpy as np
from tagsmith.tagmodels import ModelKind, TagModel
from tagsmith.taxonomy import TagDefinition, Taxonomy

from tests.fakes import COLOURS

RED_BLUE_RED = (("red", 3.0), ("blue", 2.0), ("red", 3.0))  # cuts at 3 s and 5 s, 8 s long


def colour_clip(
    shots: Sequence[tuple[str | tuple[int, int, int], float]] = RED_BLUE_RED,
    *,
    codec: str = "libx264",
    container: str = "mp4",
    fps: int = 10,
    size: tuple[int, int] = (160, 120),
    keyframe_at_cuts: bool = True,
    gop: int = 250,
    noise: int = 12,
    flicker: Sequence[float] = (),
) -> bytes:
    """Solid-colour shots (names from ``tests.fakes.COLOURS``, or RGB) with a little noise, so a colour
    model sees them as in the image tests. ``flicker``: times (s) at which one frame is grey."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"g": str(gop), "preset": "ultrafast", "sc_threshold": "0"}
        elif codec == "libvpx-vp9":
            stream.options = {"g": str(gop), "deadline": "realtime", "cpu-used": "8"}
        rng = np.random.default_rng(0)
        flicker_frames = {round(t * fps) for t in flicker}
        n = 0
        for name, seconds in shots:
            for k in range(round(seconds * fps)):
                colour = COLOURS[name] if isinstance(name, str) else name
                rgb = (128, 128, 128) if n in flicker_frames else colour
                a = np.empty((size[1], size[0], 3), dtype=np.int16)
                a[...] = rgb
                a += rng.integers(-noise, noise + 1, size=a.shape, dtype=np.int16)
                frame = av.VideoFrame.from_ndarray(np.clip(a, 0, 255).astype(np.uint8), format="rgb24")
                if keyframe_at_cuts and k == 0:
                    frame.pict_type = av.video.frame.PictureType.I
                for packet in stream.encode(frame):
                    out.mux(packet)
                n += 1
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def audio_only(container: str = "mp4", seconds: float = 1.0) -> bytes:
    """An AAC sine tone and no video stream."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream("aac", rate=44_100)
        stream.layout = "mono"
        samples = int(44_100 * seconds)
        t = np.arange(samples) / 44_100
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, samples, 1024):
            chunk = tone[start : start + 1024]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
            frame.sample_rate = 44_100
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def unknown_codec_clip() -> bytes:
    """A Matroska file whose video track names a codec nobody has (``V_ZZZZ4/ISO/AVC`` instead of
    ``V_MPEG4/ISO/AVC``): the container parses, the codec cannot be decoded."""
    data = bytearray(colour_clip((("red", 1.0),), container="matroska"))
    at = data.find(b"V_MPEG4/ISO/AVC")
    assert at > 0, "an H.264 Matroska track has the codec id V_MPEG4/ISO/AVC"
    data[at : at + 7] = b"V_ZZZZ4"
    return bytes(data)


def corrupt_clip() -> bytes:
    """A real MP4 whose index (``moov``) survives and whose media data (``mdat``) is garbage."""
    data = bytearray(colour_clip((("red", 2.0),)))
    mdat = data.find(b"mdat")
    size = int.from_bytes(data[mdat - 4 : mdat], "big")
    rng = np.random.default_rng(1)
    data[mdat + 4 : mdat - 4 + size] = rng.integers(0, 256, size - 8, dtype=np.uint8).tobytes()
    return bytes(data)


def truncated_clip() -> bytes:
    """The first 200 bytes of an MP4 (an upload cut short): no index, no frames."""
    return colour_clip((("red", 2.0),))[:200]


def install_colour_model(
    c: Any,
    *,
    tenant: str = "acme",
    threshold: float = 0.6,
    taxonomy: Taxonomy | None = None,
    version: str = "v1",
) -> TagModel:
    """Activate an exclusive blue/green/red model made from colour prototypes of the components'
    encoder (no training): its behaviour does not move when training or calibration changes."""
    from PIL import Image

    from tests.fakes import solid_jpeg

    tags = ("blue", "green", "red")
    protos = c.encoder.embed(
        [Image.open(io.BytesIO(solid_jpeg(COLOURS[t], noise=12))).convert("RGB") for t in tags]
    )
    model = TagModel(
        tenant=tenant, model_id="colour", version=version, kind=ModelKind.EXCLUSIVE, encoder_id=c.encoder.encoder_id,
        tags=tags, coef=(12.0 * protos).astype(np.float32), intercept=np.zeros(3, np.float32),
        thresholds=np.full(3, threshold, np.float32), review_floor=0.2,
        taxonomy=taxonomy or Taxonomy(tuple(TagDefinition(t) for t in tags)),
    )  # fmt: skip
    c.models.save_version(model)
    c.models.activate(tenant, "colour", version)
    if taxonomy is not None:
        c.models.save_taxonomy(tenant, "colour", taxonomy)
    c.active_models.invalidate(tenant)
    return model
