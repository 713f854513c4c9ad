"""Text rules: a tag applies when the printed text on the asset matches one of its patterns.

Rules are data in the model's taxonomy (``text_patterns`` of a tag, regular expressions matched with
:func:`re.search` against the OCR text, one line per line read)::

    {"tags": [{"id": "arla-lactose-free-milk", "text_patterns": ["LAKTOSFRI|laktosfri"]},
              {"id": "bosch-gsr-18", "text_patterns": ["\\\\bGSR ?18V?-\\\\d{2}\\\\b"]}]}

They run after routing (:func:`tagsmith.tagmodels.route_prediction`), as a second opinion that
only ever *adds* certainty:

* a matched tag becomes ``applied`` whatever its confidence, with the matched text recorded on the
  assignment (``matched_text``) so a reviewer sees why;
* for an exclusive model the matched tag replaces the model's other proposals (they move to its
  alternatives); when patterns of two different tags of one exclusive model match, the text cannot
  decide, so the most confident of them goes to review instead;
* rules never remove a multi-label tag, and humans still win (``merge_tags`` runs afterwards).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from tagsmith.records import NONE_TAG, Alternative, Source, TagAssignment, TagState
from tagsmith.tagmodels.model import ModelKind, TagModel
from tagsmith.tagmodels.routing import decide


@dataclass(frozen=True, slots=True)
class TextMatch:
    tag: str
    pattern: str
    text: str  # what was read, as matched


def match_text_rules(model: TagModel, text: str) -> list[TextMatch]:
    """The model's tags whose patterns match ``text`` (first match per tag), in the model's tag order.

    >>> from tagsmith.taxonomy import TagDefinition, Taxonomy
    >>> m = TagModel.example()
    >>> m = replace(m, taxonomy=Taxonomy((TagDefinition("a", text_patterns=("LAKTOSFRI",)), TagDefinition("b"))))
    >>> [(x.tag, x.text) for x in match_text_rules(m, "ARLA\\nLAKTOSFRI 1,5%")]
    [('a', 'LAKTOSFRI')]
    """
    if not text:
        return []
    matches = []
    for tag in model.tags:
        for pattern in model.taxonomy.get(tag).text_patterns:
            found = _compiled(pattern).search(text)
            if found:
                matches.append(TextMatch(tag, pattern, found.group(0)[:200]))
                break
    return matches


def apply_text_rules(
    model: TagModel, assignments: Sequence[TagAssignment], text: str, probabilities: np.ndarray | None = None
) -> list[TagAssignment]:
    """``assignments`` (routed proposals of ``model``, and possibly of other models, which pass
    through untouched) with the model's text rules applied. ``probabilities`` (T,) supplies the
    model's confidence for a matched tag that routing dropped.
    """
    matches = match_text_rules(model, text)
    if not matches:
        return list(assignments)
    own = [a for a in assignments if a.model == model.model_id and a.source is Source.AI]
    others = [a for a in assignments if not (a.model == model.model_id and a.source is Source.AI)]
    by_tag = {a.tag: a for a in own}

    def confidence(tag: str) -> float:
        if tag in by_tag and by_tag[tag].confidence is not None:
            return float(by_tag[tag].confidence or 0.0)
        if probabilities is not None:
            return round(float(probabilities[model.tags.index(tag)]), 4)
        for alternative in (x for a in own for x in a.alternatives):  # an exclusive model's runner-up
            if alternative.tag == tag:
                return alternative.confidence
        return 0.0

    def ruled(
        match: TextMatch, state: TagState | None = None, alternatives: tuple[Alternative, ...] = ()
    ) -> TagAssignment:
        if state is None:  # a match is certainty: the one auto-apply rule says so for a text match
            state = decide(model, model.tags.index(match.tag), confidence(match.tag), text_match=True)
        base = by_tag.get(match.tag)
        fields = {"state": state, "matched_text": match.text, "confidence": confidence(match.tag)}
        if base is not None:
            return replace(base, **fields, alternatives=alternatives or base.alternatives)  # type: ignore[arg-type]
        return TagAssignment(
            model=model.model_id,
            tag=match.tag,
            source=Source.AI,
            model_version=model.version,
            threshold=round(model.threshold_for(match.tag), 4),
            alternatives=alternatives,
            **fields,  # type: ignore[arg-type]
        )

    if model.kind is ModelKind.EXCLUSIVE:
        matched_tags = {m.tag for m in matches}
        if len(matched_tags) > 1:
            best = max(matches, key=lambda m: confidence(m.tag))
            rest = tuple(Alternative(m.tag, confidence(m.tag)) for m in matches if m is not best)
            return [*others, ruled(best, TagState.REVIEW, rest)]
        [match] = matches
        replaced = tuple(
            Alternative(a.tag, a.confidence or 0.0) for a in own if a.tag not in (match.tag, NONE_TAG)
        )
        kept_alternatives = tuple(x for a in own for x in a.alternatives if x.tag != match.tag)
        return [*others, ruled(match, None, (replaced + kept_alternatives)[:4])]
    matched = {m.tag: m for m in matches}
    out = [a for a in own if a.tag not in matched]
    out += [ruled(m) for m in matches]
    return [*others, *sorted(out, key=lambda a: a.tag)]


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
