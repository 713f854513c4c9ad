"""Frame scores -> segments: pure functions over NumPy arrays.

A tag's confidence over sampled frames flickers (a hand passes in front of the product, the camera
pans). Two thresholds and a gap tolerance keep that from fragmenting a segment:

* a segment *enters* at a frame at or above ``enter``;
* it *stays* while frames are at or above the lower ``stay``;
* when it drops out and comes back (above ``enter``) within ``max_gap`` seconds, the two runs are
  one segment, unless it dropped out at a keyframe: encoders put keyframes at shot cuts, and a tag
  that vanishes at a cut left the picture for real.

A frame stands for the time until the next sample, so a segment is ``[time of its first frame,
time of the frame after its last)``, or up to the end of the video. Keyframes at shot cuts make both
ends exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SegmentPolicy:
    """``enter``/``stay``: the two hysteresis thresholds (``enter`` is lowered to a tag's own
    threshold when that is lower, and never below the model's review floor); ``max_gap``: seconds
    of absence bridged; ``min_duration``: shorter segments are dropped."""

    enter: float = 0.5
    stay: float = 0.3
    max_gap: float = 2.0  # one missed sample at the default 2 s sampling
    min_duration: float = 0.0


@dataclass(frozen=True)
class Span:
    """Frames ``first..last`` (inclusive) of one segment, its time range, and its confidences."""

    first: int
    last: int
    start: float
    end: float
    peak: float
    mean: float
    peak_index: int


def hysteresis(scores: np.ndarray, *, enter: float, stay: float) -> np.ndarray:
    """Boolean (F,): a frame is active at or above ``enter``, or at or above ``stay`` right after an
    active frame.

    >>> hysteresis(np.array([0.2, 0.6, 0.4, 0.35, 0.1, 0.4]), enter=0.5, stay=0.3).tolist()
    [False, True, True, True, False, False]
    """
    active = np.zeros(len(scores), dtype=bool)
    on = False
    for i, s in enumerate(np.asarray(scores, dtype=np.float64)):
        on = bool(s >= enter or (on and s >= stay))
        active[i] = on
    return active


def find_spans(
    times: np.ndarray,
    scores: np.ndarray,
    *,
    end_time: float | None,
    policy: SegmentPolicy,
    keyframes: np.ndarray | None = None,
) -> list[Span]:
    """The segments of one tag, given the sample times (F,) ascending, its scores (F,) and which
    samples are keyframes (F,) (a gap starting at a keyframe is never bridged).

    >>> t = np.arange(8.0)
    >>> [(s.start, s.end) for s in find_spans(t, np.array([.9, .9, .1, .9, .9, .1, .1, .1]), end_time=8.0,
    ...                                       policy=SegmentPolicy(max_gap=1.0))]
    [(0.0, 5.0)]
    """
    times = np.asarray(times, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if times.shape != scores.shape or times.ndim != 1:
        raise ValueError(f"times {times.shape} and scores {scores.shape} must be equal 1-d arrays")
    n = len(times)
    if n == 0:
        return []
    end = (
        float(end_time)
        if end_time is not None
        else float(times[-1]) + (float(np.median(np.diff(times))) if n > 1 else 0.0)
    )

    def next_time(i: int) -> float:
        return float(times[i + 1]) if i + 1 < n else max(end, float(times[i]))

    active = hysteresis(scores, enter=policy.enter, stay=policy.stay)
    runs: list[list[int]] = []
    i = 0
    while i < n:
        if not active[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and active[j + 1]:
            j += 1
        gap_start = runs[-1][1] + 1 if runs else 0
        at_cut = keyframes is not None and bool(keyframes[gap_start])
        if runs and not at_cut and float(times[i]) - next_time(runs[-1][1]) <= policy.max_gap:
            runs[-1][1] = j  # a short absence: the same segment goes on
        else:
            runs.append([i, j])
        i = j + 1

    spans = []
    for first, last in runs:
        window = scores[first : last + 1]
        peak_index = first + int(np.argmax(window))
        span = Span(
            first=first,
            last=last,
            start=float(times[first]),
            end=next_time(last),
            peak=float(window.max()),
            mean=float(window[active[first : last + 1]].mean()),  # bridged gaps do not dilute it
            peak_index=peak_index,
        )
        if span.end - span.start >= policy.min_duration:
            spans.append(span)
    return spans
