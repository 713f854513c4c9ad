"""OCR text as a feature vector: hashed character n-grams, L2-normalised.

Hashing needs no fitted vocabulary, so a text head is just a weight matrix (data, like every tag
model) and two processes always compute the same vector. Character n-grams tolerate the reader's
typical slips ("MJOLK" for "MJÖLK", "MELLANUO" for "MELLANMJÖLK").
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

import numpy as np

DEFAULT_DIM = 4096
DEFAULT_NGRAMS = (2, 3, 4)


def normalise_text(text: str) -> str:
    """Case- and accent-folded words separated by single spaces (digits and %,. kept).

    >>> normalise_text("LAKTOSFRI  Mellanmjölk 1,5%")
    'laktosfri mellanmjolk 1,5%'
    """
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return " ".join(re.findall(r"[\w%.,]+", folded))


def text_features(
    texts: Sequence[str], *, dim: int = DEFAULT_DIM, ngrams: Sequence[int] = DEFAULT_NGRAMS
) -> np.ndarray:
    """(N, dim) float32: sublinear counts of hashed character n-grams of each word (padded with
    spaces, so word starts and ends count), L2-normalised; an empty text gives a zero row.

    >>> v = text_features(["laktosfri", "LAKTOSFRI", ""])
    >>> bool(np.allclose(v[0], v[1])), float(v[2].sum())
    (True, 0.0)
    """
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        counts: dict[int, int] = {}
        for word in normalise_text(text).split():
            padded = f" {word} "
            for n in ngrams:
                for i in range(max(len(padded) - n + 1, 0)):
                    h = _hash(padded[i : i + n]) % dim
                    counts[h] = counts.get(h, 0) + 1
        if counts:
            idx = np.fromiter(counts.keys(), dtype=np.int64)
            out[row, idx] = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32))
            out[row] /= np.linalg.norm(out[row])
    return out


def _hash(gram: str) -> int:
    # a stable hash (Python's str hash is salted per process)
    return int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=8).digest(), "little")
