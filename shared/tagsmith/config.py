"""Settings, and the one mapping between them and the environment.

Every entry point builds its settings here and passes them down; nothing else in the library reads
the environment or spells a ``TAGSMITH_*`` name:

* a handler (:func:`tagsmith.lazy.lazy_components`) and ``--target aws``: :meth:`Settings.from_env`;
* the local stack and ``--target files``: :meth:`Settings.local`, the environment's tuning
  (recipe, retrain rule, limits) with the stack's own buckets, queues and endpoints; the stack hands
  its functions :meth:`Settings.to_env` of the same object, as Lambda would;
* the AWS template (``infra/aws/generate.py``): :data:`ENV_NAMES`, the same names with CloudFormation
  values;
* the local stack's own knobs (ports, state folder): :class:`LocalSettings`.

Example::

    >>> s = Settings.from_env({"TAGSMITH_DATA_BUCKET": "data", "TAGSMITH_RETRAIN_EVERY": "5"})
    >>> s.retrain_every, s.to_env()["TAGSMITH_RETRAIN_EVERY"]
    (5, '5')
    >>> Settings.from_env(s.to_env()) == s
    True
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from tagsmith.errors import ConfigurationError

__all__ = [
    "ENV_NAMES",
    "LOCAL_ENV_NAMES",
    "RESOURCE_FIELDS",
    "ConfigurationError",
    "LocalSettings",
    "Settings",
    "tuning_env",
]


@dataclass(frozen=True)
class Settings:
    data_bucket: str
    assets_bucket: str = ""
    training_queue_url: str = ""
    backfill_queue_url: str = ""
    # where `tagsmith import` sends the events of objects that raised none (a library already in the
    # assets bucket); the functions never send there, so the template does not set it for them
    ingest_queue_url: str = ""
    ingest_dlq_url: str = ""  # counted in `tagsmith import`'s summary
    video_jobs_queue_url: str = ""  # long videos run as jobs from this queue; "" = always inline
    video_inline_seconds: float = 180.0  # longer videos become jobs
    video_window_seconds: float = 120.0  # video time per job window
    event_bus: str = ""  # EventBridge bus for change events (tagsmith.outbound); "" = none published
    webhooks_queue_url: str = ""  # the webhooks consumer's queue: where its retries go
    webhooks_dlq_url: str = ""  # where deliveries that gave up go
    # webhook URLs on loopback or private addresses, and plain http: only for a local stack
    webhooks_allow_private: bool = False
    backfill_rate: float = 50.0  # assets per second a backfill queues, at most
    opensearch_url: str = ""
    opensearch_auth: str = ""  # "sigv4" on Amazon OpenSearch Service; "" = none (osmem, local)
    region: str = "us-east-1"
    endpoint_url: str | None = None  # moto or another S3/SQS-compatible endpoint; None = AWS
    encoder_cache_dir: Path = Path.home() / ".cache" / "tagsmith"
    encoder_spec: Path | None = None  # an operator's ONNX encoder spec JSON; None = the built-in recipes
    encoder_recipe: str | None = None  # a built-in recipe id (tagsmith.encoder.RECIPES); None = the default
    # the recipes the trainer picks between per model (tagsmith.encoder.CANDIDATE_RECIPES when
    # None and no recipe is pinned; only the pinned recipe when one is)
    encoder_candidates: tuple[str, ...] | None = None
    retrain_every: int = 25  # review corrections of a model that trigger a retrain (0: never)
    max_object_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 100_000_000  # 10,000 x 10,000; larger images are refused before decoding
    model_cache_seconds: float = 30.0
    sweep_settle_seconds: float = 60.0  # the sweep leaves records younger than this to its next run

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **fixed: Any) -> Settings:
        """Settings from ``env`` (default ``os.environ``); ``fixed`` fields are not read from it.

        A variable that is unset or empty leaves its field at the default.
        """
        e = os.environ if env is None else env
        values = dict(fixed)
        for var in _VARS:
            if var.field in values:
                continue
            raw = next((e[n] for n in var.names if e.get(n)), "")
            if raw:
                try:
                    values[var.field] = var.parse(raw)
                except ValueError as err:
                    raise ConfigurationError(f"{var.names[0]}={raw!r} is malformed: {err}") from err
        if not values.get("data_bucket"):
            raise ConfigurationError(
                f"{ENV_NAMES['data_bucket']} is not set: name the bucket that holds records and models"
            )
        return cls(**values)

    @classmethod
    def local(cls, env: Mapping[str, str] | None = None, **resources: Any) -> Settings:
        """Settings of an entry point that decides where its resources are (the local stack,
        ``--target files``): ``resources`` as given, every other :data:`RESOURCE_FIELDS` field at
        its default, and the rest (recipe, retrain rule, limits) from ``env`` as for
        :meth:`from_env`. An AWS deployment's bucket or queue in the environment is ignored."""
        defaults = {f.name: f.default for f in fields(cls) if f.name in RESOURCE_FIELDS}
        return cls.from_env(env, **(defaults | resources))

    def to_env(self) -> dict[str, str]:
        """The environment :meth:`from_env` reads back as these settings (every field)."""
        return {var.names[0]: var.show(getattr(self, var.field)) for var in _VARS}


@dataclass(frozen=True)
class _Var:
    field: str
    names: tuple[str, ...]  # the first is the one written; later ones are also read
    parse: Callable[[str], Any] = str
    show: Callable[[Any], str] = str


def _optional(value: Any) -> str:
    return "" if value is None else str(value)


def _flag(raw: str) -> bool:
    return raw in ("1", "true")


def _recipes(raw: str) -> tuple[str, ...] | None:
    return tuple(r.strip() for r in raw.split(",") if r.strip()) or None


_VARS: tuple[_Var, ...] = (
    _Var("data_bucket", ("TAGSMITH_DATA_BUCKET",)),
    _Var("assets_bucket", ("TAGSMITH_ASSETS_BUCKET",)),
    _Var("training_queue_url", ("TAGSMITH_TRAINING_QUEUE_URL",)),
    _Var("backfill_queue_url", ("TAGSMITH_BACKFILL_QUEUE_URL",)),
    _Var("ingest_queue_url", ("TAGSMITH_INGEST_QUEUE_URL",)),
    _Var("ingest_dlq_url", ("TAGSMITH_INGEST_DLQ_URL",)),
    _Var("video_jobs_queue_url", ("TAGSMITH_VIDEO_JOBS_QUEUE_URL",)),
    _Var("video_inline_seconds", ("TAGSMITH_VIDEO_INLINE_SECONDS",), float),
    _Var("video_window_seconds", ("TAGSMITH_VIDEO_WINDOW_SECONDS",), float),
    _Var("event_bus", ("TAGSMITH_EVENT_BUS",)),
    _Var("webhooks_queue_url", ("TAGSMITH_WEBHOOKS_QUEUE_URL",)),
    _Var("webhooks_dlq_url", ("TAGSMITH_WEBHOOKS_DLQ_URL",)),
    _Var("webhooks_allow_private", ("TAGSMITH_WEBHOOKS_ALLOW_PRIVATE",), _flag, lambda v: "1" if v else ""),
    _Var("backfill_rate", ("TAGSMITH_BACKFILL_RATE",), float),
    _Var("opensearch_url", ("TAGSMITH_OPENSEARCH_URL",)),
    _Var("opensearch_auth", ("TAGSMITH_OPENSEARCH_AUTH",)),
    _Var("region", ("AWS_REGION", "AWS_DEFAULT_REGION")),
    _Var("endpoint_url", ("AWS_ENDPOINT_URL",), str, _optional),
    _Var("encoder_cache_dir", ("TAGSMITH_ENCODER_CACHE",), Path),
    _Var("encoder_spec", ("TAGSMITH_ENCODER_SPEC",), Path, _optional),
    _Var("encoder_recipe", ("TAGSMITH_ENCODER_RECIPE",), str, _optional),
    _Var("encoder_candidates", ("TAGSMITH_ENCODER_CANDIDATES",), _recipes, lambda v: ",".join(v or ())),
    _Var("retrain_every", ("TAGSMITH_RETRAIN_EVERY",), int),
    _Var("max_object_bytes", ("TAGSMITH_MAX_OBJECT_BYTES",), int),
    _Var("max_pixels", ("TAGSMITH_MAX_PIXELS",), int),
    _Var("model_cache_seconds", ("TAGSMITH_MODEL_CACHE_SECONDS",), float),
    _Var("sweep_settle_seconds", ("TAGSMITH_SWEEP_SETTLE_SECONDS",), float),
)

#: Each setting's environment variable (the template writes these; :meth:`Settings.to_env` too).
ENV_NAMES: Mapping[str, str] = {var.field: var.names[0] for var in _VARS}

#: Fields that say where a deployment's resources are. An entry point that decides them itself
#: (:meth:`Settings.local`) takes none of them from the environment.
RESOURCE_FIELDS = frozenset(
    {
        "data_bucket",
        "assets_bucket",
        "training_queue_url",
        "backfill_queue_url",
        "ingest_queue_url",
        "ingest_dlq_url",
        "video_jobs_queue_url",
        "event_bus",
        "webhooks_queue_url",
        "webhooks_dlq_url",
        "webhooks_allow_private",
        "opensearch_url",
        "opensearch_auth",
        "region",
        "endpoint_url",
        "encoder_cache_dir",
    }
)


def tuning_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables set in ``env`` (default ``os.environ``) that tune a deployment rather than
    locate it (every field but :data:`RESOURCE_FIELDS`): what a local stack hands its functions
    besides its own buckets and queues."""
    e = os.environ if env is None else env
    return {
        name: e[name]
        for var in _VARS
        if var.field not in RESOURCE_FIELDS
        for name in var.names
        if e.get(name)
    }


@dataclass(frozen=True)
class LocalSettings:
    """The local stack's own knobs (``make run``, the CLI finding a running stack, ``make faults``)."""

    home: Path | None = None  # TAGSMITH_HOME: the state folder; None = var/ in the checkout
    moto_port: int = 4566
    opensearch_port: int = 9200
    console_port: int = 8780  # a busy port falls back to any free one
    sweep_seconds: float = 30.0  # the sweep function's interval (AWS: its EventBridge schedule)
    # where handlers and clients reach moto and osmem ("": directly); `make faults` puts its
    # fault-injecting proxies here
    client_endpoint_url: str = ""
    client_opensearch_url: str = ""
    fsync: bool = False  # also survive a power cut (several ms per write)
    dashboards_auth: str | None = None  # "user:password" for OpenSearch Dashboards' basic auth
    # the local runtime's ingest invocations at once; 0 = resources.py's local_concurrency
    ingest_concurrency: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocalSettings:
        e = os.environ if env is None else env
        values: dict[str, Any] = {}
        for var in _LOCAL_VARS:
            raw = e.get(var.names[0], "")
            if raw:
                try:
                    values[var.field] = var.parse(raw)
                except ValueError as err:
                    raise ConfigurationError(f"{var.names[0]}={raw!r} is malformed: {err}") from err
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The variables :meth:`from_env` reads back as these settings (unset ones left out)."""
        return {
            var.names[0]: var.show(getattr(self, var.field))
            for var in _LOCAL_VARS
            if getattr(self, var.field) != _default(LocalSettings, var.field)
        }


def _default(cls: type, name: str) -> Any:
    f = next(f for f in fields(cls) if f.name == name)
    return None if f.default is MISSING else f.default


_LOCAL_VARS: tuple[_Var, ...] = (
    _Var("home", ("TAGSMITH_HOME",), Path),
    _Var("moto_port", ("TAGSMITH_MOTO_PORT",), int),
    _Var("opensearch_port", ("TAGSMITH_OPENSEARCH_PORT",), int),
    _Var("console_port", ("TAGSMITH_CONSOLE_PORT",), int),
    _Var("sweep_seconds", ("TAGSMITH_SWEEP_SECONDS",), float),
    _Var("client_endpoint_url", ("TAGSMITH_CLIENT_ENDPOINT_URL",)),
    _Var("client_opensearch_url", ("TAGSMITH_CLIENT_OPENSEARCH_URL",)),
    _Var("fsync", ("TAGSMITH_FSYNC",), _flag, lambda v: "1" if v else ""),
    _Var("dashboards_auth", ("TAGSMITH_DASHBOARDS_AUTH",)),
    _Var("ingest_concurrency", ("TAGSMITH_INGEST_CONCURRENCY",), int),
)

#: The local stack's variables (ports, state folder), by field of :class:`LocalSettings`.
LOCAL_ENV_NAMES: Mapping[str, str] = {var.field: var.names[0] for var in _LOCAL_VARS}
