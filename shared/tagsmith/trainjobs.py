"""Training as a job: a request written to the data bucket triggers training; its status
(pending / training / trained / failed) is written beside the model so the CLI and console see it.

Requests, in the data bucket:

* ``tenants/<t>/training-requests/<name>.train.json``::

      {"model": "product", "examples": "s3://bucket/prefix/", "kind": "exclusive"}

``"threshold": 0.8`` would apply every tag at or above that confidence; without it, thresholds are
calibrated per tag by cross-validation for the model's target precision (98%).

  ``examples`` is an ``s3://`` prefix of tag folders or an ``s3://`` manifest (CSV, JSON lines,
  Ground Truth / Rekognition Custom Labels; see :mod:`tagsmith.manifests`), or a list of them.
  Optional: ``"corrections": true`` adds what reviewers confirmed, ``"previous_examples": true``
  the examples the active version was trained on (what a retrain after review starts from; a
  reviewer's answer about the same photo wins), ``"force": true`` promotes
  without comparison, ``"label_attribute"`` picks a Ground Truth attribute,
  ``"allow_near_duplicates": true``, ``"review_floor"``, ``"augment": N`` (augmented views per
  example photo, 0-8, default 2; see :mod:`tagsmith.trainer`).
* ``tenants/<t>/training-requests/<model>/<name>.csv|.jsonl|.manifest``: a manifest dropped as is
  trains ``<model>`` with the defaults (relative paths resolve beside it).

A tenant trains only from its own objects: keys under ``tenants/<t>/`` in the data bucket, or under
``<t>/`` in another bucket (the assets bucket's layout).

Status, ``tenants/<t>/models/<m>/status.json``::

    {"state": "trained", "at": "...", "request": "<key>", "request_etag": "...", "version": "...",
     "promoted": true, "decision": "...", "report": {...summary...}, "report_key": ".../report.json"}

Delivery is at least once: a request whose status already records its key and ETag as trained or
failed is not run again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from tagsmith.errors import InvalidInputError, InvalidKeyError
from tagsmith.examples import examples_from_corrections, examples_from_version, object_loader
from tagsmith.keys import has_plain_segments, tenant_prefix, validate_model_id, validate_tenant
from tagsmith.manifests import MANIFEST_SUFFIXES, ExampleSet, combine, load_examples
from tagsmith.records import utc_now
from tagsmith.storage import ObjectStore, RecordStore
from tagsmith.tagmodels import ModelKind
from tagsmith.tagmodels.model import DEFAULT_REVIEW_FLOOR
from tagsmith.trainer import DEFAULT_AUGMENT_VIEWS, TrainingOptions, TrainingService, validate_augment
from tagsmith.training_report import TrainingReport

log = logging.getLogger(__name__)
REQUEST_SUFFIX = ".train.json"
REQUESTS_DIR = "training-requests"


class TrainingState:
    PENDING = "pending"
    TRAINING = "training"
    TRAINED = "trained"
    FAILED = "failed"


@dataclass(frozen=True)
class TrainingRequest:
    tenant: str
    model: str
    examples: tuple[str, ...] = ()  # s3:// prefixes or manifests
    kind: ModelKind = ModelKind.EXCLUSIVE
    threshold: float | None = None  # None: calibrated per tag
    review_floor: float = DEFAULT_REVIEW_FLOOR
    force: bool = False
    corrections: bool = False
    previous_examples: bool = False  # the active version's examples (a retrain after review)
    label_attribute: str | None = None
    allow_near_duplicates: bool = False
    text: bool | None = None  # OCR text as a feature; None: as the active version does
    augment: int | None = None  # augmented views per example photo; None: the trainer's default

    @classmethod
    def from_dict(cls, tenant: str, d: dict[str, Any], *, where: str) -> TrainingRequest:
        try:
            raw = d.get("examples", d.get("manifest", ()))
            examples = (raw,) if isinstance(raw, str) else tuple(str(e) for e in raw)
            req = cls(
                tenant=validate_tenant(tenant),
                model=validate_model_id(str(d["model"])),
                examples=examples,
                kind=ModelKind(d.get("kind", "exclusive")),
                threshold=float(d["threshold"]) if d.get("threshold") is not None else None,
                review_floor=float(d.get("review_floor", DEFAULT_REVIEW_FLOOR)),
                force=bool(d.get("force", False)),
                corrections=bool(d.get("corrections", False)),
                previous_examples=bool(d.get("previous_examples", False)),
                label_attribute=d.get("label_attribute"),
                allow_near_duplicates=bool(d.get("allow_near_duplicates", False)),
                text=_optional_bool(d.get("text"), "text"),
                augment=None if d.get("augment") is None else validate_augment(d["augment"]),
            )
        except InvalidKeyError as e:
            raise InvalidInputError(f"training request {where}: {e}") from e
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidInputError(
                f"training request {where} is malformed ({e}); expected "
                '{"model": "<model id>", "examples": "s3://bucket/prefix/ or manifest", "kind": "exclusive"}'
            ) from e
        if not req.examples and not req.corrections and not req.previous_examples:
            raise InvalidInputError(
                f"training request {where} names no examples: set 'examples', 'corrections': true or "
                "'previous_examples': true"
            )
        bad = [e for e in req.examples if not e.startswith("s3://")]
        if bad:
            raise InvalidInputError(
                f"training request {where}: examples must be s3:// URIs, got {', '.join(bad)}"
            )
        return req

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "model": self.model,
            "examples": list(self.examples),
            "kind": self.kind.value,
            "threshold": self.threshold,
            "review_floor": self.review_floor,
        }
        for name in ("force", "corrections", "previous_examples", "allow_near_duplicates"):
            if getattr(self, name):
                d[name] = True
        if self.label_attribute:
            d["label_attribute"] = self.label_attribute
        if self.text is not None:
            d["text"] = self.text
        if self.augment is not None:
            d["augment"] = self.augment
        return d


def _optional_bool(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"{name!r} must be true, false or absent, got {value!r}")


def is_request_key(key: str) -> bool:
    parts = key.split("/")
    if len(parts) < 4 or parts[0] != "tenants" or parts[2] != REQUESTS_DIR:
        return False
    return (len(parts) == 4 and key.endswith(REQUEST_SUFFIX)) or (
        len(parts) == 5 and key.lower().endswith(MANIFEST_SUFFIXES)
    )


def parse_request(key: str, body: bytes, *, data_bucket: str) -> TrainingRequest:
    """The request stored at ``key``: a ``.train.json`` request or a manifest dropped under a model."""
    if not is_request_key(key):
        raise InvalidKeyError(
            f"{key!r} is not a training request: expected tenants/<t>/{REQUESTS_DIR}/<name>{REQUEST_SUFFIX} "
            f"or tenants/<t>/{REQUESTS_DIR}/<model>/<name>.csv|.jsonl|.manifest"
        )
    parts = key.split("/")
    tenant = validate_tenant(parts[1])
    if len(parts) == 5:
        return TrainingRequest.from_dict(
            tenant, {"model": parts[3], "examples": f"s3://{data_bucket}/{key}"}, where=key
        )
    try:
        d = json.loads(body)
    except (ValueError, RecursionError) as e:  # RecursionError: nested deeper than the parser goes
        raise InvalidInputError(f"training request {key} is not JSON: {e}") from e
    if not isinstance(d, dict):
        raise InvalidInputError(f"training request {key} must be a JSON object")
    return TrainingRequest.from_dict(tenant, d, where=key)


class TrainingJobs:
    """Runs training requests and keeps each model's status. Clients are injected."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        data_bucket: str,
        trainer: TrainingService,
        records: RecordStore | None = None,
        assets_bucket: str = "",
    ) -> None:
        self.store = store
        self.data_bucket = data_bucket
        self.trainer = trainer
        self.records = records
        self.assets_bucket = assets_bucket

    # --- status -------------------------------------------------------------------------------------
    def status(self, tenant: str, model: str) -> dict[str, Any] | None:
        return self.trainer.models.read_status(tenant, model)

    def _set_status(self, tenant: str, model: str, state: str, **extra: Any) -> dict[str, Any]:
        status = {
            "state": state,
            "at": utc_now(),
            "tenant": tenant,
            "model": model,
            **{k: v for k, v in extra.items() if v is not None},
        }
        self.trainer.models.write_status(tenant, model, status)
        return status

    # --- entry points -------------------------------------------------------------------------------
    def submit(self, request: TrainingRequest, *, name: str | None = None) -> str:
        """Accept a request: status ``pending``, then the request object (whose creation triggers the
        handler). Pending is written first so it can never overwrite a faster ``training``."""
        name = name or f"{request.model}-{utc_now().replace(':', '').replace('.', '')}"
        key = f"{tenant_prefix(request.tenant)}{REQUESTS_DIR}/{name}{REQUEST_SUFFIX}"
        self._set_status(request.tenant, request.model, TrainingState.PENDING, request=key)
        self.store.put(
            self.data_bucket, key, json.dumps(request.to_dict()).encode(), content_type="application/json"
        )
        return key

    def run(self, key: str) -> dict[str, Any]:
        """Run the request at ``key`` in the data bucket; user errors end as status ``failed``.

        Keys that are not requests are ignored; an already finished request is not run twice.
        """
        if not is_request_key(key):
            log.info("not a training request, ignored: %s", key)
            return {"state": "ignored", "key": key}
        obj = self.store.get(self.data_bucket, key)
        parts = key.split("/")
        try:
            req = parse_request(key, obj.body, data_bucket=self.data_bucket)
        except InvalidInputError as e:
            model = parts[3] if len(parts) == 5 else _model_hint(obj.body)
            if model:
                self._set_status(
                    parts[1],
                    model,
                    TrainingState.FAILED,
                    error=str(e),
                    request=key,
                    request_etag=obj.info.etag,
                )
            raise
        previous = self.status(req.tenant, req.model) or {}
        if (
            previous.get("request") == key
            and previous.get("request_etag") == obj.info.etag
            and previous.get("state") in (TrainingState.TRAINED, TrainingState.FAILED)
        ):
            log.info("training request %s already %s: not run again", key, previous["state"])
            return previous
        return self.train_now(req, request_key=key, request_etag=obj.info.etag)

    def train_now(
        self,
        req: TrainingRequest,
        *,
        request_key: str | None = None,
        request_etag: str | None = None,
        local_paths: bool = False,
        keep_failure: bool = True,
        on_examples: Callable[[ExampleSet], None] | None = None,
    ) -> dict[str, Any]:
        """Train synchronously with status updates (the CLI's ``tagsmith train`` and :meth:`run`).
        User errors end as status ``failed`` and are returned; others are raised (to be retried).

        ``keep_failure=False`` (a person watching, the CLI): a user error puts the status back as
        it was, so a first training that failed leaves no model behind; the failure is still
        returned. ``on_examples`` sees the examples once they are listed, before any is read."""
        started = time.perf_counter()
        ids = {"request": request_key, "request_etag": request_etag}
        before = None if keep_failure else self.status(req.tenant, req.model)
        self._set_status(req.tenant, req.model, TrainingState.TRAINING, started_at=utc_now(), **ids)
        try:
            examples = self._examples(req, local_paths=local_paths)
            if on_examples is not None:
                on_examples(examples)
            report = self.trainer.train(
                tenant=req.tenant,
                model_id=req.model,
                examples=examples.examples,
                taxonomy=examples.taxonomy,
                source=examples.source,
                source_warnings=examples.warnings,
                options=TrainingOptions(
                    kind=req.kind,
                    threshold=req.threshold,
                    review_floor=req.review_floor,
                    force=req.force,
                    allow_near_duplicates=req.allow_near_duplicates,
                    text=req.text,
                    augment=DEFAULT_AUGMENT_VIEWS if req.augment is None else req.augment,
                ),
            )
        except InvalidInputError as e:
            log.warning("training %s/%s failed: %s", req.tenant, req.model, e)
            failed = {
                "error": str(e),
                "seconds": round(time.perf_counter() - started, 3),
                **ids,
            }
            if not keep_failure:
                self.trainer.models.restore_status(req.tenant, req.model, before)
                return {"state": TrainingState.FAILED, "tenant": req.tenant, "model": req.model, **failed}
            return self._set_status(req.tenant, req.model, TrainingState.FAILED, **failed)
        except Exception as e:
            if not keep_failure:  # nobody retries a command: it says what went wrong, and that is all
                self.trainer.models.restore_status(req.tenant, req.model, before)
                raise
            self._set_status(
                req.tenant,
                req.model,
                TrainingState.FAILED,
                error=f"{type(e).__name__}: {e}",
                retrying=True,
                **ids,
            )
            raise
        return self._trained(req, report, ids)

    def _trained(self, req: TrainingRequest, report: TrainingReport, ids: dict[str, Any]) -> dict[str, Any]:
        models = self.trainer.models
        promotion = report.promotion
        return self._set_status(
            req.tenant,
            req.model,
            TrainingState.TRAINED,
            version=report.version,
            promoted=bool(promotion and promotion.promoted),
            decision=promotion.reason if promotion else None,
            warnings=report.warnings,
            report=report.summary(),
            report_key=models.version_key(req.tenant, req.model, report.version, "report.json"),
            report_html_key=models.version_key(req.tenant, req.model, report.version, "report.html"),
            seconds=report.seconds,
            **ids,
        )

    # --- examples -----------------------------------------------------------------------------------
    def _allowed(self, tenant: str) -> Any:
        own = tenant_prefix(tenant)

        def allowed(bucket: str, key: str) -> bool:
            # a prefix passes with its trailing "/"; ".." and empty segments never do (S3 keeps
            # them literally, a folder or a later join may not)
            inside = key.startswith(own if bucket == self.data_bucket else f"{tenant}/")
            return inside and has_plain_segments(key.removesuffix("/"))

        return allowed

    def _examples(self, req: TrainingRequest, *, local_paths: bool) -> ExampleSet:
        allowed = None if local_paths else self._allowed(req.tenant)
        sets = [
            load_examples(
                loc,
                store=self.store,
                label_attribute=req.label_attribute,
                s3_allowed=allowed,
                local_allowed=local_paths,
            )
            for loc in req.examples
        ]
        if req.corrections:
            sets.append(self.corrections(req.tenant, req.model))
        if req.previous_examples:
            decided = {ex.sha256 for s in sets for ex in s.examples if ex.sha256}
            sets.append(self.previous_examples(req.tenant, req.model, skip=decided, allowed=allowed))
        return combine(sets)

    def previous_examples(
        self,
        tenant: str,
        model: str,
        *,
        skip: Collection[str] = (),
        allowed: Any = None,
    ) -> ExampleSet:
        """The examples the active version was trained on, but for photos in ``skip`` (a reviewer
        answered about them since: their answer is the newer truth)."""
        models = self.trainer.models
        version = models.active_version(tenant, model)
        if version is None:
            return ExampleSet([], None, [], "no active version: no previous examples")

        def source_loader(source: str) -> Any:
            if not source.startswith("s3://"):
                return None  # a path on the machine that trained it: only the kept copy can tell
            bucket, _, key = source[len("s3://") :].partition("/")
            if allowed is not None and not allowed(bucket, key):
                return None
            return object_loader(self.store, bucket, key)

        examples = [
            ex
            for ex in examples_from_version(models, tenant, model, version, source_loader=source_loader)
            if ex.sha256 not in skip
        ]
        return ExampleSet(examples, None, [], f"the examples of version {version} ({len(examples)})")

    def corrections(self, tenant: str, model: str) -> ExampleSet:
        if self.records is None or not self.assets_bucket:
            raise InvalidInputError(
                "this deployment has no record store or assets bucket: corrections are unavailable"
            )
        examples = examples_from_corrections(
            self.records.iter_tenant(tenant), model, self.store, self.assets_bucket
        )
        return ExampleSet(examples, None, [], f"reviewers' corrections ({len(examples)})")


def _model_hint(body: bytes) -> str | None:
    """The model a malformed request was meant for, if it can be told (so its status says failed)."""
    try:
        model = json.loads(body).get("model")
        return validate_model_id(model) if isinstance(model, str) else None
    except (ValueError, AttributeError, InvalidKeyError):
        return None


def describe_status(status: dict[str, Any] | None) -> str:
    """One line for a human: ``trained 20261122-061500-3f9a (promoted) at ...``."""
    if not status:
        return "never trained"
    state = status.get("state", "?")
    at = status.get("at", "")
    if state == TrainingState.TRAINED:
        promoted = "promoted" if status.get("promoted") else "not promoted"
        return f"trained {status.get('version')} ({promoted}) at {at}"
    if state == TrainingState.FAILED:
        retry = " (will be retried)" if status.get("retrying") else ""
        return f"failed at {at}{retry}: {status.get('error', '')}"
    return f"{state} since {at}"


__all__: Sequence[str] = (
    "REQUEST_SUFFIX",
    "TrainingJobs",
    "TrainingRequest",
    "TrainingState",
    "describe_status",
    "is_request_key",
    "parse_request",
)
