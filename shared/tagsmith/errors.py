"""Errors raised by Tagsmith.

The tree::

    TagsmithError
    ├── TransientError            retry later: a dependency was slow or unavailable
    └── InvalidInputError         poison: the input itself is wrong; record it, never retry
        ├── InvalidKeyError       an object key outside any tenant prefix, or a bad tenant id
        ├── UnsupportedMediaError the bytes are not an image (or video) we can decode
        ├── ImageTooLargeError    an image whose header declares more pixels than we decode
        └── TrainingInputError    examples or a taxonomy that cannot train a model
    ├── ConfigurationError        a setting is missing or malformed: fix the deployment
    └── NotFoundError             a tenant, model, version or record that does not exist

Adapters translate SDK errors with ``raise ... from e``; every message says what was wrong and what
to do about it.
"""

from __future__ import annotations


class TagsmithError(Exception):
    """Base class of every error Tagsmith raises on purpose."""


class TransientError(TagsmithError):
    """A dependency failed in a way that may succeed on retry."""


class InvalidInputError(TagsmithError):
    """The input is wrong; retrying the same input can never succeed."""


class InvalidKeyError(InvalidInputError):
    """An object key or tenant id that does not follow the layout."""


class UnsupportedMediaError(InvalidInputError):
    """Bytes that cannot be decoded as a supported image or video."""


class TrainingInputError(InvalidInputError):
    """Training examples or a taxonomy that cannot produce a model."""


class ConfigurationError(TagsmithError):
    """A deployment setting is missing or malformed (the environment, a recipe id)."""


class NotFoundError(TagsmithError):
    """A tenant, model, version or record that does not exist."""


class ImageTooLargeError(InvalidInputError):
    """An image whose header declares more pixels than the decoder accepts.

    Raised before any pixel is decoded, so a decompression bomb costs only its header.
    """
