"""Windows of a video (issue 6): a scan cut at keyframes and resumed from a cursor gives exactly the
frames of one pass; checkpoints are plain arrays; job messages and job status are strict data."""

from __future__ import annotations

import io
import json
from typing import Any

import av
import numpy as np
import pytest
from tagsmith.errors import TransientError
from tagsmith.records import SourceObject, TextLine
from tagsmith.video import FrameScan, SamplingPolicy, ScanCursor, VideoReader
from tagsmith.video.jobstate import (
    JobStatus,
    VideoJobMessageError,
    VideoJobState,
    WindowDone,
    decode_window,
    encode_window,
    parse_job_message,
)

from tests.videoclips import colour_clip

SHOTS = (("red", 3.0), ("blue", 2.0), ("red", 3.0), ("blue", 4.0), ("green", 5.0), ("red", 3.0))


def b_frame_clip(seconds: float = 12.0, fps: int = 25) -> bytes:
    """A clip with B-frames (frames decoded out of presentation order) and a moving edge."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        stream.options = {"g": "40", "bf": "3", "preset": "veryfast"}
        for i in range(round(seconds * fps)):
            a = np.zeros((96, 128, 3), np.uint8)
            a[:, : (i * 3) % 128] = (200, 40, 40)
            a[:, (i * 3) % 128 :] = (40, 40, 200) if (i // 50) % 2 else (40, 200, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


CLIPS = {
    "h264 cuts": colour_clip(SHOTS, gop=25),
    "h264 b-frames": b_frame_clip(),
    "vp9 webm": colour_clip(SHOTS, codec="libvpx-vp9", container="webm", gop=25),
}


def one_pass(data: bytes, policy: SamplingPolicy) -> list[tuple[float, bool]]:
    with VideoReader(io.BytesIO(data), policy) as video:
        return [(f.time, f.keyframe) for f in video.frames()]


def windowed(data: bytes, policy: SamplingPolicy, window: float) -> tuple[list[tuple[float, bool]], int]:
    frames: list[tuple[float, bool]] = []
    cursor: ScanCursor | None = None
    windows = 0
    while True:
        start = cursor.resume_time if cursor else 0.0
        with VideoReader(io.BytesIO(data), policy) as video:
            frames += [(f.time, f.keyframe) for f in video.frames(cursor=cursor, until=start + window)]
            # the cursor goes through JSON, as it does between invocations
            cursor = (
                None
                if video.cursor is None
                else ScanCursor.from_dict(json.loads(json.dumps(video.cursor.to_dict())))
            )
        windows += 1
        if cursor is None:
            return frames, windows
        assert cursor.resume_time >= start + window - 1e-6  # windows end at a keyframe past ``until``


@pytest.mark.parametrize("clip", list(CLIPS))
@pytest.mark.parametrize(
    "policy",
    [
        SamplingPolicy(every=2.0),
        SamplingPolicy(every=0.7),
        SamplingPolicy(every=None),
        SamplingPolicy(every=1.0, keyframes=False),
    ],
    ids=["kf+2s", "kf+0.7s", "kf only", "1s no kf"],
)
@pytest.mark.parametrize("window", [0.5, 2.0, 4.5])
def test_windows_give_exactly_the_frames_of_one_pass(
    clip: str, policy: SamplingPolicy, window: float
) -> None:
    data = CLIPS[clip]
    expected = one_pass(data, policy)
    got, windows = windowed(data, policy, window)
    assert got == expected
    assert windows >= 3


class CountingFile(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_bytes = 0

    def read(self, n: int | None = -1) -> bytes:
        chunk = super().read(n)
        self.read_bytes += len(chunk)
        return chunk

    def readinto(self, b: Any) -> int:
        n = super().readinto(b)
        self.read_bytes += n
        return n


def test_a_late_window_seeks_instead_of_reading_from_the_start() -> None:
    data = colour_clip((("red", 30.0), ("blue", 30.0)), gop=50, size=(320, 240), noise=40)
    policy = SamplingPolicy(every=2.0)
    cursor = None
    with VideoReader(io.BytesIO(data), policy) as video:
        list(video.frames(until=50.0))
        cursor = video.cursor
    assert cursor is not None and cursor.resume_time >= 50.0
    f = CountingFile(data)
    with VideoReader(f, policy) as video:  # type: ignore[arg-type]
        frames = [x.time for x in video.frames(cursor=cursor, until=cursor.resume_time + 60)]
    assert frames[0] == cursor.resume_time and video.cursor is None
    assert f.read_bytes < 0.4 * len(data)  # the header, the index and the last seconds


def test_a_window_checkpoint_round_trips_as_plain_arrays() -> None:
    scan = FrameScan(
        times=np.array([0.0, 2.0, 3.5]),
        keyframes=np.array([True, False, True]),
        # by each encoder a model needs (two recipes here): both come back
        embeddings={
            "effnet-lite2-260-s567g-c70-v1": np.arange(12, dtype=np.float32).reshape(3, 4),
            "effnet-lite2-260-s567g-v1": -np.arange(6, dtype=np.float32).reshape(3, 2),
        },
        thumbnails=[b"\xff\xd8a", b"", b"\xff\xd8ccc"],
        text_lines=(TextLine("LAKTOSFRI", 0.9, ((1, 2), (3, 4)), time=2.0),),
        seconds={"decode": 1.0, "embed": 2.0, "ocr": 0.5},
    )
    back = decode_window(encode_window(scan), thumbnails=True)
    assert back.times.tolist() == [0.0, 2.0, 3.5] and back.keyframes.tolist() == [True, False, True]
    assert back.embeddings.keys() == scan.embeddings.keys()
    for encoder_id, rows in scan.embeddings.items():
        assert (
            np.array_equal(back.embeddings[encoder_id], rows)
            and back.embeddings[encoder_id].dtype == np.float32
        )
    assert back.thumbnails == scan.thumbnails and back.text_lines == scan.text_lines
    assert back.seconds == scan.seconds
    assert decode_window(encode_window(scan)).thumbnails == []  # only when asked
    no_ocr = decode_window(encode_window(FrameScan(scan.times, scan.keyframes, scan.embeddings, [], None)))
    assert no_ocr.text_lines is None


def test_a_checkpoint_holding_a_pickle_is_refused() -> None:
    buf = io.BytesIO()
    np.savez(buf, times=np.array([object()], dtype=object))
    with pytest.raises(TransientError, match="unreadable"):
        decode_window(buf.getvalue())


def test_windows_join_end_to_end_and_text_keeps_its_first_time() -> None:
    def part(times: list[float], text: list[tuple[str, float]]) -> FrameScan:
        n = len(times)
        return FrameScan(
            np.array(times), np.zeros(n, bool), {"enc": np.ones((n, 2), np.float32)}, [b""] * n,
            tuple(TextLine(t, 0.9, time=at) for t, at in text), {"decode": 1.0},
        )  # fmt: skip

    joined = FrameScan.join([part([0.0, 1.0], [("A", 0.0)]), part([2.0], [("B", 2.0), ("A", 2.0)])])
    assert joined.times.tolist() == [0.0, 1.0, 2.0] and joined.embeddings["enc"].shape == (3, 2)
    assert [(x.text, x.time) for x in joined.text_lines or ()] == [("A", 0.0), ("B", 2.0)]
    assert joined.seconds == {"decode": 2.0}


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        {"Records": []},
        {"video_job": {"tenant": "acme", "path": "a.mp4", "etag": "e"}},
        {"video_job": {"tenant": "Not A Tenant", "path": "a.mp4", "etag": "e", "step": 0}},
        {"video_job": {"tenant": "acme", "path": "", "etag": "e", "step": 0}},
        {"video_job": {"tenant": "acme", "path": "a.mp4", "etag": "e", "step": -1}},
    ],
)
def test_a_message_that_is_not_a_job_step_is_refused_with_what_was_wrong(body: Any) -> None:
    with pytest.raises(VideoJobMessageError, match="video job message"):
        parse_job_message(json.dumps(body) if not isinstance(body, str) else body)


def test_job_status_round_trips_and_summarises_progress() -> None:
    job = VideoJobState(
        tenant="acme", path="ads/long.mp4", source=SourceObject("assets", "acme/ads/long.mp4", "e1", 10),
        status=JobStatus.RUNNING,
        info={"mime": "video/mp4", "codec": "h264", "width": 1280, "height": 720, "duration": 600.0, "fps": 30.0},
        sampling={"every": 2.0, "keyframes": True}, encoder_id="enc", window_seconds=120.0, step=2,
        cursor={"resume_pts": 1, "resume_time": 241.0}, windows=(WindowDone(0, 0.0, 120.5, 61, 7.5), WindowDone(1, 120.5, 241.0, 60, 7.1)),
    )  # fmt: skip
    back = VideoJobState.from_json(job.to_json())
    assert back == job
    assert job.summary() == "running: 2 of about 5 windows (40%), next step 2"
    assert job.message() == {"video_job": {"tenant": "acme", "path": "ads/long.mp4", "etag": "e1", "step": 2}}
    with pytest.raises(Exception, match="not valid JSON"):
        VideoJobState.from_json(b'{"tenant": "acme"}')
