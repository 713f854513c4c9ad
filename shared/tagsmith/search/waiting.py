"""Assets whose tag waits for review: not searchable by default, but never silently missing.

Only visible tags (applied by a model, or confirmed by a person) feed the searchable label fields
(:mod:`tagsmith.search.documents`), which is the right default: a guess a reviewer has not seen yet
should not decide what a search finds. But a new tenant's first model sends most uploads to review,
so a search for "hat" would find nothing and look broken. :func:`search_with_waiting` therefore
also counts the assets that would match if the tags the text names counted while they wait for
review, and can include them on request (``tagsmith search --include-review``, the console's
"Include them" button).

Which tags does a text name? Those with a name (readable id, a label or a synonym in any language)
that holds every word of the text, compared after the in-memory index's crude analysis (lower
case, accents folded, a plural ``s`` dropped, CJK by character) or, for a name in a language
:mod:`tagsmith.search.analysis` stems, after that language's normalisation (``Hüte`` names
``Hut``):

>>> from tagsmith.taxonomy import TagDefinition, Taxonomy
>>> hat = TagDefinition("hat", {"en": "Hat", "fr": "chapeau", "de": "Hut"}, {"ja": ("帽子",)})
>>> names = {"garment": Taxonomy((hat, TagDefinition("dress")))}
>>> tags_named_by("Hats", names), tags_named_by("chapeau", names), tags_named_by("帽子", names)
(['garment/hat'], ['garment/hat'], ['garment/hat'])
>>> tags_named_by("Hüte", names), tags_named_by("red hat", names)
(['garment/hat'], [])
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from tagsmith.search.analysis import PYTHON_LANGUAGES, normalise, words_of
from tagsmith.search.documents import tag_id
from tagsmith.search.memory import _tokens as crude_tokens  # the same analysis as the fake index
from tagsmith.search.query import SearchPage, SearchQuery
from tagsmith.taxonomy import TagDefinition, Taxonomy


@dataclass(frozen=True, slots=True)
class WaitingForReview:
    """``count`` more assets match when the ``tags`` (``model/tag``) the text names count while
    they wait for review; ``included``: whether the page holds them."""

    tags: list[str]
    count: int
    included: bool

    def to_dict(self) -> dict[str, Any]:
        return {"tags": list(self.tags), "count": self.count, "included": self.included}


def tags_named_by(text: str | None, taxonomies: Mapping[str, Taxonomy]) -> list[str]:
    """The ``model/tag`` ids whose id, a label or a synonym holds every word of ``text``."""
    text = text or ""
    if not crude_tokens(text):
        return []
    return sorted(
        tag_id(model, d.id)
        for model, taxonomy in taxonomies.items()
        for d in taxonomy.tags
        if any(_names_every_word(text, lang, name) for lang, name in _names(d))
    )


def _names_every_word(text: str, lang: str, name: str) -> bool:
    if set(crude_tokens(text)) <= set(crude_tokens(name)):
        return True
    if lang not in PYTHON_LANGUAGES or lang == "zh":  # Chinese: the crude per-character test above
        return False
    keys = {normalise(lang, w) for _, _, w in words_of(name)}
    return all(normalise(lang, w) in keys for _, _, w in words_of(text))


def _names(d: TagDefinition) -> Iterator[tuple[str, str]]:
    """(language, name) of every name of a tag; its readable id counts as English."""
    yield "en", d.id.replace("-", " ").replace("_", " ")
    yield from d.labels.items()
    for lang, words in d.synonyms.items():
        yield from ((lang, w) for w in words)


def search_with_waiting(
    index: Any, tenant: str, query: SearchQuery, taxonomies: Mapping[str, Taxonomy], *, include: bool = False
) -> tuple[SearchPage, WaitingForReview | None]:
    """Search ``query`` and say how many more assets the tags its text names would add while they
    wait for review (None when the text names no tag). ``include``: the page holds them too.

    Costs one more (one-hit) search when the text names a tag.
    """
    tags = tags_named_by(query.words, taxonomies)
    if not tags:
        return index.search(tenant, query), None
    wide_query = replace(query, review_tags=tuple(tags))
    if include:
        page = index.search(tenant, wide_query)
        narrow_total = index.search(tenant, _count_only(query)).total
        return page, WaitingForReview(tags, page.total - narrow_total, True)
    page = index.search(tenant, query)
    wide_total = index.search(tenant, _count_only(wide_query)).total
    return page, WaitingForReview(tags, wide_total - page.total, False)


def _count_only(query: SearchQuery) -> SearchQuery:
    """The first page of one hit: its ``total`` counts every match."""
    return replace(query, size=1, search_after=None)
