"""Errors raised by Tagsmith: one tree, each class with its ``code`` and whether it is ``retryable``.

The tree (the classes outside this module live with their feature; ``tests/unit/test_errors.py``
checks that every error class is drawn here with the code it declares)::

    class                          code                retry?
    TagsmithError                  tagsmith_error      no   the base: an error Tagsmith raises on purpose
    ├── TransientError             transient           yes  a dependency was slow or unavailable
    │   ├── ModelLoadError         model_load          yes  a tenant's active model cannot be loaded (tagmodels.store)
    │   ├── PromotionConflictError promotion_conflict  yes  another promotion won the race (tagmodels.store)
    │   └── RetrainRateError       retrain_rate        yes  over the tenant's retrains per hour (retrains)
    ├── InvalidInputError          invalid_input       no   poison: the input itself is wrong; record it
    │   ├── InvalidKeyError        invalid_key         no   an object key outside any tenant prefix, a bad id
    │   ├── UnsupportedMediaError  unsupported_media   no   bytes that are not an image (or video) we decode
    │   ├── ImageTooLargeError     image_too_large     no   an image declaring more pixels than we decode
    │   ├── TrainingInputError     training_input      no   examples or a taxonomy that cannot train a model
    │   ├── BackfillError          backfill_request    no   a backfill request that cannot be carried out (backfill)
    │   ├── DecisionError          decision_request    no   a review decision that cannot be applied (decisions)
    │   ├── LibraryImportError     import_request      no   an import that cannot start as asked (libraryimport)
    │   ├── VideoJobMessageError   video_job_message   no   a video-jobs message that is not a job step (video.jobstate)
    │   └── WebhookError           webhook_request     no   a subscription that cannot be accepted (outbound.webhooks)
    ├── NotFoundError              not_found           no   a tenant, model, version or record that does not exist
    ├── ConfigurationError         configuration       no   a setting is missing or malformed: fix the deployment
    │   └── UnknownEncoderError    unknown_encoder     no   a model names an encoder this deployment cannot run (encoder.registry)
    ├── VideoJobGaveUpError        video_job_gave_up   no   a job step kept failing, not for the file's sake (videojobs)
    ├── AuthError                  unauthenticated     no   missing, expired or revoked credentials (auth)
    ├── ForbiddenError             forbidden           no   a valid token whose role may not do this (console.api)
    ├── PreconditionFailedError    precondition_failed yes  a compare-and-swap write lost its race (storage.base)
    ├── SearchIndexError           search_index        no   the search cluster refused a request (search.index)
    └── WeightsFileError           weights_file        no   encoder weights missing or altered: reinstall (encoder.torch_legacy)

``code`` is what a ``failed`` asset record carries (:class:`tagsmith.records.Failure`) and what a
log line names; ``retryable`` says whether the same request can succeed later without anyone
changing the input. :class:`VideoJobGaveUpError` is not an input error: the file may be fine, so a
record failed with it is tried again by the next upload event or backfill.

Adapters translate SDK errors with ``raise ... from e``; every message says what was wrong and what
to do about it.
"""

from __future__ import annotations

from typing import ClassVar


class TagsmithError(Exception):
    """Base class of every error Tagsmith raises on purpose."""

    code: ClassVar[str] = "tagsmith_error"
    retryable: ClassVar[bool] = False


class TransientError(TagsmithError):
    """A dependency failed in a way that may succeed on retry."""

    code = "transient"
    retryable = True


class InvalidInputError(TagsmithError):
    """The input is wrong; retrying the same input can never succeed."""

    code = "invalid_input"


class InvalidKeyError(InvalidInputError):
    """An object key or tenant id that does not follow the layout."""

    code = "invalid_key"


class UnsupportedMediaError(InvalidInputError):
    """Bytes that cannot be decoded as a supported image or video."""

    code = "unsupported_media"


class TrainingInputError(InvalidInputError):
    """Training examples or a taxonomy that cannot produce a model."""

    code = "training_input"


class ConfigurationError(TagsmithError):
    """A deployment setting is missing or malformed (the environment, a recipe id)."""

    code = "configuration"


class NotFoundError(TagsmithError):
    """A tenant, model, version or record that does not exist."""

    code = "not_found"


class ImageTooLargeError(InvalidInputError):
    """An image whose header declares more pixels than the decoder accepts.

    Raised before any pixel is decoded, so a decompression bomb costs only its header.
    """

    code = "image_too_large"
