"""From a model's probabilities to tag assignments: applied, sent to review, or dropped."""

from __future__ import annotations

import numpy as np

from tagsmith.records import Alternative, Source, TagAssignment, TagState
from tagsmith.tagmodels.model import ModelKind, TagModel

MAX_ALTERNATIVES = 4


def route_prediction(model: TagModel, probabilities: np.ndarray) -> list[TagAssignment]:
    """Turn one asset's probabilities (T,) into assignments.

    Exclusive models propose their top tag: applied at or above its threshold, sent to review at or
    above the review floor (with the runners-up as alternatives), otherwise nothing. Multi-label
    models judge each tag on its own.

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
        alternatives = tuple(
            Alternative(model.tags[i], round(float(p[i]), 4))
            for i in order[1 : 1 + MAX_ALTERNATIVES]
            if p[i] >= 0.01
        )
        chosen = [(top, alternatives)]
    else:
        chosen = [(int(i), ()) for i in order]
    out = []
    for i, alternatives in chosen:
        confidence = float(p[i])
        threshold = float(model.thresholds[i])
        if confidence >= threshold:
            state = TagState.APPLIED
        elif confidence >= model.review_floor:
            state = TagState.REVIEW
        else:
            continue
        out.append(
            TagAssignment(
                model=model.model_id,
                tag=model.tags[i],
                state=state,
                source=Source.AI,
                confidence=round(confidence, 4),
                model_version=model.version,
                threshold=round(threshold, 4),
                alternatives=alternatives,
            )
        )
    return out
