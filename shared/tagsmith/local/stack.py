"""Start, provision, persist and stop the local stack.

State lives under ``<home>`` (default ``var/`` in the checkout):

* ``s3/<bucket>/<key>``: every object, written through by moto before it answers
  (:mod:`tagsmith.local.durable`), restored into moto at start;
* ``sqs.sqlite``: every queued message (dead-letter queues included), journaled the same way;
* ``cache/``: the encoder's ONNX file;
* ``stack.json``: endpoints of the running stack, read by the CLI.

**What survives**: anything moto acknowledged, through ``kill -9`` of the stack (the guarantee and
its limits: :mod:`tagsmith.local.durable`). The search index is never persisted: osmem keeps it in
memory, so at start it is rebuilt from the records, and a watchdog restarts osmem if it dies and
has the sweep rebuild it again.

**Restart reconcile**: at start, before the pollers run, a full sweep (:mod:`tagsmith.sweep`)
repairs every projection of every record (review items, queue entries, previews, the index), and
every upload is checked: one without a record gets its event again, and one that cannot be placed
(outside any tenant prefix) is logged. While the stack runs, the sweep function runs every
``sweep_seconds``, as its EventBridge schedule would on AWS.
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from tagsmith.config import LOCAL_ENV_NAMES, LocalSettings, Settings, tuning_env
from tagsmith.keys import records_prefix
from tagsmith.local.durable import DurableState
from tagsmith.local.resources import STACK, StackDef
from tagsmith.local.runtime import Handler, LambdaContext, SqsPoller
from tagsmith.storage import S3ObjectStore

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[3]
ACCESS_KEY = "testing"  # moto accepts any credentials; fixed ones keep every process in one account
#: What boto3 needs to sign a request to moto (the SDK's own variables, not Tagsmith settings).
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": ACCESS_KEY,
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class StackConfig:
    home: Path = REPO_ROOT / "var"
    host: str = "127.0.0.1"
    moto_port: int = 4566
    opensearch_port: int = 9200
    functions_dir: Path = REPO_ROOT / "functions"
    definition: StackDef = STACK
    # The deployment's tuning the functions get (TAGSMITH_ENCODER_RECIPE, TAGSMITH_RETRAIN_EVERY,
    # limits: tagsmith.config.tuning_env); the stack decides the buckets, queues and endpoints.
    tuning: dict[str, str] = field(default_factory=dict)
    sweep_seconds: float = 30.0  # the sweep function's interval (AWS: its EventBridge schedule)
    sweep_settle: float = 5.0  # records younger than this are left to the next sweep
    # Where handlers and clients reach moto and osmem ("": directly). `make faults` puts its
    # fault-injecting proxies here; the stack's own start-up work always goes direct.
    client_endpoint_url: str = ""
    client_opensearch_url: str = ""
    fsync: bool = False  # also survive a power cut (several ms per write)
    # invocations at once per function, over the definition's ``local_concurrency`` (benchmarks)
    concurrency: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackConfig:
        local = LocalSettings.from_env(env)
        config = cls(
            home=local.home or REPO_ROOT / "var",
            moto_port=local.moto_port,
            opensearch_port=local.opensearch_port,
            tuning=tuning_env(env),
            sweep_seconds=local.sweep_seconds,
            client_endpoint_url=local.client_endpoint_url,
            client_opensearch_url=local.client_opensearch_url,
            fsync=local.fsync,
            concurrency={"ingest": local.ingest_concurrency} if local.ingest_concurrency else {},
        )
        Settings.local(config.tuning, data_bucket="-")  # a malformed setting stops the stack at start
        return config


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
    tuning: dict[str, str] = field(default_factory=dict)  # StackConfig.tuning
    event_bus: str = ""
    opensearch_pid: int = 0
    moto_url: str = ""  # moto and osmem themselves (endpoint_url / opensearch_url may be proxies)
    osmem_url: str = ""
    sweep_settle: float = 5.0

    def settings(self) -> Settings:
        """The settings of this stack's functions: its resources, and the tuning it started with."""
        return Settings.local(
            self.tuning,
            data_bucket=self.data_bucket,
            assets_bucket=self.assets_bucket,
            training_queue_url=self.queue_urls.get("training", ""),
            backfill_queue_url=self.queue_urls.get("backfill", ""),
            ingest_queue_url=self.queue_urls.get("ingest", ""),
            ingest_dlq_url=self.queue_urls.get("ingest-dlq", ""),
            video_jobs_queue_url=self.queue_urls.get("video-jobs", ""),
            event_bus=self.event_bus,
            webhooks_queue_url=self.queue_urls.get("webhooks", ""),
            webhooks_dlq_url=self.queue_urls.get("webhooks-dlq", ""),
            # a local stack's webhooks go to loopback receivers, over plain http
            webhooks_allow_private=True,
            opensearch_url=self.opensearch_url,
            endpoint_url=self.endpoint_url,
            encoder_cache_dir=Path(self.home) / "cache",
            sweep_settle_seconds=self.sweep_settle,
        )

    def direct_settings(self) -> Settings:
        """:meth:`settings` with moto and osmem reached directly, not through client proxies."""
        return replace(
            self.settings(),
            endpoint_url=self.moto_url or self.endpoint_url,
            opensearch_url=self.osmem_url or self.opensearch_url,
        )

    def environment(self) -> dict[str, str]:
        """The environment a handler sees in this stack, as Lambda would give it: moto's
        credentials and :meth:`settings` (``Settings.to_env``)."""
        return {**CREDENTIALS, **self.settings().to_env()}

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


@dataclass
class LocalStack:
    config: StackConfig = field(default_factory=StackConfig)
    progress: Callable[[str], None] = lambda msg: None
    info: StackInfo | None = None
    pollers: dict[str, SqsPoller] = field(default_factory=dict)
    _moto: Any = None
    _osmem: Any = None
    _durable: DurableState | None = None
    _live: S3ObjectStore | None = None  # moto reached directly: the stack's own work
    _stop: threading.Event = field(default_factory=threading.Event)
    _sweep_now: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    sweeps: int = 0  # scheduled sweeps run (tests wait on it)

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
                    f"{LOCAL_ENV_NAMES['moto_port' if name == 'moto' else 'opensearch_port']} to another port"
                )
        cfg.home.mkdir(parents=True, exist_ok=True)
        for k, v in CREDENTIALS.items():
            os.environ.setdefault(k, v)

        self.progress("starting moto (S3, SQS)")
        from moto.server import ThreadedMotoServer

        from tagsmith.local import motofixes

        motofixes.apply()

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request drowns the demo

        # Provision, restore and hook moto on a private port first: a client that reached moto
        # before its state was restored, written through and wired to the queues would get an
        # acknowledgement for an upload that has no event and would not survive a crash.
        setup = ThreadedMotoServer(ip_address=cfg.host, port=0, verbose=False)
        setup.start()
        private = f"http://{cfg.host}:{setup.get_host_and_port()[1]}"
        endpoint = f"http://{cfg.host}:{cfg.moto_port}"

        import boto3

        s3 = boto3.client("s3", endpoint_url=private, region_name="us-east-1")
        sqs = boto3.client("sqs", endpoint_url=private, region_name="us-east-1")
        self.progress("provisioning buckets and queues")
        buckets = {b: d.bucket_name(b) for b in d.buckets}
        for name in buckets.values():
            s3.create_bucket(Bucket=name)
        queue_urls, queue_arns = self._provision_queues(sqs)
        self._restore(list(buckets.values()), [d.queue_name(q) for q in queue_urls])
        self._configure_notifications(s3, buckets, queue_arns)
        self._provision_event_bus(
            boto3.client("events", endpoint_url=private, region_name="us-east-1"), queue_arns
        )
        # the same in-process state, now served on the public port
        self._moto = ThreadedMotoServer(ip_address=cfg.host, port=cfg.moto_port, verbose=False)
        self._moto.start()
        setup.stop()
        queue_urls = {name: url.replace(private, endpoint) for name, url in queue_urls.items()}
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
        self._live = S3ObjectStore(client=s3)

        self.progress("starting osmem-server (OpenSearch API)")
        self._osmem = self._start_osmem()
        opensearch_url = f"http://{cfg.host}:{cfg.opensearch_port}"

        self.info = StackInfo(
            pid=os.getpid(),
            endpoint_url=cfg.client_endpoint_url or endpoint,
            opensearch_url=cfg.client_opensearch_url or opensearch_url,
            assets_bucket=buckets["assets"],
            data_bucket=buckets["data"],
            queue_urls=queue_urls,
            home=str(cfg.home),
            tuning=dict(cfg.tuning),
            event_bus=d.bus_name(),
            opensearch_pid=self._osmem.process.pid,
            moto_url=endpoint,
            osmem_url=opensearch_url,
            sweep_settle=cfg.sweep_settle,
        )
        os.environ.update(self.info.environment())
        rebuilt = self.restart_reconcile()
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
            self._spawn("sweep", self._sweep_loop)
        self._spawn("osmem-watchdog", self._watch_osmem)
        self.write_info()
        return self.info

    def write_info(self) -> None:
        assert self.info is not None
        # write then rename: a reader (the CLI, a test waiting for the restart) never sees half a file
        target = self.config.home / "stack.json"
        partial = target.with_suffix(".json.tmp")
        partial.write_text(json.dumps(self.info.__dict__, indent=1))
        os.replace(partial, target)

    def stop(self) -> None:
        self._stop.set()
        self._sweep_now.set()
        for p in self.pollers.values():
            p.stop()
        for t in self._threads:
            t.join(timeout=30)
        (self.config.home / "stack.json").unlink(missing_ok=True)
        if self._osmem is not None:
            self._close_osmem(self._osmem)
        if self._moto is not None:
            self._moto.stop()
        if self._durable is not None:
            self._durable.close()  # after moto: nothing it acknowledged is left unwritten

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

        assert self.info is not None and self._live is not None
        c = build(self.info.direct_settings(), store=self._live)
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
                concurrency=self.config.concurrency.get(f.name, f.local_concurrency),
            )
            poller.start()
            self.pollers[f.name] = poller

    def tenants(self) -> list[str]:
        from tagsmith.sweep import tenant_ids

        assert self.info is not None and self._live is not None
        return tenant_ids(self._live, self.info.data_bucket)

    def restart_reconcile(self) -> int:
        """A full sweep of every tenant, straight to moto and osmem: the index is rebuilt from the
        records (osmem starts empty), and every projection of every record is repaired (a crash
        between a record and its review item, previews). Returns how many records were indexed."""
        from tagsmith.sweep import SweepOptions, SweepService
        from tagsmith.wiring import build

        assert self.info is not None and self._live is not None
        c = build(self.info.direct_settings(), store=self._live)
        sweeper = SweepService.from_components(c, options=SweepOptions(settle=0.0))
        reports = sweeper.sweep(self.tenants(), full=True, quiet=True)
        repaired = sum(r.projections.total for r in reports)
        if repaired:
            self.progress(f"repaired {repaired} projections of records (review items, previews)")
        return sum(r.index.indexed for r in reports if r.index is not None)

    def reconcile(self, sqs: Any, ingest_url: str) -> int:
        """Queue an event for every asset that has neither a record nor a queued event (objects put
        in the folder while the stack was down), and log every object that cannot be placed
        (outside any tenant prefix): nothing will tag it."""
        assert self.info is not None and self._live is not None
        live = self._live
        from tagsmith.errors import InvalidKeyError
        from tagsmith.events import object_created_event
        from tagsmith.keys import parse_asset_key

        missing = 0
        recorded: dict[str, set[str]] = {}
        for obj in live.list(self.info.assets_bucket):
            try:
                asset = parse_asset_key(obj.key)
            except InvalidKeyError as e:
                log.warning(
                    "restart reconcile: cannot place s3://%s/%s: %s; it will not be tagged",
                    self.info.assets_bucket,
                    obj.key,
                    e,
                    extra={"key": obj.key},
                )
                continue
            if asset.tenant not in recorded:
                prefix = records_prefix(asset.tenant)
                recorded[asset.tenant] = {
                    i.key[len(prefix) : -len(".json")] for i in live.list(self.info.data_bucket, prefix)
                }
            where = (self.info.assets_bucket, obj.key)
            restored = self._durable is None or where in self._durable.restored_objects
            queued = self._durable is not None and where in self._durable.pending_objects
            # only what was on disk at start: an upload since has its own event
            if asset.path not in recorded[asset.tenant] and restored and not queued:
                body = object_created_event(self.info.assets_bucket, obj.key, etag=obj.etag, size=obj.size)
                sqs.send_message(QueueUrl=ingest_url, MessageBody=json.dumps(body))
                missing += 1
        return missing

    # --- durability, the sweep, the search server's watchdog ---------------------------------------
    def _restore(self, buckets: list[str], queues: list[str]) -> None:
        """Load what is on disk into moto, then hook moto so every change is written through."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends
        from moto.sqs.models import sqs_backends

        self._durable = DurableState(
            home=self.config.home, buckets=buckets, queues=queues, fsync=self.config.fsync
        )
        objects = self._durable.restore_objects(s3_backends[DEFAULT_ACCOUNT_ID]["aws"])
        messages = self._durable.restore_messages(sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"])
        self._durable.attach()
        if objects:
            self.progress(f"restored {objects} objects from {self.config.home / 's3'}")
        if messages:
            self.progress(
                "restored queued messages: " + ", ".join(f"{q} {n}" for q, n in sorted(messages.items()))
            )

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def sweep_now(self) -> None:
        """Run the scheduled sweep at once instead of at its next interval."""
        self._sweep_now.set()

    def _sweep_loop(self) -> None:
        """The sweep function on its schedule, invoked as EventBridge would invoke it."""
        handler = load_handler(self.config.functions_dir, "sweep")
        while not self._stop.is_set():
            self._sweep_now.wait(self.config.sweep_seconds)
            self._sweep_now.clear()
            if self._stop.is_set():
                return
            try:
                handler(
                    {"source": "tagsmith.local", "detail-type": "Scheduled Event"},
                    LambdaContext("tagsmith-sweep", timeout=900),
                )
            except Exception:
                log.exception("the scheduled sweep failed; it runs again at the next interval")
            self.sweeps += 1

    def _start_osmem(self) -> Any:
        from osmem_server import OsmemServer

        cfg = self.config
        deadline = time.monotonic() + 30
        while True:
            try:
                return OsmemServer.start(addr=f"{cfg.host}:{cfg.opensearch_port}")
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)  # the port of a server that just died may still be held

    @staticmethod
    def _close_osmem(server: Any) -> None:
        server.close()
        if server.process.stdout is not None:
            server.process.stdout.close()  # close() leaves the pipe open

    def _watch_osmem(self) -> None:
        """osmem keeps its indices in memory: if it dies, start it again (empty) and have the
        sweep rebuild every tenant's index from the records at once."""
        while not self._stop.wait(0.5):
            server = self._osmem
            if server is None or server.process.poll() is None:
                continue
            code = server.process.returncode
            log.error("the search server (osmem) exited with code %s: restarting it empty", code)
            with contextlib.suppress(Exception):
                self._close_osmem(server)
            try:
                self._osmem = self._start_osmem()
            except Exception:
                log.exception("the search server could not be restarted; trying again")
                continue
            if self.info is not None:
                self.info.opensearch_pid = self._osmem.process.pid
                self.write_info()
            log.warning("search server restarted: the sweep rebuilds the index from the records now")
            self.sweep_now()

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
