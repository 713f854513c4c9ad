"""Document shaping: one :class:`~tagsmith.records.AssetRecord` -> one search document.

Pure functions, no client: the search index is a projection of records, so the same record and
taxonomies always give the same document, and a rebuild reproduces the index exactly.

Only *visible* tags (applied or confirmed; never ``review`` or ``rejected``, never
:data:`~tagsmith.records.NONE_TAG`) feed ``tag_ids``, the label fields and the confidence
summaries; ``tags`` keeps every assignment so results can show what still awaits review.

The document (fields whose value would be ``null`` are left out)::

    {
      "tenant": "acme", "asset_key": "acme/2026/shoot/IMG_1.jpg", "path": "2026/shoot/IMG_1.jpg",
      "media_type": "image/jpeg", "size": 123456, "width": 4000, "height": 3000,
      "uploaded_at": "2026-11-22T06:10:00.000Z", "updated_at": "2026-11-22T06:11:00.000Z",
      "status": "tagged", "failure_code": "image_too_large",         # failure_code only when failed
      "tags": [{"model": "garments", "tag": "scarf", "state": "applied", "source": "ai",
                "confidence": 0.93, "model_version": "3"}],
      "tag_ids": ["garments/scarf"],                            # visible tags only
      "models": ["garments"],
      "review_state": "clear",                                  # "pending" if any tag is in review
      "none_of": ["garments"],                                  # models that found none of their tags
      "max_confidence": 0.93,                                   # visible tags; confirmed counts 1.0
      "human_confirmed_count": 0,
      "labels": {"en": ["scarf", "muffler"], "fr": ["écharpe"], ..., "folded": [...every label...]},
      "terms": {"de": {"word": ["schal"], "affix": [...]}, ...},  # see tagsmith.search.analysis
      "ocr_text": "LAKTOSFRI\nMELLANMJÖLK",                   # when OCR read something
      "segments": [{"model": "garments", "tag": "scarf",        # videos: visible tags' segments
                    "start": 12.0, "end": 15.5, "confidence": 0.93}]
    }
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from tagsmith.keys import validate_tenant
from tagsmith.records import NONE_TAG, AssetRecord, TagAssignment, TagState
from tagsmith.search.analysis import LEVELS, Vocabulary, label_terms
from tagsmith.search.mapping import LANGUAGES, TERM_LANGUAGES
from tagsmith.taxonomy import TagDefinition, Taxonomy

REVIEW_PENDING = "pending"
REVIEW_CLEAR = "clear"
HUMAN_CONFIDENCE = 1.0  # a human "yes" is as sure as it gets; used for max_confidence


def doc_id(record: AssetRecord) -> str:
    """The document id of a record: SHA-1 hex of its asset key (stable, fixed length, URL-safe).

    >>> from tagsmith.records import AssetStatus, SourceObject
    >>> r = AssetRecord("acme", "a.jpg", SourceObject("b", "acme/a.jpg", "e", 1), AssetStatus.TAGGED)
    >>> doc_id(r) == doc_id_for_key("acme/a.jpg")
    True
    """
    return doc_id_for_key(record.key)


def doc_id_for_key(asset_key: str) -> str:
    """:func:`doc_id` from an asset key (``<tenant>/<path>``), for deletes that have no record."""
    return hashlib.sha1(asset_key.encode("utf-8")).hexdigest()


def tag_id(model: str, tag: str) -> str:
    """The ``"<model>/<tag>"`` form used by ``tag_ids`` and by tag filters."""
    return f"{model}/{tag}"


def document_from_record(record: AssetRecord, taxonomies: Mapping[str, Taxonomy]) -> dict[str, Any]:
    """Shape ``record`` into its search document; ``taxonomies`` maps model id -> taxonomy.

    A tag whose model or tag is missing from ``taxonomies`` is still searchable by its id made
    readable (``oat-milk`` -> ``oat milk``).

    >>> from tagsmith.records import AssetStatus, Source, SourceObject
    >>> r = AssetRecord("acme", "a.jpg", SourceObject("b", "acme/a.jpg", "e", 1), AssetStatus.TAGGED,
    ...                 tags=(TagAssignment("food", "oat-milk", TagState.APPLIED, Source.AI, 0.9),))
    >>> doc = document_from_record(r, {})
    >>> doc["tag_ids"], doc["labels"]["fr"]
    (['food/oat-milk'], ['oat milk'])
    """
    validate_tenant(record.tenant)
    visible = sorted(record.visible_tags(), key=lambda t: (t.model, t.tag))
    definitions = [_definition(taxonomies, t) for t in visible]
    confidences = [HUMAN_CONFIDENCE if t.state is TagState.CONFIRMED else t.confidence for t in visible]
    known = [c for c in confidences if c is not None]
    labels = label_fields(definitions)
    doc: dict[str, Any] = {
        "tenant": record.tenant,
        "asset_key": record.key,
        "path": record.path,
        "media_type": record.media_type,
        "size": record.source.size,
        "width": record.width,
        "height": record.height,
        "uploaded_at": record.created_at,
        "updated_at": record.updated_at,
        "status": record.status.value,
        "failure_code": record.failure.code if record.failure else None,
        "tags": [_tag_document(t) for t in record.tags],
        "tag_ids": _unique(tag_id(t.model, t.tag) for t in visible),
        "models": sorted({*record.models, *(t.model for t in record.tags)}),
        "review_state": REVIEW_PENDING if record.pending_review() else REVIEW_CLEAR,
        "none_of": none_of(record) or None,
        "max_confidence": max(known) if known else None,
        "human_confirmed_count": sum(1 for t in visible if t.state is TagState.CONFIRMED),
        "labels": labels,
        "terms": term_fields(labels, vocabularies(taxonomies)) or None,
        "ocr_text": record.ocr_text or None,
        "segments": segment_documents(record) or None,
    }
    return {k: v for k, v in doc.items() if v is not None}


def none_of(record: AssetRecord) -> list[str]:
    """The models whose answer for this asset is "none of the trained tags": proposed by the model
    (waiting for review) or confirmed by a human, and not overruled since.

    >>> from tagsmith.records import NONE_TAG, AssetStatus, Source, SourceObject
    >>> r = AssetRecord("acme", "a.jpg", SourceObject("b", "acme/a.jpg", "e", 1), AssetStatus.TAGGED,
    ...                 tags=(TagAssignment("food", NONE_TAG, TagState.REVIEW, Source.AI, 0.1),))
    >>> none_of(r)
    ['food']
    """
    return sorted(
        {
            t.model
            for t in record.tags
            if t.tag == NONE_TAG and t.state in (TagState.REVIEW, TagState.CONFIRMED)
        }
    )


def segment_documents(record: AssetRecord) -> list[dict[str, Any]]:
    """A video's segments of its visible tags, for "where in the clip" answers: a segment counts
    when it was applied by itself, or when a human confirmed its tag.

    >>> from tagsmith.records import AssetStatus, Segment, Source, SourceObject
    >>> seg = Segment("food", "juice", 3.0, 5.0, 0.9, 0.8, 4.0)
    >>> r = AssetRecord("acme", "a.mp4", SourceObject("b", "acme/a.mp4", "e", 1), AssetStatus.TAGGED,
    ...                 tags=(TagAssignment("food", "juice", TagState.APPLIED, Source.AI, 0.9),), segments=(seg,))
    >>> segment_documents(r)
    [{'model': 'food', 'tag': 'juice', 'start': 3.0, 'end': 5.0, 'confidence': 0.9}]
    """
    visible = {(t.model, t.tag): t for t in record.visible_tags()}
    return [
        {"model": s.model, "tag": s.tag, "start": s.start, "end": s.end, "confidence": s.peak_confidence}
        for s in record.segments
        if (s.model, s.tag) in visible
        and (s.state is TagState.APPLIED or visible[(s.model, s.tag)].state is TagState.CONFIRMED)
    ]


def label_fields(definitions: Iterable[TagDefinition]) -> dict[str, list[str]]:
    """``labels.<lang>`` for every supported language, plus ``labels.folded`` (all languages).

    Per language: each tag's label in that language (else English, else its readable id) followed
    by its synonyms in that language. ``folded`` also takes labels and synonyms of languages that
    have no field of their own.

    >>> d = TagDefinition("scarf", {"en": "scarf", "fr": "écharpe"}, {"fr": ("foulard",)})
    >>> label_fields([d])["fr"], label_fields([d])["de"], label_fields([d])["folded"]
    (['écharpe', 'foulard'], ['scarf'], ['scarf', 'écharpe', 'foulard'])
    """
    definitions = list(definitions)
    if not definitions:
        return {}
    fields = {
        lang: _unique(word for d in definitions for word in (d.label(lang), *d.synonyms.get(lang, ())))
        for lang in LANGUAGES
    }
    extra = [
        word
        for d in definitions
        for lang in sorted({*d.labels, *d.synonyms} - set(LANGUAGES))
        for word in (*([d.labels[lang]] if lang in d.labels else []), *d.synonyms.get(lang, ()))
    ]
    fields["folded"] = _unique([*(w for lang in LANGUAGES for w in fields[lang]), *extra])
    return fields


def vocabularies(taxonomies: Mapping[str, Taxonomy]) -> dict[str, Vocabulary]:
    """Per Python-analysed language, every label and synonym of the tenant's taxonomies: what
    compound words are split against. Same taxonomies, same vocabulary, same documents.

    A bulk load shapes thousands of documents with the same taxonomies: the last ones'
    vocabularies are kept, recognised by model ids and the identity of each (frozen) taxonomy,
    which the cache holds so an identity is never reused by another object.
    """
    key = [(model, taxonomy) for model, taxonomy in taxonomies.items()]
    cached = _last_vocabularies
    if (
        cached
        and len(cached[0]) == len(key)
        and all(a == b and c is d for (a, c), (b, d) in zip(cached[0], key, strict=True))
    ):
        return cached[1]
    tags = [d for t in taxonomies.values() for d in t.tags]
    result = {
        lang: Vocabulary.of(lang, [w for d in tags for w in (d.label(lang), *d.synonyms.get(lang, ()))])
        for lang in TERM_LANGUAGES
    }
    _last_vocabularies[:] = [key, result]
    return result


_last_vocabularies: list[Any] = []


def term_fields(labels: Mapping[str, list[str]], vocab: Mapping[str, Vocabulary]) -> dict[str, Any]:
    """``terms.<lang>.<level>`` of a document: its labels analysed in Python (see
    :mod:`tagsmith.search.analysis`), as space-separated tokens. Levels are cumulative (``head``
    also holds the whole words, ``affix`` everything), so "found at this level or better" is one
    term query.

    >>> term_fields({"nl": ["regenjas"]}, {"nl": Vocabulary.of("nl", ["regenjas", "jas"])})["nl"]["head"]
    'regenjas jas'
    """
    out: dict[str, Any] = {}
    for lang in TERM_LANGUAGES:
        levels = label_terms(lang, labels.get(lang, ()), vocab.get(lang))
        if levels:
            seen: dict[str, None] = {}
            out[lang] = {}
            for level in LEVELS:
                seen |= dict.fromkeys(levels.get(level, ()))
                out[lang][level] = " ".join(seen)
    return out


def _definition(taxonomies: Mapping[str, Taxonomy], tag: TagAssignment) -> TagDefinition:
    taxonomy = taxonomies.get(tag.model)
    return taxonomy.get(tag.tag) if taxonomy is not None else TagDefinition(tag.tag)


def _tag_document(tag: TagAssignment) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "model": tag.model,
        "tag": tag.tag,
        "state": tag.state.value,
        "source": tag.source.value,
        "confidence": tag.confidence,
        "model_version": tag.model_version,
    }
    return {k: v for k, v in doc.items() if v is not None}


def _unique(words: Iterable[str]) -> list[str]:
    # dict keeps first-seen order: labels stay readable in highlights and results
    return list(dict.fromkeys(w for w in words if w))
