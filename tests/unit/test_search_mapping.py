"""The versioned index mapping, index names and the package's public API."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import tagsmith.search
from tagsmith.errors import InvalidKeyError
from tagsmith.search import LANGUAGES, alias_name, analysed_fields, load_mapping
from tagsmith.search.analysis import LEVELS
from tagsmith.search.mapping import COMPOUND_LANGUAGES, TERM_LANGUAGES, is_tenant_index, new_index_name

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO / "shared" / "tagsmith" / "search"
INFRA_DIR = REPO / "infra" / "opensearch"
VERSIONS = range(1, tagsmith.search.MAPPING_VERSION + 1)

# Custom-analyzer filters that make osmem index empty tokens (PLATFORM.md), plus the ones we
# found doing the same on osmem 0.1.6: every query would then match every document.
BROKEN_STEMMERS = {
    "light_french",
    "minimal_french",
    "light_german",
    "german",
    "german2",
    "minimal_german",
    "possessive_english",
    "dutch",
    "dutch_kp",
    "light_dutch",
    "italian",
    "light_italian",
    "light_spanish",
}
BROKEN_SNOWBALL = {"german", "german2", "dutch", "kp", "italian"}
# each verified on osmem (and a standard filter on OpenSearch)
BUILT_IN_FILTERS = {"lowercase", "asciifolding", "cjk_width", "cjk_bigram", "german_normalization", "reverse"}
BUILT_IN_ANALYZERS = {"standard", "english", "french", "german", "spanish", "italian", "kuromoji", "cjk"}
# Built-in analyzers osmem does not have (index creation fails): never in the mapping.
MISSING_ON_OSMEM = {"dutch", "swedish", "smartcn"}


@pytest.mark.parametrize("version", VERSIONS)
def test_infra_mapping_is_the_package_mapping(version: int) -> None:
    infra, package = INFRA_DIR / f"asset-index.v{version}.json", PACKAGE_DIR / f"asset-index.v{version}.json"

    assert infra.resolve() == package.resolve()
    assert json.loads(infra.read_text("utf-8")) == load_mapping(version)


def test_every_mapping_version_is_kept_and_labelled_with_its_number() -> None:
    # Old versions stay: an index still on v1 can be recognised and migrated.
    files = sorted(p.name for p in PACKAGE_DIR.glob("asset-index.v*.json"))

    assert files == [f"asset-index.v{v}.json" for v in VERSIONS]
    assert [load_mapping(v)["mappings"]["_meta"]["tagsmith_mapping_version"] for v in VERSIONS] == list(
        VERSIONS
    )


def test_python_analysed_languages_have_whitespace_term_fields_per_level() -> None:
    mapping = load_mapping()
    terms = mapping["mappings"]["properties"]["terms"]["properties"]
    analyzer = mapping["settings"]["analysis"]["analyzer"]["tagsmith_terms"]

    assert sorted(terms) == sorted(TERM_LANGUAGES)
    assert set(COMPOUND_LANGUAGES) <= set(TERM_LANGUAGES)
    for lang in TERM_LANGUAGES:
        assert list(terms[lang]["properties"]) == list(LEVELS)
        assert {spec["analyzer"] for spec in terms[lang]["properties"].values()} == {"tagsmith_terms"}
    # the tokens are made in Python: the index must take them as they are, on every server
    assert analyzer == {"type": "custom", "tokenizer": "whitespace", "filter": []}


# Types osmem accepts (and shows working in _analyze) but ignores when indexing and searching, with a
# warning on its stderr only: a field using them silently behaves differently from the design.
IGNORED_BY_OSMEM_FILTERS = {
    "pattern_replace",  # as a token filter; the pattern_replace *char filter* works
    "stemmer_override",
    "synonym",
    "synonym_graph",
    "elision",
    "dictionary_decompounder",
    "hyphenation_decompounder",
    "word_delimiter",
    "word_delimiter_graph",
    "german_normalization",
}
IGNORED_BY_OSMEM_CHAR_FILTERS = {"mapping"}


def test_mapping_uses_no_filter_that_osmem_silently_ignores() -> None:
    analysis = load_mapping()["settings"]["analysis"]
    named = {name: spec["type"] for name, spec in analysis.get("filter", {}).items()}
    used = {f for spec in analysis["analyzer"].values() for f in spec.get("filter", [])}

    ignored = sorted(f for f in used if named.get(f, f) in IGNORED_BY_OSMEM_FILTERS)
    ignored_chars = [
        name
        for name, spec in analysis.get("char_filter", {}).items()
        if spec["type"] in IGNORED_BY_OSMEM_CHAR_FILTERS
    ]

    assert (ignored, ignored_chars) == ([], [])


def test_mapping_patterns_avoid_what_osmem_cannot_run() -> None:
    # osmem refuses '+' quantifiers and (?i) flags, and reads "$1x" as a group named "1x".
    for name, spec in load_mapping()["settings"]["analysis"].get("char_filter", {}).items():
        if spec["type"] != "pattern_replace":
            continue
        assert "+" not in spec["pattern"] and "(?i" not in spec["pattern"], name
        assert not re.search(r"\$\d[A-Za-z_]", spec["replacement"]), name


def test_mapping_has_no_custom_filter_known_to_break_osmem() -> None:
    filters = load_mapping()["settings"]["analysis"].get("filter", {})

    broken = [
        name
        for name, spec in filters.items()
        if (spec.get("type") == "stemmer" and spec.get("language", "").lower() in BROKEN_STEMMERS)
        or (spec.get("type") == "snowball" and spec.get("language", "").lower() in BROKEN_SNOWBALL)
    ]

    assert broken == []


def test_mapping_every_analyzer_is_built_in_or_defined() -> None:
    analysis = load_mapping()["settings"]["analysis"]

    used = {f.analyzer for f in analysed_fields()} | {
        spec["search_analyzer"] for f in analysed_fields() if (spec := _spec(f.path)).get("search_analyzer")
    }
    missing = used - BUILT_IN_ANALYZERS - set(analysis["analyzer"])
    assert missing == set()
    assert used & MISSING_ON_OSMEM == set()
    for name, spec in analysis["analyzer"].items():
        built_in = set(spec.get("filter", [])) - set(analysis.get("filter", {}))
        assert built_in <= BUILT_IN_FILTERS, name
        assert set(spec.get("char_filter", [])) <= set(analysis.get("char_filter", {})), name


def test_analysed_fields_cover_every_label_language_and_free_text_field() -> None:
    paths = {f.path for f in analysed_fields()}

    assert paths == {
        *(f"labels.{lang}" for lang in LANGUAGES),
        *(f"terms.{lang}.{level}" for lang in TERM_LANGUAGES for level in LEVELS),
        "labels.folded",
        "ocr_text",
        "path.text",
    }


def test_analysed_fields_finds_text_inside_nested_objects() -> None:
    mapping = load_mapping()
    mapping["mappings"]["properties"]["segments"]["properties"]["note"] = {"type": "text"}

    notes = [f for f in analysed_fields(mapping) if f.path == "segments.note"]

    assert len(notes) == 1 and notes[0].nested_path == "segments"


def test_mapping_is_strict_and_versioned() -> None:
    mappings = load_mapping()["mappings"]

    assert mappings["dynamic"] == "strict"  # a document with a stray field is refused, not guessed
    assert mappings["_meta"]["tagsmith_mapping_version"] == tagsmith.search.MAPPING_VERSION


def test_load_mapping_returns_a_fresh_copy() -> None:
    load_mapping()["mappings"]["properties"].clear()

    assert "tag_ids" in load_mapping()["mappings"]["properties"]


def test_new_index_name_belongs_to_its_tenant_only() -> None:
    name = new_index_name("acme", now=datetime(2026, 11, 22, 6, 10, 0, 123456, tzinfo=UTC))

    assert name == f"tagsmith-assets-acme-v{tagsmith.search.MAPPING_VERSION}-20261122t061000123456z"
    assert name.startswith(alias_name("acme") + "-")
    assert is_tenant_index("acme", name)
    assert not is_tenant_index("acme-v1", name)
    assert not is_tenant_index("acm", name)


def test_is_tenant_index_does_not_claim_a_tenant_with_a_longer_name() -> None:
    other = new_index_name("acme-v2")  # tenant "acme-v2" looks like a versioned "acme" index

    assert is_tenant_index("acme-v2", other)
    assert not is_tenant_index("acme", other)
    assert not is_tenant_index("acme", alias_name("acme"))


@pytest.mark.parametrize("tenant", ["", "ACME", "a/b", "tenants", "-acme", "acme*"])
def test_alias_name_refuses_an_invalid_tenant(tenant: str) -> None:
    with pytest.raises(InvalidKeyError):
        alias_name(tenant)


def test_public_api_is_listed_and_importable() -> None:
    exported = set(tagsmith.search.__all__)
    public = {n for n in vars(tagsmith.search) if not n.startswith("_")} - {
        "analysis",
        "dashboards",
        "documents",
        "healing",
        "index",
        "mapping",
        "memory",
        "query",
        "reindex",
        "stopwords",
        "waiting",
    }

    assert exported == public
    for name in exported:
        assert getattr(tagsmith.search, name) is not None


def _spec(path: str) -> dict:  # type: ignore[type-arg]
    """The mapping entry of a dotted field path (multi-fields included)."""
    properties, spec = load_mapping()["mappings"]["properties"], {}
    for part in path.split("."):
        spec = properties.get(part) or spec.get("fields", {})[part]
        properties = spec.get("properties", {})
    return spec
