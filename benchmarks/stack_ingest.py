"""The local stack's ingest throughput and upload -> searchable latency, on the grocery photos.

    .venv/bin/python -m benchmarks.stack_ingest                        # 3,000 photos, 100 latency uploads x 2
    .venv/bin/python -m benchmarks.stack_ingest --concurrency 1        # the runtime's ingest pollers
    .venv/bin/python -m benchmarks.stack_ingest --photos 300 --profile # requests and CPU per asset

The stack runs as ``make run`` runs it (``tagsmith up --no-demo`` in a subprocess, on free ports and
a scratch ``TAGSMITH_HOME``). A tenant's model is trained in this process from the k=5 support
photos of split seed 0 (``TrainingService``, written to the stack's data bucket), then:

* **bulk**: ``--photos`` grocery photos (not the support ones) are uploaded with boto3 from
  ``--uploaders`` threads to the assets bucket; the time from the first upload to the last record
  written (the newest record file's mtime in the stack's write-through folder, so nothing polls
  moto meanwhile) gives photos/s. The pool holds about 2,500 distinct photos: beyond that a photo
  is reused under another key with a zero byte appended after its JPEG end marker (one more per
  reuse), so every object is
  distinct (its own ETag and SHA-256: the embedding cache cannot serve it).
* **decode + embed** alone runs in this process on 200 of the same photos just before and just
  after the bulk run (the same encoder and batch size); the ratio quoted is bulk photos/s over the
  mean of the two.
* **latency**: ``--latency`` uploads one at a time, each timed from just before its PUT until a
  search (a count on the tenant's alias for its key, every 20 ms) finds it; p50 and p95. First on
  the idle stack, then while a bulk upload runs at ``--bulk-share`` of the measured bulk rate
  (a bulk import that keeps the queue short; an import faster than the stack drains it queues
  every later upload behind itself, whatever the runtime does).
* ``--profile``: every request of the handlers goes through a counting proxy (``faultproxy`` with
  no faults) in front of moto and osmem: requests per asset by kind, and the seconds they spend
  upstream; the stack process's and osmem's CPU seconds per asset (``/proc``) beside the encoder's
  (decode + embed CPU seconds per photo in this process), and moto's CPU seconds per request (300
  PUTs and 300 GETs of a record-sized object on the idle stack afterwards). The proxy adds a hop
  to each request: take throughput from a run without it.

The load average is printed with the figures: on a shared machine quote ratios from one run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import statistics
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.run import GROCERY, load_split, split_paths

TENANT = "bench"
ASSETS, DATA = "tagsmith-assets", "tagsmith-data"
EMBED_PHOTOS = 200


def _jpeg(path: str, copy: int) -> bytes:
    """The photo's bytes; ``copy`` > 0: the same photo with ``copy`` bytes appended after its end
    marker (decoders ignore them; the object is distinct)."""
    data = (GROCERY / path).read_bytes()
    return data + b"\0" * copy


def _photos(n: int) -> list[tuple[str, bytes]]:
    """``n`` (name, bytes) pairs: the grocery photos outside the training split, then copies."""
    split = load_split(5, 0)
    support = {p for p, _ in split.support}
    ordered = [p for p in split_paths((5,), (0,)) if p not in support]
    seen = set(ordered)
    pool = [str(p.relative_to(GROCERY)) for p in sorted((GROCERY / "train").rglob("*.jpg"))]
    ordered += [p for p in pool if p not in support and p not in seen]
    out = []
    for i in range(n):
        path = ordered[i % len(ordered)]
        copy = i // len(ordered)
        out.append((f"{i:05d}-{Path(path).name}", _jpeg(path, copy)))  # train/ and val/ share names
    return out


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _classify(request: Any) -> str:
    """A request's kind: S3 by bucket and key family, other AWS APIs by action, OpenSearch by
    endpoint (index names left out)."""
    target = request.headers.get("x-amz-target", "")
    if target:
        return "aws " + target.split(".", 1)[-1]
    path = request.path
    if path.startswith(f"/{ASSETS}/"):
        return f"s3 {request.method} asset"
    if path.startswith(f"/{DATA}/"):
        parts = path.split("/")
        family = parts[4] if len(parts) > 4 and parts[2] == "tenants" else "other"
        return f"s3 {request.method} {family}"
    if request.method == "POST" and path == "/":  # the query protocol
        return "aws POST /"
    shape = "/".join(s if s.startswith("_") else "*" for s in path.strip("/").split("/") if s)
    return f"search {request.method} /{shape}"


class _Profile:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe(self, request: Any, seconds: float) -> None:
        kind = _classify(request)
        with self._lock:
            self.counts[kind] += 1
            self.seconds[kind] = self.seconds.get(kind, 0.0) + seconds

    def snapshot(self) -> tuple[Counter[str], dict[str, float]]:
        with self._lock:
            return Counter(self.counts), dict(self.seconds)


class StackIngestRun:
    def __init__(self, *, home: Path, concurrency: int | None, profile: bool, say: Any = print) -> None:
        from tagsmith.config import LOCAL_ENV_NAMES

        from benchmarks.faults import StackProcess, free_port

        self.home = home
        self.say = say
        self.profile = _Profile() if profile else None
        self.ports = {"moto": free_port(), "osmem": free_port(), "console": free_port()}
        names = LOCAL_ENV_NAMES
        env = {
            **os.environ,
            names["home"]: str(home),
            names["moto_port"]: str(self.ports["moto"]),
            names["opensearch_port"]: str(self.ports["osmem"]),
            names["console_port"]: str(self.ports["console"]),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        if concurrency is not None:
            env[names["ingest_concurrency"]] = str(concurrency)
        self.proxies: list[Any] = []
        if self.profile is not None:
            from benchmarks.faultproxy import FaultProxy

            s3 = FaultProxy(upstream=f"http://127.0.0.1:{self.ports['moto']}", observe=self.profile.observe)
            search = FaultProxy(
                upstream=f"http://127.0.0.1:{self.ports['osmem']}", observe=self.profile.observe
            )
            self.proxies = [s3.start(), search.start()]
            env[names["client_endpoint_url"]] = s3.url
            env[names["client_opensearch_url"]] = search.url
        self.stack = StackProcess(home, env)
        self._uploaded = 0

    # --- set-up ---------------------------------------------------------------------------------
    def start(self) -> None:
        import boto3
        from botocore.config import Config
        from opensearchpy import OpenSearch
        from tagsmith.local.stack import StackInfo
        from tagsmith.trainer import Example
        from tagsmith.wiring import build

        os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
        self.say(f"starting the stack in {self.home}")
        self.info = self.stack.start()
        moto = f"http://127.0.0.1:{self.ports['moto']}"
        config = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32)
        self.s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1", config=config)
        self.search = OpenSearch(hosts=[f"http://127.0.0.1:{self.ports['osmem']}"], timeout=30)
        stack_info = StackInfo.read(self.home)
        assert stack_info is not None
        self.components = build(stack_info.direct_settings())
        self.say("training the tenant's model (k=5, seed 0) in this process")
        split = load_split(5, 0)
        examples = [Example(label, path, (GROCERY / path).read_bytes) for path, label in split.support]
        self.components.trainer.train(tenant=TENANT, model_id="grocery", examples=examples)

    def stop(self) -> None:
        self.stack.stop()
        for proxy in self.proxies:
            proxy.stop()

    # --- measurements ----------------------------------------------------------------------------
    def embed_only(self, photos: list[tuple[str, bytes]], batch: int = 10) -> tuple[float, float]:
        """Decode + embed photos/s in this process, and CPU seconds per photo."""
        from tagsmith.encoder import decode_image

        encoder = self.components.encoder
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(photos), batch):
            encoder.embed([decode_image(data).image for _, data in photos[i : i + batch]])
        seconds = time.perf_counter() - started
        return len(photos) / seconds, (time.process_time() - cpu) / len(photos)

    def records(self, folder: str) -> list[Path]:
        root = self.home / "s3" / DATA / "tenants" / TENANT / "records" / folder
        return [p for p in root.rglob("*.json")] if root.is_dir() else []

    def wait_records(self, folder: str, n: int, timeout: float) -> float:
        """Wait until ``folder`` holds ``n`` records; returns the newest one's mtime (epoch s)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.records(folder)
            if len(found) >= n:
                time.sleep(1.0)  # the outbound stamp rewrites a record just after its write
                return max(p.stat().st_mtime for p in self.records(folder))
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(found)} of {n} records in {folder} after {timeout:.0f} s")
            time.sleep(0.5)

    def put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=ASSETS, Key=f"{TENANT}/{key}", Body=data, ContentType="image/jpeg")

    def bulk(self, folder: str, photos: list[tuple[str, bytes]], uploaders: int) -> dict[str, Any]:
        pids = {"stack": int(self.info["pid"]), "osmem": int(self.info["opensearch_pid"])}
        cpu = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        before = self.profile.snapshot() if self.profile else None
        log = self.home / "logs" / "functions.jsonl"
        log_from = log.stat().st_size if log.exists() else 0
        first = time.time()
        with ThreadPoolExecutor(uploaders) as pool:
            list(pool.map(lambda p: self.put(f"{folder}/{p[0]}", p[1]), photos))
        uploaded = time.time() - first
        last = self.wait_records(folder, len(photos), timeout=3600)
        seconds = last - first
        n = len(photos)
        out: dict[str, Any] = {
            "photos": n,
            "uploaders": uploaders,
            "upload_seconds": round(uploaded, 1),
            "seconds": round(seconds, 1),
            "photos_per_second": round(n / seconds, 1),
            "cpu_seconds_per_photo": {
                name: round((_cpu_seconds(pid) - cpu[name]) / n, 4) for name, pid in pids.items()
            },
        }
        out["invocations"] = _invocations(log, log_from)
        if self.profile and before is not None:
            counts, waits = self.profile.snapshot()
            counts.subtract(before[0])
            waits = {k: v - before[1].get(k, 0.0) for k, v in waits.items()}
            out["requests_per_photo"] = {k: round(v / n, 2) for k, v in sorted(counts.items()) if v}
            out["requests_per_photo_total"] = round(sum(counts.values()) / n, 2)
            out["request_seconds_per_photo"] = {
                k: round(v / n, 4) for k, v in sorted(waits.items()) if counts[k]
            }
            out["request_seconds_per_photo_total"] = round(sum(waits.values()) / n, 4)
        return out

    def moto_cpu_per_request(self, n: int = 300) -> float:
        """The stack process's CPU seconds per S3 request, from ``n`` PUTs of a record-sized
        object and ``n`` GETs of it on the idle stack (moto serves them inside that process)."""
        pid = int(self.info["pid"])
        body = b"{" + b"x" * 3000 + b"}"
        keys = [f"tenants/{TENANT}/probe/{i}.json" for i in range(n)]
        cpu = _cpu_seconds(pid)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda k: self.s3.put_object(Bucket=DATA, Key=k, Body=body), keys))
            list(pool.map(lambda k: self.s3.get_object(Bucket=DATA, Key=k)["Body"].read(), keys))
        return (_cpu_seconds(pid) - cpu) / (2 * n)

    def searchable(self, key: str) -> bool:
        from tagsmith.search.mapping import alias_name

        try:
            found = self.search.count(
                index=alias_name(TENANT), body={"query": {"term": {"asset_key": f"{TENANT}/{key}"}}}
            )
        except Exception:
            return False
        return int(found["count"]) > 0

    def latency(self, folder: str, photos: list[tuple[str, bytes]], timeout: float = 120) -> list[float]:
        seconds = []
        for name, data in photos:
            key = f"{folder}/{name}"
            started = time.perf_counter()
            self.put(key, data)
            while not self.searchable(key):
                if time.perf_counter() - started > timeout:
                    raise RuntimeError(f"{key} was not searchable after {timeout:.0f} s")
                time.sleep(0.02)
            seconds.append(time.perf_counter() - started)
        return seconds

    def latency_under_bulk(
        self, folder: str, photos: list[tuple[str, bytes]], bulk: list[tuple[str, bytes]], rate: float
    ) -> tuple[list[float], int]:
        """:meth:`latency` while another thread uploads ``bulk`` photos at ``rate`` per second
        (cycling through them under new keys until the latency uploads are done)."""
        done = threading.Event()
        sent = [0]

        def upload() -> None:
            started = time.perf_counter()
            while not done.is_set():
                name, data = bulk[sent[0] % len(bulk)]
                self.put(f"{folder}-bulk/{sent[0]}-{name}", data)
                sent[0] += 1
                wait = started + sent[0] / rate - time.perf_counter()
                if wait > 0:
                    done.wait(wait)

        thread = threading.Thread(target=upload, name="bulk-upload", daemon=True)
        thread.start()
        time.sleep(5.0)  # the bulk upload under way before the first measured upload
        try:
            return self.latency(folder, photos), sent[0]
        finally:
            done.set()
            thread.join(timeout=30)


def _invocations(log: Path, offset: int) -> dict[str, Any]:
    """The ingest invocations the runtime logged after ``offset``: how many, messages per batch,
    seconds per invocation."""
    sizes, seconds = [], []
    with log.open("rb") as f:
        f.seek(offset)
        for raw in f:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if line.get("function") == "tagsmith-ingest" and "messages" in line:
                sizes.append(int(line["messages"]))
                seconds.append(float(line["seconds"]))
    if not sizes:
        return {"count": 0}
    return {
        "count": len(sizes),
        "messages_mean": round(statistics.mean(sizes), 1),
        "seconds_median": round(statistics.median(seconds), 2),
        "seconds_p95": round(sorted(seconds)[int(0.95 * (len(seconds) - 1))], 2),
    }


def _summary(seconds: list[float]) -> dict[str, Any]:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 3),
        "p95": round(p95, 3),
        "max": round(ordered[-1], 3),
    }


def run(
    *,
    photos: int = 3000,
    uploaders: int = 4,
    latency: int = 100,
    bulk_share: float = 0.5,
    concurrency: int | None = None,
    profile: bool = False,
    home: Path | None = None,
    say: Any = print,
) -> dict[str, Any]:
    folder = home or Path(tempfile.mkdtemp(prefix="tagsmith-stack-ingest-"))
    folder.mkdir(parents=True, exist_ok=True)
    pool = _photos(photos + 2 * latency + 10)
    warm, bulk_photos = pool[:10], pool[10 : 10 + photos]
    idle_photos = pool[10 + photos : 10 + photos + latency]
    busy_photos = pool[10 + photos + latency :]
    result: dict[str, Any] = {
        "concurrency": concurrency if concurrency is not None else "default (resources.py)",
        "distinct_photos": len({hashlib.sha256(data.rstrip(b"\0")).hexdigest() for _, data in bulk_photos}),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    stack = StackIngestRun(home=folder, concurrency=concurrency, profile=profile, say=say)
    try:
        stack.start()
        say("warm-up: 10 photos (sessions, the tenant's models)")
        for name, data in warm:
            stack.put(f"warm/{name}", data)
        stack.wait_records("warm", len(warm), timeout=300)
        sample = bulk_photos[:EMBED_PHOTOS]
        embed_before, cpu_before = stack.embed_only(sample)
        say(f"decode + embed before: {embed_before:.1f} photos/s; bulk upload of {photos} photos")
        result["bulk"] = stack.bulk("bulk", bulk_photos, uploaders)
        embed_after, cpu_after = stack.embed_only(sample)
        embed = (embed_before + embed_after) / 2
        result["embed_only_photos_per_second"] = [round(embed_before, 1), round(embed_after, 1)]
        result["encoder_cpu_seconds_per_photo"] = round((cpu_before + cpu_after) / 2, 4)
        result["ratio"] = round(result["bulk"]["photos_per_second"] / embed, 2)
        result["load_average_after_bulk"] = [round(x, 2) for x in os.getloadavg()]
        if profile:
            stack.wait_records("bulk", photos, timeout=600)
            result["moto_cpu_seconds_per_request"] = round(stack.moto_cpu_per_request(), 5)
        say(f"bulk {result['bulk']['photos_per_second']} photos/s, ratio {result['ratio']}")
        if latency:
            stack.wait_records("bulk", photos, timeout=600)
            result["latency_idle"] = _summary(stack.latency("idle", idle_photos))
            say(f"latency, idle: {result['latency_idle']}")
            rate = bulk_share * result["bulk"]["photos_per_second"]
            seconds, sent = stack.latency_under_bulk("busy", busy_photos, bulk_photos, rate)
            result["latency_under_bulk"] = {
                **_summary(seconds),
                "bulk_rate": round(rate, 1),
                "bulk_sent": sent,
            }
            say(f"latency under a bulk upload at {rate:.1f}/s: {result['latency_under_bulk']}")
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        stack.stop()
        if home is None:
            shutil.rmtree(folder, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.stack_ingest", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--photos", type=int, default=3000, help="bulk upload size (default 3000)")
    parser.add_argument("--uploaders", type=int, default=4, help="boto3 upload threads")
    parser.add_argument("--latency", type=int, default=100, help="uploads timed one at a time (0: none)")
    parser.add_argument(
        "--bulk-share", type=float, default=0.5, help="bulk rate during latency, share of the measured rate"
    )
    parser.add_argument("--concurrency", type=int, default=None, help="ingest invocations at once")
    parser.add_argument("--profile", action="store_true", help="count requests through a proxy")
    parser.add_argument("--home", type=Path, default=None, help="the stack's folder (default: temporary)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the stack on the way out
    if not (GROCERY / "splits").is_dir():
        print(f"SKIPPED: the grocery dataset is not at {GROCERY} (set TAGSMITH_GROCERY_DIR)")
        return 0
    result = run(
        photos=args.photos,
        uploaders=args.uploaders,
        latency=args.latency,
        bulk_share=args.bulk_share,
        concurrency=args.concurrency,
        profile=args.profile,
        home=args.home,
        say=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
