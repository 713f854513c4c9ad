"""``kill -9`` of the local stack loses no acknowledged upload and no queued message.

The stack runs as ``make run`` does (a subprocess); uploads are acknowledged, a message waits in a
dead-letter queue, an object sits outside any tenant prefix; the process is killed with SIGKILL
milliseconds after the last acknowledgement and started again. Every acknowledged upload must be
back, each with a record or a queued event, the dead-letter evidence must be there, and the
restart must log the object it cannot place. (The same under load, with faults: ``make faults``.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.test_make_run import free_port
from tests.fakes import solid_jpeg

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def start(home: Path, ports: dict[str, int]) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TAGSMITH_HOME": str(home),
        "TAGSMITH_MOTO_PORT": str(ports["moto"]),
        "TAGSMITH_OPENSEARCH_PORT": str(ports["osmem"]),
        "TAGSMITH_CONSOLE_PORT": str(ports["console"]),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with (home / "up.log").open("ab") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "tagsmith"), "up", "--no-demo"],
            env=env,
            stdout=log,
            stderr=log,
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        info = home / "stack.json"  # the killed stack's file stays behind: wait for this process's
        try:
            got = json.loads(info.read_text())
        except (FileNotFoundError, ValueError):
            got = {}
        if got.get("pid") == process.pid and got.get("console_url"):
            return process
        if process.poll() is not None:
            raise AssertionError((home / "up.log").read_text())
        time.sleep(0.2)
    process.kill()
    raise AssertionError("the stack did not start: " + (home / "up.log").read_text())


def clients(port: int) -> tuple[Any, Any]:
    endpoint = f"http://127.0.0.1:{port}"
    return (
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1"),
        boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1"),
    )


def test_kill_9_loses_no_acknowledged_upload_and_no_queued_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(k, v)
    ports = {"moto": free_port(), "osmem": free_port(), "console": free_port()}
    process = start(tmp_path, ports)
    s3, sqs = clients(ports["moto"])
    dlq = sqs.get_queue_url(QueueName="tagsmith-ingest-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=dlq, MessageBody='{"evidence": "a message that failed three times"}')
    s3.put_object(Bucket="tagsmith-assets", Key="stray-upload.jpg", Body=solid_jpeg((9, 9, 9)))
    acknowledged = []
    for i in range(60):
        key = f"acme/burst/{i:03d}.jpg"
        s3.put_object(Bucket="tagsmith-assets", Key=key, Body=solid_jpeg((i * 4, 90, 160), seed=i))
        acknowledged.append(key)
    os.kill(process.pid, signal.SIGKILL)  # within milliseconds of the last acknowledgement
    process.wait(timeout=30)

    process = start(tmp_path, ports)
    try:
        s3, sqs = clients(ports["moto"])
        listed = {
            o["Key"]
            for p in s3.get_paginator("list_objects_v2").paginate(Bucket="tagsmith-assets")
            for o in p.get("Contents", [])
        }
        assert set(acknowledged) <= listed  # lost: 0
        evidence = sqs.receive_message(QueueUrl=dlq, VisibilityTimeout=0)["Messages"]
        assert [m["Body"] for m in evidence] == ['{"evidence": "a message that failed three times"}']

        def recorded_or_queued() -> set[str]:
            done = {
                o["Key"].removeprefix("tenants/acme/records/").removesuffix(".json")
                for p in s3.get_paginator("list_objects_v2").paginate(
                    Bucket="tagsmith-data", Prefix="tenants/acme/records/"
                )
                for o in p.get("Contents", [])
            }
            return {k for k in acknowledged if k.removeprefix("acme/") in done}

        ingest = sqs.get_queue_url(QueueName="tagsmith-ingest")["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=ingest, AttributeNames=["All"])["Attributes"]
        waiting = int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )
        # every acknowledged upload has a record or an event still queued (a restart sends none twice)
        assert len(recorded_or_queued()) + waiting >= len(acknowledged)
        deadline = time.monotonic() + 240
        while len(recorded_or_queued()) < len(acknowledged) and time.monotonic() < deadline:
            time.sleep(1)
        assert recorded_or_queued() == set(acknowledged)
        logged = (tmp_path / "logs" / "functions.jsonl").read_text()
        assert "cannot place s3://tagsmith-assets/stray-upload.jpg" in logged
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
