"""Decoding and sampling generated clips: known cuts at 3 s and 5 s, H.264 and VP9, MP4/WebM/MKV."""

from __future__ import annotations

import io

import pytest
from tagsmith.errors import UnsupportedMediaError
from tagsmith.video import SamplingPolicy, VideoReader

from tests.videoclips import audio_only, colour_clip, corrupt_clip, truncated_clip, unknown_codec_clip

FORMATS = [
    ("libx264", "mp4", "video/mp4"),
    ("libvpx-vp9", "webm", "video/webm"),
    ("libx264", "matroska", "video/x-matroska"),
]


def sample(data: bytes, **policy: object) -> tuple[VideoReader, list]:
    with VideoReader(io.BytesIO(data), SamplingPolicy(**policy)) as video:  # type: ignore[arg-type]
        return video, list(video.frames())


def colour_of(frame) -> str:
    r, _g, b = frame.image.resize((1, 1)).getpixel((0, 0))
    return "red" if r > b else "blue"


@pytest.mark.parametrize(("codec", "container", "mime"), FORMATS)
def test_frames_are_keyframes_plus_every_n_seconds(codec: str, container: str, mime: str) -> None:
    video, frames = sample(colour_clip(codec=codec, container=container), every=2.0)
    assert (video.info.mime, video.info.width, video.info.height) == (mime, 160, 120)
    assert video.info.duration == pytest.approx(8.0, abs=0.15)
    # keyframes at 0, 3 (cut), 5 (cut); the 2 s grid adds 2, 4 and 6 (8 is past the end)
    assert [round(f.time, 2) for f in frames] == [0.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert [f.keyframe for f in frames] == [True, False, True, False, True, False]
    assert [colour_of(f) for f in frames] == ["red", "red", "blue", "blue", "red", "red"]


def test_keyframes_only_decodes_nothing_but_keyframes() -> None:
    video, frames = sample(colour_clip(), every=None)
    assert [round(f.time, 2) for f in frames] == [0.0, 3.0, 5.0]
    assert video.frames_decoded == 3  # of 80 frames: the GOPs' other frames were never decoded


def test_a_grid_point_near_a_keyframe_reuses_the_keyframe() -> None:
    # GIVEN keyframes every second (gop 10 at 10 fps) and a 1 s grid: every grid point is a keyframe
    video, frames = sample(colour_clip(gop=10, keyframe_at_cuts=False), every=1.0)
    assert [round(f.time, 2) for f in frames] == [float(t) for t in range(8)]
    assert all(f.keyframe for f in frames)
    assert video.frames_decoded == 8


def test_long_gops_are_decoded_up_to_the_last_sample_they_hold() -> None:
    # GIVEN one keyframe for 8 s of video and samples every 2 s
    video, frames = sample(colour_clip(keyframe_at_cuts=False), every=2.0, keyframes=False)
    assert [round(f.time, 2) for f in frames] == [0.0, 2.0, 4.0, 6.0]
    assert video.frames_decoded < 80  # frames after the 6 s sample were not decoded


def test_frames_are_downscaled_to_the_frame_size() -> None:
    _video, frames = sample(colour_clip(size=(320, 180)), every=None, frame_size=64)
    assert frames[0].image.size == (64, 36)


def test_max_frames_widens_the_interval() -> None:
    _video, frames = sample(colour_clip(), every=0.5, keyframes=False, max_frames=8)
    assert 3 <= len(frames) <= 8


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (audio_only(), "no video stream"),
        (unknown_codec_clip(), "video codec"),
        (corrupt_clip(), "could be decoded"),
        (truncated_clip(), "not a readable video"),
        (b"", "not a readable video"),
        (b"just some text, not a video at all" * 4, "not a readable video"),
    ],
    ids=["audio-only", "unknown-codec", "corrupt", "truncated", "empty", "text"],
)
def test_bad_videos_raise_unsupported_media_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(UnsupportedMediaError, match=reason):
        sample(data, every=1.0)


def test_frame_size_limit_is_checked_before_decoding() -> None:
    with pytest.raises(UnsupportedMediaError, match="pixel limit"):
        sample(colour_clip(), max_pixels=100 * 100)


def test_a_container_outside_the_supported_list_is_refused_by_name() -> None:
    avi = colour_clip((("red", 1.0),), codec="mpeg4", container="avi")
    with pytest.raises(UnsupportedMediaError, match=r"AVI.*not supported; upload MP4, MOV, WebM or MKV"):
        sample(avi)


def test_a_stream_without_keyframes_is_read_in_bounded_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    import tagsmith.video.decode as decode

    # GIVEN chunks of at most 7 packets (the real cap is 600) and one keyframe in 80 frames
    monkeypatch.setattr(decode, "MAX_GOP_PACKETS", 7)
    _video, frames = sample(colour_clip(keyframe_at_cuts=False), every=1.0, keyframes=False)
    assert [round(f.time, 2) for f in frames] == [float(t) for t in range(8)]
    assert [colour_of(f) for f in frames] == ["red"] * 3 + ["blue"] * 2 + ["red"] * 3
