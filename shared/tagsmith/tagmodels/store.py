"""Tag models in the data bucket: immutable versions, an ``active.json`` pointer, and a mutable
``taxonomy.json`` (labels change without retraining).

    tenants/<t>/models/<m>/taxonomy.json
    tenants/<t>/models/<m>/active.json                 {"version": "..."}
    tenants/<t>/models/<m>/versions/<v>/model.json
    tenants/<t>/models/<m>/versions/<v>/weights.npz
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from tagsmith.errors import InvalidInputError, NotFoundError
from tagsmith.keys import model_prefix, models_prefix, validate_model_id
from tagsmith.storage.base import ObjectStore
from tagsmith.tagmodels.model import TagModel
from tagsmith.taxonomy import Taxonomy


class ModelStore:
    def __init__(self, *, store: ObjectStore, bucket: str) -> None:
        self.store = store
        self.bucket = bucket

    def save_version(self, model: TagModel) -> None:
        """Write an immutable version (refuses to overwrite an existing one)."""
        base = f"{model_prefix(model.tenant, model.model_id)}versions/{model.version}/"
        model_json, weights = model.to_files()
        self.store.put(self.bucket, base + "weights.npz", weights, if_none_match=True)
        self.store.put(self.bucket, base + "model.json", model_json, content_type="application/json", if_none_match=True)

    def activate(self, tenant: str, model_id: str, version: str) -> None:
        self.load_version(tenant, model_id, version)  # refuse to point at something unreadable
        body = json.dumps({"version": version}).encode()
        self.store.put(self.bucket, model_prefix(tenant, model_id) + "active.json", body, content_type="application/json")

    def active_version(self, tenant: str, model_id: str) -> str | None:
        try:
            body = self.store.get(self.bucket, model_prefix(tenant, model_id) + "active.json").body
        except NotFoundError:
            return None
        return str(json.loads(body)["version"])

    def load_version(self, tenant: str, model_id: str, version: str) -> TagModel:
        base = f"{model_prefix(tenant, model_id)}versions/{version}/"
        try:
            meta = self.store.get(self.bucket, base + "model.json").body
            weights = self.store.get(self.bucket, base + "weights.npz").body
        except NotFoundError:
            raise NotFoundError(f"tenant {tenant!r} has no model {model_id!r} version {version!r}") from None
        model = TagModel.from_files(meta, weights)
        if model.tenant != tenant or model.model_id != model_id:
            raise InvalidInputError(f"{base} holds a model of {model.tenant}/{model.model_id}: refusing it")
        taxonomy = self.taxonomy(tenant, model_id)
        if taxonomy is not None:
            model = replace(model, taxonomy=taxonomy.with_tags(model.tags))
        return model

    def load_active(self, tenant: str, model_id: str) -> TagModel | None:
        version = self.active_version(tenant, model_id)
        return self.load_version(tenant, model_id, version) if version else None

    def model_ids(self, tenant: str) -> list[str]:
        prefix = models_prefix(tenant)
        ids = set()
        for info in self.store.list(self.bucket, prefix):
            model_id, _, rest = info.key[len(prefix) :].partition("/")
            if rest == "active.json":
                ids.add(model_id)
        return sorted(ids)

    def versions(self, tenant: str, model_id: str) -> list[str]:
        prefix = model_prefix(tenant, model_id) + "versions/"
        return sorted({i.key[len(prefix) :].split("/")[0] for i in self.store.list(self.bucket, prefix)})

    def taxonomy(self, tenant: str, model_id: str) -> Taxonomy | None:
        try:
            body = self.store.get(self.bucket, model_prefix(tenant, model_id) + "taxonomy.json").body
        except NotFoundError:
            return None
        return Taxonomy.from_json(body)

    def save_taxonomy(self, tenant: str, model_id: str, taxonomy: Taxonomy) -> None:
        validate_model_id(model_id)
        self.store.put(self.bucket, model_prefix(tenant, model_id) + "taxonomy.json", taxonomy.to_json())


class ActiveModels:
    """The active models of each tenant, cached for ``ttl`` seconds.

    A warm Lambda container keeps its models in memory; a promotion is picked up within ``ttl``.
    """

    def __init__(self, *, models: ModelStore, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.models = models
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, list[TagModel]]] = {}
        self._lock = threading.Lock()

    def for_tenant(self, tenant: str) -> list[TagModel]:
        now = self.clock()
        with self._lock:
            hit = self._cache.get(tenant)
            if hit and now - hit[0] < self.ttl:
                return hit[1]
        loaded = [m for mid in self.models.model_ids(tenant) if (m := self.models.load_active(tenant, mid))]
        with self._lock:
            self._cache[tenant] = (now, loaded)
        return loaded

    def invalidate(self, tenant: str | None = None) -> None:
        with self._lock:
            if tenant is None:
                self._cache.clear()
            else:
                self._cache.pop(tenant, None)
