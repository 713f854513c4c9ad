"""A tag model's taxonomy: the tags it knows, with labels and synonyms per language.

Labels live beside the model, not inside its weights, so they can change without retraining.
``taxonomy.json`` in an examples folder (or the model's data) looks like::

    {"tags": [{"id": "oat-milk", "labels": {"en": "oat drink", "fr": "boisson à l'avoine"},
               "synonyms": {"en": ["oatly"], "sv": ["havredryck"]}}]}
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tagsmith.errors import TrainingInputError
from tagsmith.keys import validate_tag_id

LANGUAGE = r"^[a-z]{2}$"


@dataclass(frozen=True, slots=True)
class TagDefinition:
    id: str
    labels: Mapping[str, str] = field(default_factory=dict)  # language -> label
    synonyms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # language -> synonyms
    # regular expressions: the tag applies when OCR reads a match (see tagsmith.tagmodels.text_rules)
    text_patterns: tuple[str, ...] = ()

    def label(self, language: str) -> str:
        """The label in ``language``, else English, else the id made readable."""
        return (
            self.labels.get(language) or self.labels.get("en") or self.id.replace("-", " ").replace("_", " ")
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "labels": dict(self.labels)}
        if self.synonyms:
            d["synonyms"] = {k: list(v) for k, v in self.synonyms.items()}
        if self.text_patterns:
            d["text_patterns"] = list(self.text_patterns)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TagDefinition:
        if not isinstance(d, Mapping) or "id" not in d:
            raise TrainingInputError(f"taxonomy entry {d!r} has no 'id'")
        labels = d.get("labels") or {}
        synonyms = d.get("synonyms") or {}
        if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
            raise TrainingInputError(f"tag {d['id']!r}: 'labels' must map a language code to a string")
        if not isinstance(synonyms, Mapping):
            raise TrainingInputError(f"tag {d['id']!r}: 'synonyms' must map a language code to a list")
        return cls(
            id=validate_tag_id(str(d["id"])),
            labels=dict(labels),
            synonyms={lang: tuple(str(s) for s in words) for lang, words in synonyms.items()},
            text_patterns=_text_patterns(d),
        )


def _text_patterns(d: Mapping[str, Any]) -> tuple[str, ...]:
    patterns = d.get("text_patterns") or []
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        raise TrainingInputError(f"tag {d['id']!r}: 'text_patterns' must be a list of regular expressions")
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as e:
            raise TrainingInputError(
                f"tag {d['id']!r}: text pattern {pattern!r} is not a valid regular expression: {e}"
            ) from e
    return tuple(patterns)


@dataclass(frozen=True, slots=True)
class Taxonomy:
    tags: tuple[TagDefinition, ...]

    def __post_init__(self) -> None:
        ids = [t.id for t in self.tags]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise TrainingInputError(f"taxonomy lists these tags more than once: {', '.join(dupes)}")

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.tags]

    def get(self, tag: str) -> TagDefinition:
        for t in self.tags:
            if t.id == tag:
                return t
        return TagDefinition(tag)

    def languages(self) -> set[str]:
        return {lang for t in self.tags for lang in (*t.labels, *t.synonyms)}

    def with_tags(self, tag_ids: Iterable[str]) -> Taxonomy:
        """This taxonomy restricted/extended to exactly ``tag_ids`` (unknown ids get bare entries)."""
        return Taxonomy(tuple(self.get(t) for t in tag_ids))

    def to_dict(self) -> dict[str, Any]:
        return {"tags": [t.to_dict() for t in self.tags]}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=1).encode()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Taxonomy:
        tags = d.get("tags") if isinstance(d, Mapping) else None
        if not isinstance(tags, list):
            raise TrainingInputError("taxonomy must be a JSON object with a 'tags' list")
        return cls(tuple(TagDefinition.from_dict(t) for t in tags))

    @classmethod
    def from_json(cls, data: bytes | str) -> Taxonomy:
        try:
            return cls.from_dict(json.loads(data))
        except (ValueError, RecursionError) as e:
            raise TrainingInputError(f"taxonomy is not valid JSON: {e}") from e
