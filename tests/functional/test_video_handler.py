"""functions/video/handler.py as deployed: SQS on moto, a long upload becomes a job whose steps the
local Lambda runtime (SqsPoller) feeds to the handler until the record is written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tagsmith.config import Settings
from tagsmith.events import ObjectRef
from tagsmith.keys import AssetKey
from tagsmith.local.runtime import LambdaContext, SqsPoller
from tagsmith.local.stack import REPO_ROOT, load_function
from tagsmith.records import AssetStatus
from tagsmith.search import InMemorySearchIndex
from tagsmith.storage import S3ObjectStore
from tagsmith.wiring import build

from tests.fakes import FakeEncoder
from tests.functional.conftest import HANDLER_ASSETS, HANDLER_DATA, queue_with_arn
from tests.videoclips import colour_clip, install_colour_model

ASSETS, DATA = HANDLER_ASSETS, HANDLER_DATA


@pytest.fixture
def aws(moto_aws: dict[str, Any]) -> dict[str, Any]:
    url, arn = queue_with_arn(moto_aws["sqs"], "tagsmith-video-jobs")
    return {**moto_aws, "url": url, "arn": arn}


def test_the_handler_runs_a_job_to_its_record_one_window_per_invocation(aws: dict[str, Any]) -> None:
    module = load_function(REPO_ROOT / "functions", "video")
    settings = Settings(
        data_bucket=DATA, assets_bucket=ASSETS, video_jobs_queue_url=aws["url"],
        video_inline_seconds=5.0, video_window_seconds=3.0,
    )  # fmt: skip
    c = build(settings, store=S3ObjectStore(client=aws["s3"]), index=InMemorySearchIndex(),
              encoder=FakeEncoder())  # fmt: skip
    install_colour_model(c)
    module.components.set(c)
    body = colour_clip((("red", 4.0), ("blue", 4.0), ("red", 4.0)), gop=20)
    etag = c.store.put(ASSETS, "acme/long.mp4", body)
    [queued] = c.ingest.ingest([ObjectRef(ASSETS, "acme/long.mp4", etag, len(body))])
    assert queued.status == "queued"
    # a function timeout of a millisecond: every invocation has time for its one window only
    poller = SqsPoller(
        sqs=aws["sqs"], queue_url=aws["url"], queue_arn=aws["arn"], handler=module.handler,
        function_name="tagsmith-video", batch_size=1, wait_seconds=0, timeout=0.001,
    )  # fmt: skip
    while poller.poll_once():
        assert poller.invocations < 30
    assert poller.invocations >= 4
    found = c.records.get(AssetKey("acme", "long.mp4"))
    assert found is not None
    r = found[0]
    assert r.status is AssetStatus.TAGGED
    assert [(s.tag, s.start, s.end) for s in r.segments] == [
        ("blue", 4.0, 8.0), ("red", 0.0, 4.0), ("red", 8.0, pytest.approx(12.0, abs=0.15)),
    ]  # fmt: skip


def test_a_message_that_is_not_a_job_step_fails_for_the_dead_letter_queue(aws: dict[str, Any]) -> None:
    module = load_function(REPO_ROOT / "functions", "video")
    settings = Settings(data_bucket=DATA, assets_bucket=ASSETS, video_jobs_queue_url=aws["url"])
    module.components.set(build(settings, store=S3ObjectStore(client=aws["s3"]),
                                index=InMemorySearchIndex(), encoder=FakeEncoder()))  # fmt: skip
    event = {"Records": [
        {"messageId": "bad", "body": json.dumps({"Records": []}), "attributes": {"ApproximateReceiveCount": "1"}},
        {"messageId": "neg", "body": json.dumps({"video_job": {"tenant": "acme", "path": "a.mp4", "etag": "e",
                                                               "step": -1}}), "attributes": {}},
        {"messageId": "gone", "body": json.dumps({"video_job": {"tenant": "acme", "path": "a.mp4", "etag": "e",
                                                                "step": 0}}), "attributes": {}},
    ]}  # fmt: skip
    response = module.handler(event, LambdaContext("tagsmith-video", timeout=900))
    # a job that does not exist (superseded and cleaned up) is not an error
    assert response == {"batchItemFailures": [{"itemIdentifier": "bad"}, {"itemIdentifier": "neg"}]}
