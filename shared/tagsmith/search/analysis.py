"""Language analysis done in Python, at index time and at query time, for the languages whose
analysis no OpenSearch-compatible server here gets right (German, Dutch, Swedish, Italian, Spanish,
Chinese).

Why here and not in the mapping: the test server (osmem) indexes empty tokens with the Dutch,
German and Italian stemmers, ignores decompounders, synonyms and the Italian/Dutch/Swedish stop
lists at index time, and has no ``dutch`` or ``swedish`` analyzer; and a dictionary decompounder
would need the tenant's vocabulary in the index settings (one mapping per tenant, a reindex per
new tag). So documents carry the result of this module as ready-made tokens in ``terms.<lang>.*``
fields, which the mapping indexes with a plain whitespace analyzer; queries are put through the
same functions. Whitespace analysis behaves the same on every OpenSearch, so what the tests
measure is what a real cluster does.

Each Python-analysed language indexes four *levels* of a label word (a query word found at a
lower level is a better match):

    word    the whole word, normalised (plural and inflection endings removed)
    head    the head of a compound (its last part: Regen|jacke -> jacke); Chinese: a word's endings
    part    a compound's other parts (regen); Chinese: a word's beginnings
    affix   any ending or beginning of 3+ letters that leaves 3+ letters (a compound the
            vocabulary cannot split);
            Chinese: inner pairs of characters

Compounds are split against the tenant's own vocabulary (every label and synonym of the language
in its taxonomies): "Regenjacke" splits where "Jacke" is a known word, or else where a known word
("Regen") begins it. A whole vocabulary word is never split again inside a longer compound, so the
head of "Lederhandschuhe" is "handschuhe", not "schuhe". Every split point is also indexed (the
``affix`` level), so "Hut" still finds "Strohhut" when no tag is called "Hut", only ranked below a
confirmed head.

>>> normalise("nl", "regenjassen"), normalise("nl", "kazen") == normalise("nl", "kaas")
('regenjas', True)
>>> vocab = Vocabulary.of("de", ["Regenjacke", "Jacke"])
>>> sorted(label_terms("de", ["Regenjacke"], vocab)["head"])
['jack']
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

import snowballstemmer

from tagsmith.search.stopwords import STOP_WORDS

# Languages analysed here (the others use OpenSearch's own analyzers: english, french, kuromoji).
# Spanish is here because the built-in spanish analyzer (light_spanish, on OpenSearch too) leaves
# words under five letters alone: "velas" -> "vel" but "vela" -> "vela", so plurals miss.
PYTHON_LANGUAGES: tuple[str, ...] = ("de", "es", "it", "nl", "sv", "zh")
COMPOUNDING: frozenset[str] = frozenset({"de", "nl", "sv"})
LEVELS: tuple[str, ...] = ("word", "head", "part", "affix")

MIN_PART = 3  # "Hut", "tas", "sko" are heads; so is "rot" in "Brot", hence the levels
MAX_CJK_RUN = 8  # longer Chinese runs are matched by character pairs (2^(n-1) segmentations)
# Linking elements a compound's first part may end with (Arbeit-s-hose, Sonne-n-hut, kläd-es-).
LINKS: dict[str, tuple[str, ...]] = {
    "de": ("es", "en", "er", "s", "n", "e"),
    "nl": ("en", "s", "e"),
    "sv": ("s", "a", "o", "u", "e"),
}
_STEMMERS = {"de": "german", "es": "spanish", "it": "italian", "sv": "swedish"}
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_VOWELS = frozenset("aeiouyäöåéèêëïü")


def fold_char(c: str) -> str:
    """One character lower-cased and without accents; always one character (offsets stay put)."""
    base = unicodedata.normalize("NFKD", c.lower())
    kept = "".join(ch for ch in base if not unicodedata.combining(ch))
    return kept if len(kept) == 1 else c.lower()


def fold(text: str) -> str:
    """Lower case, accents removed, character for character: ``fold("Mütze") == "mutze"``."""
    return "".join(fold_char(c) for c in text)


def words_of(text: str) -> list[tuple[int, int, str]]:
    """The words of ``text`` with their offsets; Chinese runs are separate words."""
    out: list[tuple[int, int, str]] = []
    for m in _WORD.finditer(text):
        start = m.start()
        for piece in re.split(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)", m.group()):
            if piece:
                out.append((start, start + len(piece), piece))
            start += len(piece)
    return out


def is_cjk(word: str) -> bool:
    return bool(_CJK.fullmatch(word))


@lru_cache(maxsize=65536)
def normalise(lang: str, word: str) -> str:
    """The matching key of one word: lower case, singular, inflection removed, accents folded."""
    w = word.lower().replace("\u2019", "'")
    if lang == "nl":
        return _dutch_key(fold(w))
    if lang == "de":
        w = w.replace("ß", "ss")
    if lang == "it" and "'" in w:  # l'ombrello: the elided article goes
        w = w.rsplit("'", 1)[1]
    if lang in _STEMMERS:
        stem = _stemmer(lang).stemWord(w)
        if lang == "sv" and stem == w and len(w) >= 4 and w[-1] == "r" and w[-2] in _VOWELS:
            stem = w[:-1]  # Snowball leaves short words alone (R1): skor -> sko, as inside löparskor
        return fold(stem)
    return fold(w)


@cache
def _stemmer(lang: str) -> snowballstemmer.stemmer:
    return snowballstemmer.stemmer(_STEMMERS[lang])


# Dutch takes -s after an unstressed ending (appels, bezems, lakens, gieters, gardes) and in
# loans (sjaals); a stressed syllable ending in s is a singular (kaars, laars, muts).
_S_PLURAL_AFTER = ("el", "em", "en", "er", "e", "aal", "eel", "ool")
_DOUBLE = re.compile(r"([bdfgklmnprst])\1$")


def _dutch_key(w: str) -> str:
    """Dutch plurals and their singulars to one key (Snowball's Dutch stemmer maps kussen and
    kussens, laars and laarzen, glas and glazen apart). Rules applied until nothing changes:
    ``'s`` and ``-s`` after an unstressed ending (appels, lakens, kussens, gardes, sjaals), ``-en`` with a doubled
    consonant undone (jassen), then ``z``/``v`` back to ``s``/``f`` (kazen, brieven) and a
    doubled vowel in the last syllable made single (kaas/kazen, boom/bomen).

    Singulars in -en lose it too (kussen -> kus): both forms still meet, which is what matters."""
    if w.endswith("'s"):
        w = w[:-2]
    while True:
        before = w
        if len(w) > 4 and w.endswith("s") and w[:-1].endswith(_S_PLURAL_AFTER):
            w = w[:-1]
        if len(w) > 4 and w.endswith("en") and w[-3] not in _VOWELS - {"i"}:
            w = _DOUBLE.sub(r"\1", w[:-2])
        if len(w) > 2 and w[-1] in "zv":
            w = w[:-1] + ("s" if w[-1] == "z" else "f")
        if w == before:
            break
    return re.sub(r"(aa|ee|oo|uu)([^aeiouy]{1,2})$", lambda m: m[1][0] + m[2], w)


def word_keys(lang: str, word: str) -> tuple[str, ...]:
    """The keys a label word is indexed under as a whole word: its own, and for Dutch also that of
    its ``-s`` plural, which loanwords take after any consonant (shirt/shirts, top/tops) while
    a native singular may end in ``-rs``/``-ts`` (kaars, muts), so the query side cannot strip it.

    >>> word_keys("nl", "shirt"), word_keys("nl", "kaars")
    (('shirt', 'shirts'), ('kars',))
    """
    key = normalise(lang, word)
    if lang != "nl" or word[-1:].lower() in ("s", "z"):  # kaars -> kaarsen, never kaarss
        return (key,)
    plural = normalise(lang, word + "s")
    return (key,) if plural == key else (key, plural)


@lru_cache(maxsize=65536)
def is_stop(lang: str, word: str) -> bool:
    return fold(word) in _folded_stops(lang) or word.lower() in STOP_WORDS.get(lang, frozenset())


@cache
def _folded_stops(lang: str) -> frozenset[str]:
    return frozenset(fold(w) for w in STOP_WORDS.get(lang, ()))


# -- the tenant's vocabulary and compound splitting -------------------------------------------


@dataclass(frozen=True)
class Vocabulary:
    """The words of one language in a tenant's taxonomies: what compounds are split against."""

    lang: str
    words: frozenset[str]  # lower case, as written
    keys: frozenset[str]  # their normalised keys

    @classmethod
    def of(cls, lang: str, texts: Iterable[str]) -> Vocabulary:
        return _vocabulary(lang, tuple(sorted(set(texts))))

    def knows(self, piece: str) -> bool:
        return piece in self.words or normalise(self.lang, piece) in self.keys


@lru_cache(maxsize=256)
def _vocabulary(lang: str, texts: tuple[str, ...]) -> Vocabulary:
    words = frozenset(
        w.lower() for t in texts for _, _, w in words_of(t) if not is_cjk(w) and not is_stop(lang, w)
    )
    return Vocabulary(lang, words, frozenset(normalise(lang, w) for w in words))


def split_compound(word: str, vocab: Vocabulary) -> tuple[list[str], str] | None:
    """``(modifiers, head)`` of a compound word, or None when the vocabulary gives no split.

    >>> split_compound("lederhandschuhe", Vocabulary.of("de", ["Handschuhe", "Schuhe"]))
    (['leder'], 'handschuhe')
    """
    w = word.lower()
    best: tuple[tuple[int, int], int] | None = None
    for i in range(MIN_PART, len(w) - MIN_PART + 1):
        modifier, head = w[:i], w[i:]
        if vocab.knows(head):
            rank = (2, len(head))  # the longest known head: handschuhe before schuhe
        elif any(vocab.knows(m) for m in _without_link(vocab.lang, modifier)):
            rank = (1, len(modifier))
        else:
            continue
        if best is None or rank > best[0]:
            best = (rank, i)
    if best is None:
        return None
    modifier, head = w[: best[1]], w[best[1] :]
    inner = split_compound(modifier, vocab) if not vocab.knows(modifier) else None
    modifiers = [*inner[0], inner[1]] if inner else [modifier]
    return modifiers, head


def _without_link(lang: str, modifier: str) -> list[str]:
    out = [modifier]
    for link in LINKS.get(lang, ()):
        if modifier.endswith(link) and len(modifier) - len(link) >= MIN_PART:
            out.append(modifier[: -len(link)])
    return out


# -- index side -------------------------------------------------------------------------------


def label_terms(lang: str, labels: Sequence[str], vocab: Vocabulary | None = None) -> dict[str, list[str]]:
    """The level -> tokens of a language's label values (see the module docstring).

    >>> label_terms("it", ["Zaino da trekking"])["word"]
    ['zain', 'trekking']
    """
    levels: dict[str, dict[str, None]] = {level: {} for level in LEVELS}
    for value in labels:
        for _, _, w in words_of(value):
            for level, token in word_terms(lang, w, vocab):
                levels[level][token] = None
    return {level: list(tokens) for level, tokens in levels.items() if tokens}


def word_terms(lang: str, word: str, vocab: Vocabulary | None) -> tuple[tuple[str, str], ...]:
    """(level, token) pairs of one label word (cached: a catalogue repeats its words)."""
    return _word_terms(lang, word, vocab)


@lru_cache(maxsize=65536)
def _word_terms(lang: str, word: str, vocab: Vocabulary | None) -> tuple[tuple[str, str], ...]:
    return tuple(_each_word_term(lang, word, vocab))


def _each_word_term(lang: str, word: str, vocab: Vocabulary | None) -> Iterator[tuple[str, str]]:
    if is_cjk(word):
        yield from _cjk_terms(word)
        return
    if is_stop(lang, word):
        return
    for key in word_keys(lang, word):
        yield "word", key
    if lang not in COMPOUNDING:
        return
    w = word.lower()
    split = split_compound(w, vocab) if vocab is not None else None
    if split is not None:
        modifiers, head = split
        yield "head", normalise(lang, head)
        for m in modifiers:
            for plain in _without_link(lang, m):
                yield "part", normalise(lang, plain)
    # every split a compound could have (both sides 3+ letters): "kaars" has none, so its
    # beginning "kaar" cannot pass for a part of it
    for i in range(MIN_PART, len(w) - MIN_PART + 1):
        yield "affix", normalise(lang, w[i:])
        yield "affix", normalise(lang, w[:i])


def _cjk_terms(word: str) -> Iterator[tuple[str, str]]:
    # Chinese compounds put the head last (登山鞋: mountain-climbing shoe), so endings are heads
    yield "word", word
    for i in range(1, len(word)):
        yield "head", word[i:]
        yield "part", word[:i]
    for i in range(1, len(word) - 2):
        yield "affix", word[i : i + 2]


# -- query side -------------------------------------------------------------------------------


def query_alternatives(lang: str, text: str) -> list[list[str]]:
    """Ways to read a query in ``lang``: each a list of tokens that must all match.

    One reading for alphabetic languages (stop words dropped, each word normalised); Chinese runs
    typed without spaces are read every way they can be cut into words ("红色毛线帽": 红色 +
    毛线帽, 红 + 色毛线帽, ...), since the words are unknown at query time.

    >>> query_alternatives("nl", "tassen van leer")
    [['tas', 'ler']]
    >>> len(query_alternatives("zh", "红色毛线帽"))
    16
    """
    words = [w for _, _, w in words_of(text)]
    content = [w for w in words if is_cjk(w) or not is_stop(lang, w)] or words
    readings: list[list[str]] = [[]]
    for w in content:
        if is_cjk(w) and lang != "zh":
            readings = [[*r, w] for r in readings]
        elif is_cjk(w):
            cuts = _segmentations(w) if len(w) <= MAX_CJK_RUN else [_pairs(w)]
            readings = [r + cut for r in readings for cut in cuts]
        else:
            readings = [[*r, normalise(lang, w)] for r in readings]
    return [list(dict.fromkeys(r)) for r in readings if r]


def loose_tokens(lang: str, text: str) -> list[str]:
    """Tokens any one of which makes a document a (weak) match: every word of an alphabetic query;
    for Chinese, a single character typed alone or any run of 2+ characters inside the query."""
    tokens: list[str] = []
    words = [w for _, _, w in words_of(text)]
    for w in [w for w in words if is_cjk(w) or not is_stop(lang, w)] or words:
        if not is_cjk(w):
            tokens.append(normalise(lang, w))
        elif len(w) == 1:
            tokens.append(w)
        else:
            tokens += [w[i:j] for i in range(len(w)) for j in range(i + 2, min(len(w), i + 6) + 1)]
    return list(dict.fromkeys(tokens))


def _segmentations(run: str) -> list[list[str]]:
    if len(run) == 1:
        return [[run]]
    out = []
    for mask in range(1 << (len(run) - 1)):
        pieces, start = [], 0
        for i in range(1, len(run)):
            if mask >> (i - 1) & 1:
                pieces.append(run[start:i])
                start = i
        pieces.append(run[start:])
        out.append(pieces)
    return out


def _pairs(run: str) -> list[str]:
    return [run[i : i + 2] for i in range(len(run) - 1)]


# -- highlighting -----------------------------------------------------------------------------


def highlight(lang: str, value: str, tokens: set[str], vocab: Vocabulary | None = None) -> str | None:
    """``value`` with the words (or compound parts) that ``tokens`` match wrapped in ``<em>``, or
    None when nothing matches. Offsets come from the text as written, so accents, elisions and
    plural endings never shift the marks.

    >>> highlight("it", "latte d'avena", {"aven"})
    "latte d'<em>avena</em>"
    >>> highlight("de", "Regenjacke", {"jack"})
    'Regen<em>jacke</em>'
    """
    marks: list[tuple[int, int]] = []
    for start, end, w in words_of(value):
        if is_cjk(w):
            marks += _cjk_marks(start, w, tokens)
        elif tokens.intersection(word_keys(lang, w)) and not is_stop(lang, w):
            elided = w.rfind("'") + 1 if lang == "it" else 0  # d'avena: mark "avena"
            marks.append((start + elided, end))
        elif lang in COMPOUNDING:
            marks += _part_marks(lang, start, w, tokens)
    if not marks:
        return None
    out, last = [], 0
    for start, end in _merge(marks):
        out += [value[last:start], "<em>", value[start:end], "</em>"]
        last = end
    out.append(value[last:])
    return "".join(out)


def _part_marks(lang: str, start: int, word: str, tokens: set[str]) -> list[tuple[int, int]]:
    w = word.lower()
    for i in range(1, len(w) - MIN_PART + 1):  # the longest matching ending (a head)
        if normalise(lang, w[i:]) in tokens:
            return [(start + i, start + len(w))]
    for i in range(len(w) - 1, MIN_PART - 1, -1):  # else the longest matching beginning
        if any(normalise(lang, p) in tokens for p in _without_link(lang, w[:i])):
            return [(start, start + i)]
    return []


def _cjk_marks(start: int, run: str, tokens: set[str]) -> list[tuple[int, int]]:
    return [
        (start + i, start + j)
        for i in range(len(run))
        for j in range(i + 1, len(run) + 1)
        if run[i:j] in tokens
    ]


def _merge(marks: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(marks):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
