"""Training as a job: a request object written to the data bucket triggers training; its status
(pending / training / trained / failed) is written beside the model so the CLI and console see it.

Request: ``tenants/<t>/training-requests/<name>.train.json``::

    {"model": "product", "examples": "s3://bucket/prefix/", "kind": "exclusive", "threshold": 0.8}

Status: ``tenants/<t>/models/<m>/status.json``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from tagsmith.errors import InvalidInputError, InvalidKeyError
from tagsmith.keys import model_prefix, tenant_prefix, validate_tenant
from tagsmith.records import utc_now
from tagsmith.storage import ObjectStore
from tagsmith.tagmodels import ModelKind
from tagsmith.trainer import TrainingService, examples_from_prefix

log = logging.getLogger(__name__)
REQUEST_SUFFIX = ".train.json"


@dataclass(frozen=True)
class TrainingRequest:
    tenant: str
    model: str
    examples_bucket: str
    examples_prefix: str
    kind: ModelKind = ModelKind.EXCLUSIVE
    threshold: float = 0.8

    @classmethod
    def parse(cls, key: str, body: bytes) -> TrainingRequest:
        parts = key.split("/")
        if len(parts) < 4 or parts[0] != "tenants" or parts[2] != "training-requests":
            raise InvalidKeyError(f"{key!r} is not a training request key (tenants/<t>/training-requests/<n>.train.json)")
        tenant = validate_tenant(parts[1])
        try:
            d = json.loads(body)
            uri = str(d["examples"])
            if not uri.startswith("s3://"):
                raise ValueError(f"'examples' must be an s3:// URI, got {uri!r}")
            bucket, _, prefix = uri[5:].partition("/")
            return cls(tenant, str(d["model"]), bucket, prefix, ModelKind(d.get("kind", "exclusive")),
                       float(d.get("threshold", 0.8)))
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidInputError(f"training request {key} is malformed: {e}") from e


class TrainingJobs:
    def __init__(self, *, store: ObjectStore, data_bucket: str, trainer: TrainingService) -> None:
        self.store = store
        self.data_bucket = data_bucket
        self.trainer = trainer

    def status(self, tenant: str, model: str) -> dict[str, Any] | None:
        from tagsmith.errors import NotFoundError

        try:
            return dict(json.loads(self.store.get(self.data_bucket, model_prefix(tenant, model) + "status.json").body))
        except NotFoundError:
            return None

    def _set_status(self, tenant: str, model: str, state: str, **extra: Any) -> None:
        body = json.dumps({"state": state, "at": utc_now(), **extra}, ensure_ascii=False).encode()
        self.store.put(self.data_bucket, model_prefix(tenant, model) + "status.json", body)

    def run(self, key: str) -> dict[str, Any]:
        """Run the request at ``key`` in the data bucket. User errors end as status ``failed``."""
        body = self.store.get(self.data_bucket, key).body
        req = TrainingRequest.parse(key, body)
        # a tenant may only train from its own examples: its prefix in the data bucket, or its
        # folder in another bucket
        own = req.examples_prefix.startswith(tenant_prefix(req.tenant)) or req.examples_prefix.startswith(f"{req.tenant}/")
        if not own:
            self._set_status(req.tenant, req.model, "failed", error=f"examples {req.examples_prefix!r} are outside tenant {req.tenant}")
            return {"state": "failed"}
        self._set_status(req.tenant, req.model, "training", request=key)
        try:
            examples, taxonomy = examples_from_prefix(self.store, req.examples_bucket, req.examples_prefix)
            report = self.trainer.train(
                tenant=req.tenant, model_id=req.model, examples=examples, taxonomy=taxonomy,
                kind=req.kind, threshold=req.threshold,
            )
        except InvalidInputError as e:
            log.warning("training %s/%s failed: %s", req.tenant, req.model, e)
            self._set_status(req.tenant, req.model, "failed", error=str(e), request=key)
            return {"state": "failed", "error": str(e)}
        self._set_status(req.tenant, req.model, "trained", version=report.version, report=report.to_dict())
        return {"state": "trained", "version": report.version}
