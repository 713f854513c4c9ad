"""``make faults``: the local stack under faults, checked against what was uploaded.

It starts the stack as ``make run`` does (a subprocess, so it can be killed), puts fault-injecting
proxies (:mod:`benchmarks.faultproxy`) between every client and moto / osmem, trains a model for
two tenants through the training handler, then uploads N objects while:

* 5% of S3 requests fail (half before S3 sees them, half after: a lost acknowledgement), for the
  uploader and the handlers alike;
* 5% of uploads are sent twice (a client retry) and 10% of upload events are delivered twice;
* 1% of uploads are poison (empty, not an image, a truncated JPEG, a PNG whose header claims 10^10
  pixels);
* at 30% of the uploads the search server is killed (SIGKILL; it comes back empty) and the proxy
  answers 503 for 20 s;
* at 60% the whole stack (moto, the runtime, handlers mid-batch) is killed with SIGKILL and
  started again.

Then it waits until the queues have drained and the stack has converged, and checks, reading the
stack's files and osmem directly (no proxy, no manual reindex):

* **lost**: acknowledged uploads without a record of the acknowledged version;
* **duplicated**: anything twice: a record or document of a key never uploaded, a tag listed twice
  on a record, a queue entry beside its item's current one;
* **poison explained**: poison uploads whose record says ``failed`` and why;
* **index == records**: the documents (key and revision) are exactly the searchable records;
* **review items == review tags**: the pending items are exactly one per (asset, model) with a
  ``review`` tag, each with its queue entry;
* **DLQs empty**.

One line goes to stdout (and ``--json`` writes every figure); the exit code is 1 if a check failed.

    python -m benchmarks.faults --n 1000            # make faults
    python -m benchmarks.faults --n 60 --outage 5   # the suite's small run (tests/e2e/test_faults.py)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
from botocore.config import Config

from benchmarks.faultproxy import FaultProxy

REPO = Path(__file__).resolve().parents[1]
ASSETS, DATA = "tagsmith-assets", "tagsmith-data"


@dataclass(frozen=True)
class FaultPlan:
    n: int = 1000
    tenants: tuple[str, ...] = ("acme", "beta")
    duplicate_uploads: float = 0.05
    duplicate_deliveries: float = 0.10
    poison: float = 0.01
    ambiguous: float = 0.2  # two products blended: these go to review
    s3_error_rate: float = 0.05
    outage_at: float = 0.3
    outage_seconds: float = 20.0
    kill_at: float = 0.6
    down_seconds: float = 2.0
    uploaders: int = 4
    sweep_seconds: float = 10.0
    timeout: float = 1800.0
    seed: int = 14


@dataclass
class FaultResult:
    n: int
    uploads: int = 0
    duplicate_uploads: int = 0
    duplicate_deliveries: int = 0
    lost: int = 0
    duplicated: int = 0
    poison: int = 0
    poison_explained: int = 0
    documents: int = 0
    searchable_records: int = 0
    index_equal: bool = False
    review_items: int = 0
    review_tags: int = 0
    review_equal: bool = False
    dlq_messages: int = 0
    drained: bool = False
    wall_seconds: float = 0.0
    converge_seconds: float = 0.0
    s3_errors_injected: int = 0
    search_outage_seconds: float = 0.0
    stack_kills: int = 0
    load: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.poison_explained == self.poison
            and self.index_equal
            and self.review_equal
            and self.dlq_messages == 0
            and self.drained
        )

    def line(self) -> str:
        yes = {True: "yes", False: "NO"}
        return (
            f"faults N={self.n}: uploads {self.uploads} (+{self.duplicate_uploads} sent twice, "
            f"+{self.duplicate_deliveries} events delivered twice), lost {self.lost}, duplicated {self.duplicated}, "
            f"poison explained {self.poison_explained}/{self.poison}, "
            f"index == records {yes[self.index_equal]} ({self.documents}/{self.searchable_records}), "
            f"review items == review tags {yes[self.review_equal]} ({self.review_items}/{self.review_tags}), "
            f"DLQs empty {yes[self.dlq_messages == 0]}, wall {self.wall_seconds:.0f} s "
            f"(converged {self.converge_seconds:.0f} s after the last upload); faults: "
            f"{self.s3_errors_injected} S3 errors injected, search down {self.search_outage_seconds:.0f} s, "
            f"stack killed {self.stack_kills}x; load {self.load}"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StackProcess:
    """``tagsmith up --no-demo`` in a subprocess, started, killed and started again."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 300) -> dict[str, Any]:
        cli = Path(sys.executable).parent / "tagsmith"
        with (self.home / "up.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(cli), "up", "--no-demo"], env=self.env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.info()
            if info is not None and info.get("pid") == self.process.pid and info.get("console_url"):
                return info
            if self.process.poll() is not None:
                raise RuntimeError(
                    "the stack exited while starting:\n" + (self.home / "up.log").read_text()[-4000:]
                )
            time.sleep(0.2)
        raise RuntimeError("the stack did not start in time:\n" + (self.home / "up.log").read_text()[-4000:])

    def info(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads((self.home / "stack.json").read_text()))
        except (FileNotFoundError, ValueError):
            return None

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # a clean stop (SIGINT is ignored in background jobs)
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- what is uploaded ---------------------------------------------------------------------------------
def poison_body(i: int) -> bytes:
    from tagsmith.local import demo

    kind = i % 4
    if kind == 0:
        return b""
    if kind == 1:
        return b"a text file with a .jpg name, not a photo\n" * (i + 1)
    if kind == 2:
        return demo.jpeg(demo.product_photo("sunset-tote", 9000 + i))[:400]  # truncated
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)  # 10^10 pixels claimed
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class Upload:
    key: str
    kind: str  # product | ambiguous | poison
    seed: int

    def body(self) -> bytes:
        from tagsmith.local import demo

        if self.kind == "poison":
            return poison_body(self.seed)
        tags = demo.TAGS
        if self.kind == "ambiguous":
            a, b = tags[self.seed % len(tags)], tags[(self.seed + 1) % len(tags)]
            return demo.jpeg(demo.blend_photo(a, b, 20_000 + self.seed))
        return demo.jpeg(demo.product_photo(tags[self.seed % len(tags)], 10_000 + self.seed))


def plan_uploads(plan: FaultPlan) -> list[Upload]:
    rng = random.Random(plan.seed)
    poison = max(1, round(plan.n * plan.poison))
    kinds = ["poison"] * poison + ["ambiguous"] * round(plan.n * plan.ambiguous)
    kinds += ["product"] * (plan.n - len(kinds))
    rng.shuffle(kinds)
    return [
        Upload(f"{plan.tenants[i % len(plan.tenants)]}/faults/{i:05d}.jpg", kind, i)
        for i, kind in enumerate(kinds)
    ]


# --- the run -------------------------------------------------------------------------------------------
class FaultRun:
    def __init__(self, plan: FaultPlan, home: Path, say: Callable[[str], None]) -> None:
        self.plan = plan
        self.home = home
        self.say = say
        self.rng = random.Random(plan.seed + 1)
        self.acked: dict[str, str] = {}  # key -> the ETag S3 acknowledged
        self.kinds: dict[str, str] = {}
        self.result = FaultResult(plan.n)
        self._lock = threading.Lock()
        self.ports = {"moto": free_port(), "osmem": free_port(), "console": free_port()}
        self.s3_proxy = FaultProxy(
            upstream=f"http://127.0.0.1:{self.ports['moto']}", error_rate=plan.s3_error_rate
        )
        self.search_proxy = FaultProxy(upstream=f"http://127.0.0.1:{self.ports['osmem']}")
        env = {
            **os.environ,
            "TAGSMITH_HOME": str(home),
            "TAGSMITH_MOTO_PORT": str(self.ports["moto"]),
            "TAGSMITH_OPENSEARCH_PORT": str(self.ports["osmem"]),
            "TAGSMITH_CONSOLE_PORT": str(self.ports["console"]),
            "TAGSMITH_SWEEP_SECONDS": str(plan.sweep_seconds),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self.stack = StackProcess(home, env)

    def run(self) -> FaultResult:
        self.s3_proxy.start()
        self.search_proxy.start()
        self.stack.env["TAGSMITH_CLIENT_ENDPOINT_URL"] = self.s3_proxy.url
        self.stack.env["TAGSMITH_CLIENT_OPENSEARCH_URL"] = self.search_proxy.url
        try:
            self.say(
                f"starting the stack in {self.home} (S3 through {self.s3_proxy.url}, {self.plan.s3_error_rate:.0%} errors)"
            )
            info = self.stack.start()
            self.queue_urls: dict[str, str] = info["queue_urls"]
            os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
            config = Config(
                retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60
            )
            self.s3 = boto3.client(
                "s3", endpoint_url=self.s3_proxy.url, region_name="us-east-1", config=config
            )
            self.sqs = boto3.client(
                "sqs", endpoint_url=self.s3_proxy.url, region_name="us-east-1", config=config
            )
            direct = f"http://127.0.0.1:{self.ports['moto']}"
            self.direct_sqs = boto3.client("sqs", endpoint_url=direct, region_name="us-east-1")
            self.train()
            started = time.monotonic()
            self.upload_all()
            uploaded = time.monotonic()
            self.converge(deadline=uploaded + self.plan.timeout)
            self.result.converge_seconds = time.monotonic() - uploaded
            self.result.wall_seconds = time.monotonic() - started
        finally:
            self.stack.stop()
            self.s3_proxy.stop()
            self.search_proxy.stop()
        stats = self.s3_proxy.stats
        self.result.s3_errors_injected = stats.injected_before + stats.injected_after
        self.result.load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        return self.result

    # --- steps --------------------------------------------------------------------------------------
    def put(self, bucket: str, key: str, body: bytes) -> str:
        """Put until S3 acknowledges it (through the proxy's errors and the stack's restart)."""
        deadline = time.monotonic() + 600
        while True:
            try:
                return str(self.s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]).strip('"')
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def send(self, queue_url: str, body: str) -> None:
        deadline = time.monotonic() + 600
        while True:
            try:
                self.sqs.send_message(QueueUrl=queue_url, MessageBody=body)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def train(self) -> None:
        from tagsmith.local import demo

        for tenant in self.plan.tenants:
            base = f"tenants/{tenant}/examples/{demo.MODEL}/"
            for tag, images in demo.training_set().items():
                for i, data in enumerate(images):
                    self.put(DATA, f"{base}{tag}/{i:02d}.jpg", data)
            self.put(DATA, base + "taxonomy.json", demo.taxonomy_json())
            request = {"model": demo.MODEL, "examples": f"s3://{DATA}/{base}", "kind": "exclusive"}
            self.put(
                DATA, f"tenants/{tenant}/training-requests/faults.train.json", json.dumps(request).encode()
            )
        self.say(f"training a model for {', '.join(self.plan.tenants)} through the training handler")
        deadline = time.monotonic() + 600
        for tenant in self.plan.tenants:
            status = self.home / "s3" / DATA / "tenants" / tenant / "models" / demo.MODEL / "status.json"
            while True:
                got = json.loads(status.read_text()) if status.exists() else {}
                state = got.get("state")
                if state == "trained":
                    break
                # a failure that will be retried (an S3 error the SDK could not hide) is not the end
                if (state == "failed" and not got.get("retrying")) or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"training for {tenant} did not finish: {status.read_text() if status.exists() else 'no status'}"
                    )
                time.sleep(1)

    def upload_all(self) -> None:
        uploads = plan_uploads(self.plan)
        self.kinds = {u.key: u.kind for u in uploads}
        ingest = self.queue_urls["ingest"]
        done = [0]
        faults_done = {"outage": False, "kill": False}
        stop_monitor = threading.Event()

        def one(upload: Upload) -> None:
            body = upload.body()
            etag = self.put(ASSETS, upload.key, body)
            with self._lock:
                self.acked[upload.key] = etag
                done[0] += 1
                twice = self.rng.random() < self.plan.duplicate_uploads
                redeliver = self.rng.random() < self.plan.duplicate_deliveries
            if twice:
                self.put(ASSETS, upload.key, body)  # the same bytes again: a client's retry
                with self._lock:
                    self.result.duplicate_uploads += 1
            if redeliver:
                event = {
                    "Records": [
                        {
                            "eventSource": "aws:s3",
                            "eventName": "ObjectCreated:Put",
                            "s3": {
                                "bucket": {"name": ASSETS},
                                "object": {
                                    "key": quote_plus(upload.key, safe="/"),
                                    "eTag": etag,
                                    "size": len(body),
                                },
                            },
                        }
                    ]
                }
                self.send(ingest, json.dumps(event))
                with self._lock:
                    self.result.duplicate_deliveries += 1

        def monitor() -> None:
            while not stop_monitor.wait(0.2):
                progress = done[0] / self.plan.n
                if not faults_done["outage"] and progress >= self.plan.outage_at:
                    faults_done["outage"] = True
                    info = self.stack.info() or {}
                    pid = int(info.get("opensearch_pid") or 0)
                    self.search_proxy.cut(self.plan.outage_seconds)
                    if pid:
                        os.kill(pid, signal.SIGKILL)
                    self.result.search_outage_seconds = self.plan.outage_seconds
                    self.say(
                        f"  {done[0]} uploads: search server killed, unreachable for {self.plan.outage_seconds:.0f} s"
                    )
                if not faults_done["kill"] and progress >= self.plan.kill_at:
                    faults_done["kill"] = True
                    self.stack.kill9()
                    self.result.stack_kills += 1
                    self.say(f"  {done[0]} uploads: stack killed with SIGKILL mid-batch; restarting")
                    time.sleep(self.plan.down_seconds)
                    self.stack.start()
                    self.say("  stack restarted")

        watcher = threading.Thread(target=monitor, name="faults-monitor", daemon=True)
        watcher.start()
        self.say(f"uploading {self.plan.n} objects with {self.plan.uploaders} uploaders")
        with ThreadPoolExecutor(self.plan.uploaders) as pool:
            list(pool.map(one, uploads))
        # the faults fire on upload progress: make sure both happened even if uploads outran the monitor
        while not (faults_done["outage"] and faults_done["kill"]):
            time.sleep(0.2)
        stop_monitor.set()
        watcher.join()
        self.result.uploads = len(self.acked)

    # --- checks -----------------------------------------------------------------------------------
    def converge(self, *, deadline: float) -> None:
        self.say("waiting for the queues to drain and the stack to converge (no manual reindex)")
        while True:
            self.check()
            if self.result.ok or time.monotonic() > deadline:
                return
            time.sleep(3)

    def check(self) -> None:
        from opensearchpy import OpenSearch
        from tagsmith.records import AssetStatus, TagState
        from tagsmith.review import ReviewStatus, ReviewStore, queue_entry_name, review_item_id
        from tagsmith.search import OpenSearchIndex
        from tagsmith.search.index import searchable
        from tagsmith.storage import FileObjectStore, RecordStore

        r = self.result
        disk = FileObjectStore(root=self.home / "s3")
        records_store = RecordStore(store=disk, bucket=DATA)
        reviews = ReviewStore(store=disk, bucket=DATA)
        index = OpenSearchIndex(
            client=OpenSearch(hosts=[f"http://127.0.0.1:{self.ports['osmem']}"], timeout=30)
        )
        problems: list[str] = []
        lost = duplicated = explained = poison = documents = live_count = items = groups_count = 0
        index_equal = review_equal = True
        for tenant in self.plan.tenants:
            records = {rec.key: rec for rec in records_store.iter_tenant(tenant)}
            for key, etag in self.acked.items():
                if not key.startswith(tenant + "/"):
                    continue
                rec = records.get(key)
                if rec is None or rec.source.etag != etag:
                    lost += 1
                if self.kinds.get(key) == "poison":
                    poison += 1
                    if (
                        rec is not None
                        and rec.status is AssetStatus.FAILED
                        and rec.failure
                        and rec.failure.message
                    ):
                        explained += 1
            unknown = [k for k in records if k not in self.acked and k.startswith(f"{tenant}/faults/")]
            duplicated += len(unknown)
            for rec in records.values():
                pairs = [(t.model, t.tag) for t in rec.tags]
                duplicated += len(pairs) - len(set(pairs))
            docs = index.revisions(tenant) or {}
            live = {k: rec.revision for k, rec in records.items() if searchable(rec)}
            duplicated += len([k for k in docs if k not in records])
            documents += len(docs)
            live_count += len(live)
            if docs != live:
                index_equal = False
                missing = [k for k in live if k not in docs]
                behind = [k for k in live if k in docs and docs[k] != live[k]]
                problems.append(f"{tenant}: index lacks {len(missing)}, {len(behind)} at another revision")
            pending = {i.id: i for i in reviews.iter_tenant(tenant) if i.status is ReviewStatus.PENDING}
            groups = {
                review_item_id(tenant, rec.path, t.model)
                for rec in records.values()
                if rec.status is AssetStatus.TAGGED
                for t in rec.tags
                if t.state is TagState.REVIEW
            }
            entries = {e.name for e in reviews.entries(tenant)}
            wanted_entries = {queue_entry_name(i) for i in pending.values()}
            duplicated += len(entries - wanted_entries)
            items += len(pending)
            groups_count += len(groups)
            if set(pending) != groups or not wanted_entries <= entries:
                review_equal = False
                problems.append(
                    f"{tenant}: {len(set(pending) - groups)} items without a review tag, "
                    f"{len(groups - set(pending))} review tags without an item, "
                    f"{len(wanted_entries - entries)} items without an entry"
                )
        dlq = 0
        for name, url in self.queue_urls.items():
            attrs = self.direct_sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            waiting = int(attrs["ApproximateNumberOfMessages"]) + int(
                attrs["ApproximateNumberOfMessagesNotVisible"]
            )
            if name.endswith("-dlq"):
                dlq += waiting
            elif name == "ingest" and waiting:
                problems.append(f"{waiting} ingest messages still queued")
        r.drained = not any("still queued" in p for p in problems)
        r.lost, r.duplicated, r.poison, r.poison_explained = lost, duplicated, poison, explained
        r.documents, r.searchable_records, r.index_equal = documents, live_count, index_equal
        r.review_items, r.review_tags, r.review_equal = items, groups_count, review_equal
        r.dlq_messages = dlq
        r.problems = problems


def run_faults(
    plan: FaultPlan, *, home: Path | None = None, say: Callable[[str], None] = print
) -> FaultResult:
    """Run the fault test (see the module docstring); ``home``: the stack's state folder (default: a
    new temporary folder, removed afterwards when the run passed)."""
    keep = home is not None
    folder = home or Path(tempfile.mkdtemp(prefix="tagsmith-faults-"))
    folder.mkdir(parents=True, exist_ok=True)
    result = FaultRun(plan, folder, say).run()
    if result.ok and not keep:
        shutil.rmtree(folder, ignore_errors=True)
    elif not result.ok:
        say(f"state and logs kept in {folder}: " + "; ".join(result.problems))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="uploads (default 1000)")
    parser.add_argument("--outage", type=float, default=20.0, help="seconds the search server is down")
    parser.add_argument("--error-rate", type=float, default=0.05, help="share of S3 requests that fail")
    parser.add_argument("--home", type=Path, default=None, help="state folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the stack and proxies on the way out
    plan = FaultPlan(n=args.n, outage_seconds=args.outage, s3_error_rate=args.error_rate)
    result = run_faults(plan, home=args.home, say=lambda m: print(m, file=sys.stderr, flush=True))
    print(result.line(), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps({**asdict(result), "ok": result.ok}, indent=1))
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
