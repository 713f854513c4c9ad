"""Frame scores -> segments: hysteresis, gap bridging, boundaries."""

from __future__ import annotations

import numpy as np
import pytest
from tagsmith.video import SegmentPolicy, find_spans, hysteresis

POLICY = SegmentPolicy(enter=0.6, stay=0.3, max_gap=1.0)


def spans(
    scores: list[float], *, every: float = 1.0, end: float | None = None, policy: SegmentPolicy = POLICY
):
    t = np.arange(len(scores)) * every
    return [(s.start, s.end) for s in find_spans(t, np.array(scores), end_time=end, policy=policy)]


def test_hysteresis_enters_high_and_stays_while_above_the_lower_threshold() -> None:
    assert hysteresis(np.array([0.5, 0.7, 0.4, 0.31, 0.29, 0.5]), enter=0.6, stay=0.3).tolist() == [
        False, True, True, True, False, False,
    ]  # fmt: skip


def test_a_segment_never_starts_below_the_high_threshold() -> None:
    assert spans([0.5, 0.5, 0.5, 0.5]) == []


def test_one_flickering_frame_does_not_split_a_segment() -> None:
    # GIVEN a tag seen for 8 s with one frame lost in the middle
    scores = [0.9, 0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.9]
    # THEN it is one segment over the whole clip
    assert spans(scores, end=8.0) == [(0.0, 8.0)]


def test_an_absence_longer_than_max_gap_splits_segments() -> None:
    scores = [0.9, 0.9, 0.1, 0.1, 0.1, 0.9, 0.9]
    assert spans(scores, end=7.0) == [(0.0, 2.0), (5.0, 7.0)]


def test_a_segment_ends_at_the_next_sample_and_the_last_one_at_the_end_of_the_video() -> None:
    t = np.array([0.0, 2.0, 3.0, 4.0, 5.0, 6.0])  # a keyframe at the 3 s cut and at the 5 s cut
    s = np.array([0.1, 0.1, 0.9, 0.8, 0.1, 0.1])
    [span] = find_spans(t, s, end_time=8.0, policy=POLICY)
    assert (span.start, span.end) == (3.0, 5.0)
    [tail] = find_spans(t, np.array([0.1, 0.1, 0.1, 0.1, 0.9, 0.9]), end_time=8.0, policy=POLICY)
    assert (tail.start, tail.end) == (5.0, 8.0)


def test_peak_and_mean_come_from_the_segment_frames() -> None:
    t = np.arange(6.0)
    s = np.array([0.0, 0.7, 0.95, 0.1, 0.8, 0.0])
    [span] = find_spans(t, s, end_time=6.0, policy=SegmentPolicy(enter=0.6, stay=0.3, max_gap=1.0))
    assert (span.first, span.last, span.peak_index) == (1, 4, 2)
    assert span.peak == pytest.approx(0.95)
    assert span.mean == pytest.approx((0.7 + 0.95 + 0.8) / 3)  # the bridged frame does not dilute it


def test_short_segments_are_dropped_when_asked() -> None:
    assert (
        spans(
            [0.1, 0.9, 0.1, 0.1, 0.1],
            end=5.0,
            policy=SegmentPolicy(enter=0.6, stay=0.3, max_gap=0.5, min_duration=2.0),
        )
        == []
    )


def test_no_frames_no_segments_and_mismatched_arrays_are_refused() -> None:
    assert find_spans(np.array([]), np.array([]), end_time=0.0, policy=POLICY) == []
    with pytest.raises(ValueError):
        find_spans(np.arange(3.0), np.zeros(2), end_time=3.0, policy=POLICY)


def test_a_gap_that_starts_at_a_keyframe_is_a_cut_and_is_not_bridged() -> None:
    t = np.array([0.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    s = np.array([0.9, 0.9, 0.1, 0.1, 0.9, 0.9])
    policy = SegmentPolicy(enter=0.6, stay=0.3, max_gap=2.0)
    assert len(find_spans(t, s, end_time=8.0, policy=policy)) == 1  # without cut information: bridged
    cuts = np.array([True, False, True, False, True, False])  # keyframes at 0, 3 and 5 s
    got = [(x.start, x.end) for x in find_spans(t, s, end_time=8.0, policy=policy, keyframes=cuts)]
    assert got == [(0.0, 3.0), (5.0, 8.0)]
