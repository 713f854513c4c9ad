"""Start, provision, persist and stop the local stack.

State lives under ``<home>`` (default ``var/`` in the checkout):

* ``s3/<bucket>/<key>``: every object, restored into moto at start and written back every few
  seconds and at stop (moto itself keeps everything in memory);
* ``cache/``: the encoder's ONNX file;
* ``stack.json``: endpoints of the running stack, read by the CLI.

The search index is never persisted: at start it is rebuilt from the asset records, which proves on
every start that the index is a projection of the records.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from tagsmith.config import Settings
from tagsmith.keys import records_prefix
from tagsmith.local.resources import STACK, StackDef
from tagsmith.local.runtime import Handler, SqsPoller
from tagsmith.storage import FileObjectStore, ObjectStore, S3ObjectStore

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[3]
ACCESS_KEY = "testing"  # moto accepts any credentials; fixed ones keep every process in one account


@dataclass(frozen=True)
class StackConfig:
    home: Path = REPO_ROOT / "var"
    host: str = "127.0.0.1"
    moto_port: int = 4566
    opensearch_port: int = 9200
    snapshot_seconds: float = 5.0
    functions_dir: Path = REPO_ROOT / "functions"
    definition: StackDef = STACK
    encoder_recipe: str = ""  # TAGSMITH_ENCODER_RECIPE: a built-in recipe id ("": the default)

    @classmethod
    def from_env(cls) -> StackConfig:
        e = os.environ
        return cls(
            home=Path(e.get("TAGSMITH_HOME", str(REPO_ROOT / "var"))),
            moto_port=int(e.get("TAGSMITH_MOTO_PORT", 4566)),
            opensearch_port=int(e.get("TAGSMITH_OPENSEARCH_PORT", 9200)),
            encoder_recipe=e.get("TAGSMITH_ENCODER_RECIPE", ""),
        )


@dataclass
class StackInfo:
    """What a client needs to talk to a running local stack (written to ``stack.json``)."""

    pid: int
    endpoint_url: str
    opensearch_url: str
    assets_bucket: str
    data_bucket: str
    queue_urls: dict[str, str]
    home: str
    console_url: str = ""
    encoder_recipe: str = ""
    event_bus: str = ""

    def settings(self) -> Settings:
        return Settings(
            data_bucket=self.data_bucket,
            assets_bucket=self.assets_bucket,
            training_queue_url=self.queue_urls.get("training", ""),
            backfill_queue_url=self.queue_urls.get("backfill", ""),
            video_jobs_queue_url=self.queue_urls.get("video-jobs", ""),
            event_bus=self.event_bus,
            webhooks_queue_url=self.queue_urls.get("webhooks", ""),
            webhooks_dlq_url=self.queue_urls.get("webhooks-dlq", ""),
            webhooks_allow_private=True,
            opensearch_url=self.opensearch_url,
            endpoint_url=self.endpoint_url,
            encoder_cache_dir=Path(self.home) / "cache",
            encoder_recipe=self.encoder_recipe or None,
        )

    def environment(self) -> dict[str, str]:
        """The environment a handler sees in this stack, as Lambda would give it."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": ACCESS_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "TAGSMITH_DATA_BUCKET": self.data_bucket,
            "TAGSMITH_ASSETS_BUCKET": self.assets_bucket,
            "TAGSMITH_TRAINING_QUEUE_URL": self.queue_urls.get("training", ""),
            "TAGSMITH_BACKFILL_QUEUE_URL": self.queue_urls.get("backfill", ""),
            "TAGSMITH_VIDEO_JOBS_QUEUE_URL": self.queue_urls.get("video-jobs", ""),
            "TAGSMITH_EVENT_BUS": self.event_bus,
            "TAGSMITH_WEBHOOKS_QUEUE_URL": self.queue_urls.get("webhooks", ""),
            "TAGSMITH_WEBHOOKS_DLQ_URL": self.queue_urls.get("webhooks-dlq", ""),
            # a local stack's webhooks go to loopback receivers, over plain http
            "TAGSMITH_WEBHOOKS_ALLOW_PRIVATE": "1",
            "TAGSMITH_OPENSEARCH_URL": self.opensearch_url,
            "TAGSMITH_ENCODER_CACHE": str(Path(self.home) / "cache"),
            "TAGSMITH_ENCODER_RECIPE": self.encoder_recipe,
        }

    @classmethod
    def read(cls, home: Path) -> StackInfo | None:
        """The running stack described in ``home``, or None if none is running."""
        path = Path(home) / "stack.json"
        try:
            info = cls(**json.loads(path.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None
        try:
            os.kill(info.pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return info


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def load_function(functions_dir: Path, name: str) -> ModuleType:
    """Import ``functions/<name>/handler.py`` as Lambda would (a fresh module each call)."""
    path = functions_dir / name / "handler.py"
    spec = importlib.util.spec_from_file_location(f"tagsmith_function_{name}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no handler at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_handler(functions_dir: Path, name: str) -> Handler:
    """The ``handler`` function of ``functions/<name>/handler.py``."""
    return load_function(functions_dir, name).handler  # type: ignore[no-any-return]


class Snapshotter:
    """Mirrors moto's buckets to a folder and back: how local state survives a restart."""

    def __init__(self, *, live: ObjectStore, disk: FileObjectStore, buckets: list[str]) -> None:
        self.live = live
        self.disk = disk
        self.buckets = buckets
        self._synced: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def restore(self) -> int:
        n = 0
        for bucket in self.buckets:
            for info in self.disk.list(bucket):
                etag = self.live.put(bucket, info.key, self.disk.get(bucket, info.key).body)
                self._synced[(bucket, info.key)] = etag
                n += 1
        return n

    def snapshot(self) -> int:
        """Write changed objects to disk and drop deleted ones; returns how many changed."""
        with self._lock:
            changed = 0
            for bucket in self.buckets:
                live = {i.key: i.etag for i in self.live.list(bucket)}
                for key, etag in live.items():
                    if self._synced.get((bucket, key)) != etag:
                        with contextlib.suppress(Exception):  # deleted meanwhile: next round
                            self.disk.put(bucket, key, self.live.get(bucket, key).body)
                            self._synced[(bucket, key)] = etag
                            changed += 1
                for b, key in [k for k in self._synced if k[0] == bucket and k[1] not in live]:
                    self.disk.delete(b, key)
                    del self._synced[(b, key)]
                    changed += 1
            return changed


@dataclass
class LocalStack:
    config: StackConfig = field(default_factory=StackConfig)
    progress: Callable[[str], None] = lambda msg: None
    info: StackInfo | None = None
    pollers: dict[str, SqsPoller] = field(default_factory=dict)
    _moto: Any = None
    _osmem: Any = None
    _snapshotter: Snapshotter | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _snap_thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self, *, run_functions: bool = True) -> StackInfo:
        cfg, d = self.config, self.config.definition
        running = StackInfo.read(cfg.home)
        if running is not None:
            raise RuntimeError(
                f"a local stack is already running (pid {running.pid}); stop it first (Ctrl-C there)"
            )
        for name, port in (("moto", cfg.moto_port), ("OpenSearch", cfg.opensearch_port)):
            if not _port_free(cfg.host, port):
                raise RuntimeError(
                    f"port {port} for {name} is in use: stop what holds it, or set "
                    f"TAGSMITH_{'MOTO' if name == 'moto' else 'OPENSEARCH'}_PORT to another port"
                )
        cfg.home.mkdir(parents=True, exist_ok=True)
        for k, v in {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": ACCESS_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            os.environ.setdefault(k, v)

        self.progress("starting moto (S3, SQS)")
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request drowns the demo

        self._moto = ThreadedMotoServer(ip_address=cfg.host, port=cfg.moto_port, verbose=False)
        self._moto.start()
        endpoint = f"http://{cfg.host}:{cfg.moto_port}"

        self.progress("starting osmem-server (OpenSearch API)")
        from osmem_server import OsmemServer

        self._osmem = OsmemServer.start(addr=f"{cfg.host}:{cfg.opensearch_port}")
        opensearch_url = f"http://{cfg.host}:{cfg.opensearch_port}"

        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
        self.progress("provisioning buckets and queues")
        buckets = {b: d.bucket_name(b) for b in d.buckets}
        for name in buckets.values():
            s3.create_bucket(Bucket=name)
        queue_urls, queue_arns = self._provision_queues(sqs)

        live = S3ObjectStore(client=s3)
        self._snapshotter = Snapshotter(
            live=live, disk=FileObjectStore(root=cfg.home / "s3"), buckets=list(buckets.values())
        )
        restored = self._snapshotter.restore()
        if restored:
            self.progress(f"restored {restored} objects from {cfg.home / 's3'}")
        self._configure_notifications(s3, buckets, queue_arns)
        self._provision_event_bus(
            boto3.client("events", endpoint_url=endpoint, region_name="us-east-1"), queue_arns
        )

        self.info = StackInfo(
            pid=os.getpid(),
            endpoint_url=endpoint,
            opensearch_url=opensearch_url,
            assets_bucket=buckets["assets"],
            data_bucket=buckets["data"],
            queue_urls=queue_urls,
            home=str(cfg.home),
            encoder_recipe=cfg.encoder_recipe,
            event_bus=d.bus_name(),
        )
        os.environ.update(self.info.environment())
        rebuilt = self.rebuild_index()
        if rebuilt:
            self.progress(f"rebuilt the search index from {rebuilt} asset records")
        if run_functions:
            republished = self.republish()
            if republished:
                self.progress(f"published {republished} record changes that were never published")
        if run_functions:
            self._start_pollers(sqs, queue_urls, queue_arns)
            missing = self.reconcile(sqs, queue_urls["ingest"])
            if missing:
                self.progress(f"queued {missing} assets that have no record yet")
        self._snap_thread = threading.Thread(target=self._snapshot_loop, name="snapshot", daemon=True)
        self._snap_thread.start()
        self.write_info()
        return self.info

    def write_info(self) -> None:
        assert self.info is not None
        (self.config.home / "stack.json").write_text(json.dumps(self.info.__dict__, indent=1))

    def stop(self) -> None:
        self._stop.set()
        for p in self.pollers.values():
            p.stop()
        if self._snapshotter is not None:
            with contextlib.suppress(Exception):
                self._snapshotter.snapshot()
        (self.config.home / "stack.json").unlink(missing_ok=True)
        if self._osmem is not None:
            self._osmem.close()
            if self._osmem.process.stdout is not None:
                self._osmem.process.stdout.close()  # close() leaves the pipe open
        if self._moto is not None:
            self._moto.stop()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- pieces --------------------------------------------------------------------------------
    def _provision_queues(self, sqs: Any) -> tuple[dict[str, str], dict[str, str]]:
        d = self.config.definition
        urls, arns = {}, {}
        for q in d.queues:
            dlq_url = sqs.create_queue(
                QueueName=d.queue_name(q.dlq_name),
                Attributes={"MessageRetentionPeriod": str(q.dlq_retention)},
            )["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            url = sqs.create_queue(
                QueueName=d.queue_name(q.name),
                Attributes={
                    "VisibilityTimeout": str(q.visibility_timeout),
                    "RedrivePolicy": json.dumps(
                        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": q.max_receive_count}
                    ),
                },
            )["QueueUrl"]
            urls[q.name] = url
            urls[q.dlq_name] = dlq_url
            arns[q.name] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
        return urls, arns

    def _configure_notifications(self, s3: Any, buckets: dict[str, str], queue_arns: dict[str, str]) -> None:
        by_bucket: dict[str, list[dict[str, Any]]] = {}
        for n in self.config.definition.notifications:
            rules = [{"Name": k, "Value": v} for k, v in (("prefix", n.prefix), ("suffix", n.suffix)) if v]
            conf: dict[str, Any] = {"QueueArn": queue_arns[n.queue], "Events": list(n.events)}
            if rules:
                conf["Filter"] = {"Key": {"FilterRules": rules}}
            by_bucket.setdefault(buckets[n.bucket], []).append(conf)
        for bucket, confs in by_bucket.items():
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"QueueConfigurations": confs}
            )

    def _provision_event_bus(self, events: Any, queue_arns: dict[str, str]) -> None:
        """The change-event bus and one rule per target queue, as the AWS template has them."""
        d = self.config.definition
        events.create_event_bus(Name=d.bus_name())
        for rule in d.rules:
            name = d.rule_name(rule.name)
            events.put_rule(Name=name, EventBusName=d.bus_name(), EventPattern=json.dumps(rule.pattern()))
            events.put_targets(
                Rule=name,
                EventBusName=d.bus_name(),
                Targets=[{"Id": rule.queue, "Arn": queue_arns[rule.queue]}],
            )

    def republish(self) -> int:
        """Publish the record changes a crash left unpublished (the outbound repair path)."""
        from tagsmith.wiring import build

        assert self.info is not None and self._snapshotter is not None
        c = build(self.info.settings(), store=self._snapshotter.live)
        return sum(c.outbound.repair_tenant(t).published for t in self.tenants())

    def _start_pollers(self, sqs: Any, urls: dict[str, str], arns: dict[str, str]) -> None:
        for f in self.config.definition.functions:
            if f.queue is None:
                continue
            handler = load_handler(self.config.functions_dir, f.name)
            poller = SqsPoller(
                sqs=sqs,
                queue_url=urls[f.queue],
                queue_arn=arns[f.queue],
                handler=handler,
                function_name=f"tagsmith-{f.name}",
                batch_size=f.batch_size,
                timeout=f.timeout,
            )
            poller.start()
            self.pollers[f.name] = poller

    def tenants(self) -> list[str]:
        assert self.info is not None and self._snapshotter is not None
        seen = set()
        for info in self._snapshotter.live.list(self.info.data_bucket, "tenants/"):
            seen.add(info.key.split("/")[1])
        return sorted(seen)

    def rebuild_index(self) -> int:
        """Rebuild every tenant's search index from the asset records."""
        from tagsmith.wiring import build

        assert self.info is not None and self._snapshotter is not None
        c = build(self.info.settings(), store=self._snapshotter.live)
        total = 0
        for tenant in self.tenants():
            records = list(c.records.iter_tenant(tenant))
            models = [m for mid in c.models.model_ids(tenant) if (m := c.models.load_active(tenant, mid))]
            c.index.rebuild(tenant, records, {m.model_id: m.taxonomy for m in models})
            total += len(records)
        return total

    def reconcile(self, sqs: Any, ingest_url: str) -> int:
        """Queue an event for every asset without a record (uploads made while the stack was down,
        or messages that were in flight at the last stop)."""
        assert self.info is not None and self._snapshotter is not None
        live = self._snapshotter.live
        from urllib.parse import quote_plus

        from tagsmith.keys import parse_asset_key

        missing = 0
        recorded: dict[str, set[str]] = {}
        for obj in live.list(self.info.assets_bucket):
            try:
                asset = parse_asset_key(obj.key)
            except Exception:
                continue
            if asset.tenant not in recorded:
                prefix = records_prefix(asset.tenant)
                recorded[asset.tenant] = {
                    i.key[len(prefix) : -len(".json")] for i in live.list(self.info.data_bucket, prefix)
                }
            if asset.path not in recorded[asset.tenant]:
                obj_event = {"key": quote_plus(obj.key, safe="/"), "eTag": obj.etag, "size": obj.size}
                record = {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": self.info.assets_bucket}, "object": obj_event},
                }
                body = {"Records": [record]}
                sqs.send_message(QueueUrl=ingest_url, MessageBody=json.dumps(body))
                missing += 1
        return missing

    def _snapshot_loop(self) -> None:
        while not self._stop.wait(self.config.snapshot_seconds):
            try:
                assert self._snapshotter is not None
                self._snapshotter.snapshot()
            except Exception:
                log.exception("snapshot failed; will retry")

    def wait_idle(self, timeout: float = 120.0) -> bool:
        """Wait until every poller has found its queue empty (twice in a row)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(p.idle.is_set() for p in self.pollers.values()):
                time.sleep(1.5)
                if all(p.idle.is_set() for p in self.pollers.values()):
                    return True
            time.sleep(0.2)
        return False
