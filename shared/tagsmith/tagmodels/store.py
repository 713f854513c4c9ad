"""Tag models in the data bucket: immutable versions, an ``active.json`` pointer, a mutable
``taxonomy.json`` (labels change without retraining) and the training status.

    tenants/<t>/models/<m>/taxonomy.json
    tenants/<t>/models/<m>/active.json                 {"version": "...", "at": "...", "reason": "..."}
    tenants/<t>/models/<m>/status.json                 pending / training / trained / failed (see trainjobs)
    tenants/<t>/models/<m>/versions/<v>/model.json
    tenants/<t>/models/<m>/versions/<v>/weights.npz
    tenants/<t>/models/<m>/versions/<v>/examples.json  content hash + tags of each training example
    tenants/<t>/models/<m>/versions/<v>/report.json|report.html
    tenants/<t>/example-copies/<sha256>                a copy of every example photo a model trained on

The example copies make a version's training set readable by the deployment whatever it came from
(a laptop's folder, a manifest whose objects were deleted since): a retrain after review starts
from exactly the examples of the active version, plus the reviewers' answers.

Moving ``active.json`` is a compare-and-swap on its ETag: two trainings (or a training and a
rollback) that decide from the same active version cannot both win silently; the loser gets a
:class:`PromotionConflictError` naming the version that won.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

from tagsmith.errors import InvalidInputError, NotFoundError, TransientError
from tagsmith.keys import model_prefix, models_prefix, tenant_prefix, validate_model_id
from tagsmith.records import utc_now
from tagsmith.storage.base import ObjectStore, PreconditionFailedError, create_once
from tagsmith.tagmodels import checks
from tagsmith.tagmodels.model import TagModel
from tagsmith.taxonomy import Taxonomy
from tagsmith.tenantcache import TenantCache

log = logging.getLogger(__name__)


class PromotionConflictError(TransientError):
    """``active.json`` moved while a promotion was being decided: another training or a rollback
    won. Transient: deciding again against the version that is active now is the way out."""

    code = "promotion_conflict"

    def __init__(self, message: str, *, active: str | None) -> None:
        super().__init__(message)
        self.active = active  # the version active when the conflict was seen


class _Whatever(enum.Enum):
    ACTIVE = "whatever is active"


#: ``activate(..., expected=WHATEVER_IS_ACTIVE)``: replace the active version, whichever it is
#: (still refused if ``active.json`` changes between this call's read and write).
WHATEVER_IS_ACTIVE: Final = _Whatever.ACTIVE


class ModelStore:
    def __init__(self, *, store: ObjectStore, bucket: str) -> None:
        self.store = store
        self.bucket = bucket

    def save_version(self, model: TagModel) -> None:
        """Write an immutable version (refuses to overwrite an existing one)."""
        base = f"{model_prefix(model.tenant, model.model_id)}versions/{model.version}/"
        model_json, weights = model.to_files()
        # create_once: a write whose acknowledgement was lost and was retried is not a conflict
        create_once(self.store, self.bucket, base + "weights.npz", weights)
        create_once(self.store, self.bucket, base + "model.json", model_json, content_type="application/json")

    def save_version_file(
        self,
        tenant: str,
        model_id: str,
        version: str,
        name: str,
        body: bytes,
        *,
        content_type: str = "application/json",
    ) -> None:
        """Write a file beside a version (report, examples); immutable like the version itself."""
        key = f"{model_prefix(tenant, model_id)}versions/{version}/{name}"
        create_once(self.store, self.bucket, key, body, content_type=content_type)

    def version_file(self, tenant: str, model_id: str, version: str, name: str) -> bytes | None:
        try:
            return self.store.get(
                self.bucket, f"{model_prefix(tenant, model_id)}versions/{version}/{name}"
            ).body
        except NotFoundError:
            return None

    def version_key(self, tenant: str, model_id: str, version: str, name: str) -> str:
        return f"{model_prefix(tenant, model_id)}versions/{version}/{name}"

    def training_examples(
        self, tenant: str, model_id: str, version: str
    ) -> dict[str, tuple[str, ...]] | None:
        """sha256 -> tags of the examples ``version`` was trained on; None if it kept no record."""
        body = self.version_file(tenant, model_id, version, "examples.json")
        if body is None:
            return None
        try:
            return {str(row["sha256"]): tuple(row["tags"]) for row in json.loads(body)["examples"]}
        except (ValueError, KeyError, TypeError):
            return None

    def example_hashes(self, tenant: str, model_id: str, version: str) -> dict[tuple[str, str], str]:
        """(source, content version) -> sha256 of the examples ``version`` was trained on that
        recorded a content version (an ETag, a file's size and mtime); empty without a record."""
        body = self.version_file(tenant, model_id, version, "examples.json")
        if body is None:
            return {}
        try:
            rows = json.loads(body)["examples"]
            return {
                (str(row["source"]), str(row["version"])): str(row["sha256"])
                for row in rows
                if row.get("version") and row.get("source") and row.get("sha256")
            }
        except (ValueError, KeyError, TypeError, AttributeError):
            return {}

    def training_order(self, tenant: str, model_id: str, version: str) -> list[str] | None:
        """Content hashes of ``version``'s examples in its training order (the order of its stored
        out-of-fold evidence); None without a record."""
        body = self.version_file(tenant, model_id, version, "examples.json")
        if body is None:
            return None
        try:
            return [str(row["sha256"]) for row in json.loads(body)["examples"]]
        except (ValueError, KeyError, TypeError):
            return None

    def example_rows(self, tenant: str, model_id: str, version: str) -> list[dict[str, Any]]:
        """``version``'s examples.json rows (sha256, tags, source, content version); [] without one."""
        body = self.version_file(tenant, model_id, version, "examples.json")
        if body is None:
            return []
        try:
            rows = json.loads(body)["examples"]
            return [dict(r) for r in rows if isinstance(r, dict) and r.get("sha256")]
        except (ValueError, KeyError, TypeError):
            return []

    def example_copy_key(self, tenant: str, sha256: str) -> str:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise InvalidInputError(f"not a sha256 content hash: {sha256!r}")
        return f"{tenant_prefix(tenant)}example-copies/{sha256}"

    def has_example_copy(self, tenant: str, sha256: str) -> bool:
        return self.store.head(self.bucket, self.example_copy_key(tenant, sha256)) is not None

    def save_example_copy(self, tenant: str, sha256: str, data: bytes) -> None:
        """Keep the photo a model trained on (content-addressed: written once, never overwritten)."""
        with contextlib.suppress(PreconditionFailedError):  # already kept: the same bytes
            self.store.put(
                self.bucket, self.example_copy_key(tenant, sha256), data, if_none_match=True,
                content_type="application/octet-stream",
            )  # fmt: skip

    def load_example_copy(self, tenant: str, sha256: str) -> bytes:
        return self.store.get(self.bucket, self.example_copy_key(tenant, sha256)).body

    def training_set(self, tenant: str, model_id: str, version: str) -> set[str] | None:
        """Content hashes of the examples ``version`` was trained on; None if it kept no record."""
        examples = self.training_examples(tenant, model_id, version)
        return None if examples is None else set(examples)

    def activate(
        self,
        tenant: str,
        model_id: str,
        version: str,
        *,
        reason: str = "",
        expected: str | Literal[_Whatever.ACTIVE] | None = WHATEVER_IS_ACTIVE,
    ) -> None:
        """Point ``active.json`` at ``version`` (promotion or rollback); the version must load.

        ``expected``: the version the caller's decision was based on (``None``: no active version).
        If another is active by now, or ``active.json`` changes before it is written (a
        conditional write on its ETag), raises :class:`PromotionConflictError` and changes nothing.
        """
        self.load_version(tenant, model_id, version)  # refuse to point at something unreadable
        key = model_prefix(tenant, model_id) + "active.json"
        previous, etag = self._active_pointer(tenant, model_id)
        if expected is not WHATEVER_IS_ACTIVE and previous != expected:
            raise PromotionConflictError(
                f"cannot make {version} the active version of {tenant}/{model_id}: it was decided against "
                f"{_describe(expected)}, but {_describe(previous)} is active now (another training or a "
                "rollback promoted it meanwhile); train again to compare with it, or activate explicitly",
                active=previous,
            )
        body = json.dumps(
            {"version": version, "previous": previous, "at": utc_now(), "reason": reason}, ensure_ascii=False
        ).encode()
        try:
            self.store.put(
                self.bucket,
                key,
                body,
                content_type="application/json",
                if_match=etag,
                if_none_match=etag is None,
            )
        except PreconditionFailedError as e:
            now, _ = self._active_pointer(tenant, model_id)
            if now == version:
                return  # this very write, whose acknowledgement was lost and whose retry found it
            raise PromotionConflictError(
                f"cannot make {version} the active version of {tenant}/{model_id}: active.json changed "
                f"while it was being written (from {_describe(previous)} to {_describe(now)}); "
                "train again to compare with it, or activate explicitly",
                active=now,
            ) from e

    def _active_pointer(self, tenant: str, model_id: str) -> tuple[str | None, str | None]:
        """(active version, ETag of ``active.json``), ``(None, None)`` when there is none."""
        try:
            stored = self.store.get(self.bucket, model_prefix(tenant, model_id) + "active.json")
        except NotFoundError:
            return None, None
        return str(json.loads(stored.body)["version"]), stored.info.etag

    def read_status(self, tenant: str, model_id: str) -> dict[str, Any] | None:
        try:
            return dict(
                json.loads(self.store.get(self.bucket, model_prefix(tenant, model_id) + "status.json").body)
            )
        except NotFoundError:
            return None

    def write_status(self, tenant: str, model_id: str, status: dict[str, Any]) -> None:
        body = json.dumps(status, ensure_ascii=False).encode()
        self.store.put(
            self.bucket, model_prefix(tenant, model_id) + "status.json", body, content_type="application/json"
        )

    def restore_status(self, tenant: str, model_id: str, status: dict[str, Any] | None) -> None:
        """Put back a status read earlier (``None``: there was none, so remove it)."""
        if status is None:
            self.store.delete(self.bucket, model_prefix(tenant, model_id) + "status.json")
        else:
            self.write_status(tenant, model_id, status)

    def delete_model(self, tenant: str, model_id: str) -> int:
        """Remove every file of a model (versions, pointer, status, taxonomy, corrections count);
        returns how many objects went. The pointer goes first, so ingest stops using the model
        before any version disappears."""
        prefix = model_prefix(tenant, model_id)
        keys = [info.key for info in self.store.list(self.bucket, prefix)]
        keys.sort(key=lambda k: k != prefix + "active.json")
        for key in keys:
            self.store.delete(self.bucket, key)
        return len(keys)

    def known_model_ids(self, tenant: str) -> list[str]:
        """Every model with an active version or a training status (a first training may be pending)."""
        prefix = models_prefix(tenant)
        ids = set()
        for info in self.store.list(self.bucket, prefix):
            model_id, _, rest = info.key[len(prefix) :].partition("/")
            if rest in ("active.json", "status.json"):
                ids.add(model_id)
        return sorted(ids)

    def version_summaries(self, tenant: str, model_id: str) -> list[dict[str, Any]]:
        """Each version with its creation time, tags, metrics and promotion decision, oldest first."""
        active = self.active_version(tenant, model_id)
        out = []
        for version in self.versions(tenant, model_id):
            meta_body = self.version_file(tenant, model_id, version, "model.json")
            if meta_body is None:
                continue  # half-written: weights without metadata
            meta = json.loads(meta_body)
            report_body = self.version_file(tenant, model_id, version, "report.json")
            promotion = (json.loads(report_body).get("promotion") if report_body else None) or {}
            out.append(
                {
                    "version": version,
                    "active": version == active,
                    "created_at": meta.get("created_at", ""),
                    "encoder_id": meta.get("encoder_id", ""),
                    "tags": len(meta.get("tags", [])),
                    "examples": sum((meta.get("examples_per_tag") or {}).values()),
                    "cv_accuracy": (meta.get("metrics") or {}).get("cv_accuracy"),
                    "promoted": promotion.get("promoted"),
                    "decision": promotion.get("reason", ""),
                }
            )
        return out

    def active_version(self, tenant: str, model_id: str) -> str | None:
        try:
            body = self.store.get(self.bucket, model_prefix(tenant, model_id) + "active.json").body
        except NotFoundError:
            return None
        return str(json.loads(body)["version"])

    def load_version(self, tenant: str, model_id: str, version: str, *, dim: int | None = None) -> TagModel:
        """One version, its files checked before they are parsed (:mod:`tagsmith.tagmodels.checks`;
        ``dim``: the encoder width the weights must have, when the caller knows it)."""
        base = f"{model_prefix(tenant, model_id)}versions/{version}/"
        try:
            meta, weights = self._checked_files(base, dim=dim)
        except NotFoundError:
            raise NotFoundError(f"tenant {tenant!r} has no model {model_id!r} version {version!r}") from None
        model = TagModel.from_files(meta, weights)
        if model.tenant != tenant or model.model_id != model_id:
            raise InvalidInputError(f"{base} holds a model of {model.tenant}/{model.model_id}: refusing it")
        taxonomy = self.taxonomy(tenant, model_id)
        if taxonomy is not None:
            model = replace(model, taxonomy=taxonomy.with_tags(model.tags))
        return model

    def _checked_files(self, base: str, *, dim: int | None) -> tuple[bytes, bytes]:
        where = f"{base}weights.npz"
        for name, limit in (
            ("model.json", checks.MAX_MODEL_JSON_BYTES),
            ("weights.npz", checks.MAX_WEIGHTS_BYTES),
        ):
            info = self.store.head(self.bucket, base + name)
            if info is None:
                raise NotFoundError(f"{base}{name} does not exist")
            if info.size > limit:
                raise InvalidInputError(f"{base}{name} is {info.size:,} bytes, over the {limit:,}-byte limit")
        meta = self.store.get(self.bucket, base + "model.json").body
        parsed = checks.check_model_json(meta, where=f"{base}model.json")
        weights = self.store.get(self.bucket, base + "weights.npz").body
        checks.check_weights(
            weights, tags=len(parsed["tags"]), dim=dim, text=checks.text_dim(parsed), where=where
        )
        return meta, weights

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


def new_version(now: datetime | None = None) -> str:
    """Version ids that sort in creation order, even for two trainings within one second:
    ``20261122-061500-123-3f9a`` (date, time, milliseconds, a random suffix against collisions)."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}-{secrets.token_hex(2)}"


def _describe(version: str | None) -> str:
    return f"version {version}" if version else "no active version"


@dataclass(frozen=True)
class BrokenModel:
    """A model whose active version cannot be loaded, and why."""

    tenant: str
    model_id: str
    version: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.model_id, "version": self.version, "error": self.reason}


class ModelLoadError(TransientError):
    """A tenant's active model version cannot be loaded. The tenant's uploads fail (and are retried,
    then dead-lettered, to be redriven once the version is fixed or rolled back) rather than being
    tagged without that model; no other tenant is affected. Transient because fixing the model
    (``tagsmith models activate`` to roll back) makes the same message succeed."""

    code = "model_load"

    def __init__(self, broken: list[BrokenModel]) -> None:
        self.broken = broken
        detail = "; ".join(f"{b.model_id} version {b.version}: {b.reason}" for b in broken)
        tenant = broken[0].tenant if broken else "?"
        super().__init__(
            f"tenant {tenant!r} has an active model version that cannot be loaded ({detail}); "
            "roll back with `tagsmith models activate` or train again"
        )


@dataclass(frozen=True)
class TenantModels:
    models: tuple[TagModel, ...]
    broken: tuple[BrokenModel, ...]


class ActiveModels:
    """The active models of each tenant, cached for ``ttl`` seconds.

    A warm Lambda container keeps its models in memory; a promotion is picked up within ``ttl``.
    Each model loads on its own: one unloadable version is reported (:meth:`broken`) while the
    tenant's other models keep working for readers (:meth:`for_tenant`: the console, decisions);
    taggers call :meth:`require`, which fails that tenant only. A failed version (versions are
    immutable) is not fetched and checked again for ``failure_ttl`` seconds, so a deflate bomb or
    a forged header costs one check, not one per message.
    """

    def __init__(
        self,
        *,
        models: ModelStore,
        ttl: float = 30.0,
        failure_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.models = models
        self.failure_ttl = failure_ttl
        self.clock = clock
        self._failures: dict[tuple[str, str, str], tuple[float, BrokenModel]] = {}
        self._cache = TenantCache(self._load, ttl=ttl, clock=clock)

    def for_tenant(self, tenant: str) -> list[TagModel]:
        """The tenant's active models that load (broken ones are left out: see :meth:`broken`)."""
        return list(self._cache.get(tenant).models)

    def broken(self, tenant: str) -> list[BrokenModel]:
        """The tenant's active versions that cannot be loaded, with the reason."""
        return list(self._cache.get(tenant).broken)

    def require(self, tenant: str) -> list[TagModel]:
        """Every active model of the tenant; raises :class:`ModelLoadError` if one cannot be loaded."""
        loaded = self._cache.get(tenant)
        if loaded.broken:
            raise ModelLoadError(list(loaded.broken))
        return list(loaded.models)

    def invalidate(self, tenant: str | None = None) -> None:
        self._cache.invalidate(tenant)
        for key in [k for k in self._failures if tenant is None or k[0] == tenant]:
            del self._failures[key]

    def _load(self, tenant: str) -> TenantModels:
        models: list[TagModel] = []
        broken: list[BrokenModel] = []
        now = self.clock()
        for mid in self.models.model_ids(tenant):
            version = self.models.active_version(tenant, mid)  # a TransientError propagates: retry
            if version is None:
                continue
            key = (tenant, mid, version)
            failed = self._failures.get(key)
            if failed is not None and now - failed[0] < self.failure_ttl:
                broken.append(failed[1])
                continue
            try:
                models.append(self.models.load_version(tenant, mid, version))
            except TransientError:
                raise
            except Exception as e:  # anything else about these bytes: the version is broken
                reason = f"{type(e).__name__}: {e}"[:500]
                found = BrokenModel(tenant, mid, version, reason)
                self._failures[key] = (now, found)
                broken.append(found)
                log.error(
                    "model %s version %s cannot be loaded: %s",
                    mid,
                    version,
                    reason,
                    extra={"tenant": tenant, "model": mid, "version": version},
                )
        return TenantModels(tuple(models), tuple(broken))
