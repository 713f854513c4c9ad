"""From a model's confidence to a decision: applied, sent to review, or nothing.

:func:`decide` is the one auto-apply rule. Every path that turns a model's output into tag states
calls it: still images (:func:`route_prediction`), video segments and their assets
(:mod:`tagsmith.video.analysis`) and text rules (:mod:`tagsmith.tagmodels.text_rules`, a matched
pattern is certainty). The thresholds it compares against are calibrated per model
(:mod:`tagsmith.tagmodels.calibration`).
"""

from __future__ import annotations

import numpy as np

from tagsmith.records import NONE_TAG, Alternative, Source, TagAssignment, TagState
from tagsmith.tagmodels.model import ModelKind, TagModel

MAX_ALTERNATIVES = 4


def decide(model: TagModel, tag: int, confidence: float, *, text_match: bool = False) -> TagState | None:
    """The auto-apply rule: ``APPLIED`` at or above the tag's threshold (or when the printed text
    matched one of the tag's patterns), ``REVIEW`` at or above the model's review floor, else None.

    >>> m = TagModel.example()
    >>> decide(m, 0, 0.95).value, decide(m, 0, 0.5).value, decide(m, 0, 0.1)
    ('applied', 'review', None)
    >>> decide(m, 0, 0.1, text_match=True).value
    'applied'
    """
    if text_match or confidence >= float(model.thresholds[tag]):
        return TagState.APPLIED
    if confidence >= model.review_floor:
        return TagState.REVIEW
    return None


def is_novel(model: TagModel, confidence: float) -> bool:
    """Whether an exclusive model's top confidence says "none of the trained tags": the photo looks
    more like a product the model never saw than like any of its tags (:attr:`TagModel.none_below`)."""
    return model.kind is ModelKind.EXCLUSIVE and confidence < model.none_below


def route_prediction(model: TagModel, probabilities: np.ndarray) -> list[TagAssignment]:
    """Turn one asset's probabilities (T,) into assignments.

    Exclusive models propose their top tag, decided by :func:`decide`, with the runners-up as
    alternatives; when the top confidence is below the model's novelty level, they propose "none
    of the trained tags" (:data:`~tagsmith.records.NONE_TAG`) for review instead, with the best
    tags as alternatives. Multi-label models judge each tag on its own, at most
    :attr:`TagModel.max_tags` of them, most confident first.

    >>> m = TagModel.example()
    >>> [(a.tag, a.state.value) for a in route_prediction(m, np.array([0.95, 0.05]))]
    [('a', 'applied')]
    >>> [(a.tag, a.state.value) for a in route_prediction(m, np.array([0.6, 0.4]))]
    [('a', 'review')]
    """
    p = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(-p, kind="stable")
    if model.kind is ModelKind.EXCLUSIVE:
        top = int(order[0])
        confidence = float(p[top])
        if is_novel(model, confidence):
            return [
                _assignment(
                    model,
                    NONE_TAG,
                    TagState.REVIEW,
                    confidence,
                    None,
                    _alternatives(model, p, order[:MAX_ALTERNATIVES]),
                )
            ]
        state = decide(model, top, confidence)
        if state is None:
            return []
        alternatives = _alternatives(model, p, order[1 : 1 + MAX_ALTERNATIVES])
        return [
            _assignment(model, model.tags[top], state, confidence, float(model.thresholds[top]), alternatives)
        ]
    out = []
    for i in order:
        state = decide(model, int(i), float(p[i]))
        if state is not None:
            out.append(_assignment(model, model.tags[i], state, float(p[i]), float(model.thresholds[i]), ()))
        if model.max_tags is not None and len(out) == model.max_tags:
            break
    return out


def _alternatives(model: TagModel, p: np.ndarray, rows: np.ndarray) -> tuple[Alternative, ...]:
    return tuple(Alternative(model.tags[i], round(float(p[i]), 4)) for i in rows if p[i] >= 0.01)


def _assignment(
    model: TagModel,
    tag: str,
    state: TagState,
    confidence: float,
    threshold: float | None,
    alternatives: tuple[Alternative, ...],
) -> TagAssignment:
    return TagAssignment(
        model=model.model_id,
        tag=tag,
        state=state,
        source=Source.AI,
        confidence=round(confidence, 4),
        model_version=model.version,
        threshold=round(threshold, 4) if threshold is not None else None,
        alternatives=alternatives,
    )
