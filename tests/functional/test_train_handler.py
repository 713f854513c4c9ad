"""The deployable train handler, fed Lambda-shaped SQS events built from S3 events, against S3 and
SQS on moto (in process). Status goes pending -> training -> trained / failed beside the model."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from tagsmith.config import Settings
from tagsmith.local.runtime import LambdaContext, SqsPoller
from tagsmith.local.stack import REPO_ROOT, load_function
from tagsmith.search import InMemorySearchIndex
from tagsmith.storage import S3ObjectStore
from tagsmith.tagmodels import ModelKind
from tagsmith.trainjobs import TrainingJobs, TrainingRequest
from tagsmith.wiring import Components, build

from tests.conftest import load_event
from tests.fakes import FakeEncoder, solid_jpeg
from tests.functional.conftest import HANDLER_ASSETS, HANDLER_DATA

ASSETS, DATA = HANDLER_ASSETS, HANDLER_DATA
MANIFESTS = Path(__file__).resolve().parents[1] / "data" / "manifests"
FRUIT = {"red-apple": (210, 30, 35), "green-apple": (60, 190, 50), "Blueberries": (40, 50, 200)}
CONTEXT = LambdaContext("tagsmith-train")


@pytest.fixture
def aws(moto_aws: dict[str, Any]) -> dict[str, Any]:
    return moto_aws


@pytest.fixture
def components(aws: dict[str, Any]) -> Components:
    return build(
        Settings(data_bucket=DATA, assets_bucket=ASSETS),
        store=S3ObjectStore(client=aws["s3"]),
        index=InMemorySearchIndex(),
        encoder=FakeEncoder(),
    )


@pytest.fixture
def handler(components: Components) -> Any:
    """functions/train/handler.py as deployed, with its jobs wired to moto and the fake encoder."""
    module = load_function(REPO_ROOT / "functions", "train")
    module.jobs.set(
        TrainingJobs(
            store=components.store,
            data_bucket=DATA,
            trainer=components.trainer,
            records=components.records,
            assets_bucket=ASSETS,
        )
    )
    return module.handler


def upload_ground_truth_job(s3: Any) -> str:
    """The labelled fruit photos and Ground Truth's output manifest, where a labelling job leaves them."""
    for line in (MANIFESTS / "groundtruth-classification.manifest").read_text().splitlines():
        row = json.loads(line)
        meta = row.get("fruit-type-metadata", {})
        if "class-name" not in meta:
            continue
        key = row["source-ref"].removeprefix(f"s3://{ASSETS}/")
        tag = {"Red apple": "red-apple", "Green apple": "green-apple"}.get(
            meta["class-name"], meta["class-name"]
        )
        # a stable seed per photo (str's hash() is salted per process: two photos could collide)
        seed = zlib.crc32(key.encode())
        s3.put_object(Bucket=ASSETS, Key=key, Body=solid_jpeg(FRUIT[tag], noise=25, seed=seed))
    manifest_key = "acme/labeling/fruit-type/manifests/output/output.manifest"
    s3.put_object(
        Bucket=ASSETS, Key=manifest_key, Body=(MANIFESTS / "groundtruth-classification.manifest").read_bytes()
    )
    return f"s3://{ASSETS}/{manifest_key}"


def sqs_event_for(key: str, etag: str = "x") -> dict[str, Any]:
    """The sample Lambda SQS event, its S3 event body pointed at ``key``."""
    event = load_event("train_sqs_event.json")
    s3_event = load_event("train_request_s3_event.json")
    s3_event["Records"][0]["s3"]["object"].update({"key": key, "eTag": etag})
    event["Records"][0]["body"] = json.dumps(s3_event)
    return event


def test_sample_event_trains_from_a_ground_truth_manifest_and_reports_beside_the_version(
    aws: dict[str, Any], components: Components, handler: Any
) -> None:
    # GIVEN a Ground Truth output manifest and a request naming it, at the key of the sample event
    manifest = upload_ground_truth_job(aws["s3"])
    request_key = "tenants/acme/training-requests/fruit+2026-11.train.json"  # the sample's key, decoded
    aws["s3"].put_object(
        Bucket=DATA, Key=request_key, Body=json.dumps({"model": "fruit", "examples": manifest}).encode()
    )
    # WHEN the sample SQS event (unchanged) reaches the handler
    response = handler(load_event("train_sqs_event.json"), CONTEXT)
    # THEN the model is trained, promoted, and its status and report sit beside it
    assert response == {"batchItemFailures": []}
    status = components.models.read_status("acme", "fruit")
    assert status is not None and status["state"] == "trained" and status["promoted"] is True
    assert status["request"] == request_key
    assert any("labelling failed" in w and "IMG_0099.jpg" in w for w in status["warnings"])
    version = status["version"]
    assert components.models.active_version("acme", "fruit") == version
    report = json.loads(aws["s3"].get_object(Bucket=DATA, Key=status["report_key"])["Body"].read())
    assert set(report["tags"]) == {"red-apple", "green-apple", "Blueberries"} and report["examples"] == 12
    html = aws["s3"].get_object(Bucket=DATA, Key=f"tenants/acme/models/fruit/versions/{version}/report.html")
    assert html["ContentType"].startswith("text/html")
    model = components.models.load_active("acme", "fruit")
    assert model is not None and model.taxonomy.get("red-apple").labels == {"en": "Red apple"}


def test_submitted_request_goes_pending_then_trained_via_s3_notification_and_sqs(
    aws: dict[str, Any], components: Components, handler: Any
) -> None:
    # GIVEN the data bucket notifying a training queue of new .train.json objects, as deployed
    sqs, s3 = aws["sqs"], aws["s3"]
    queue = sqs.create_queue(QueueName="tagsmith-training", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=DATA,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {
                            "FilterRules": [
                                {"Name": "prefix", "Value": "tenants/"},
                                {"Name": "suffix", "Value": ".train.json"},
                            ]
                        }
                    },
                }
            ]
        },
    )
    manifest = upload_ground_truth_job(s3)
    jobs = TrainingJobs(store=components.store, data_bucket=DATA, trainer=components.trainer)
    # WHEN a request is submitted
    key = jobs.submit(TrainingRequest(tenant="acme", model="fruit", examples=(manifest,)))
    # THEN it is pending until the handler runs
    assert components.models.read_status("acme", "fruit")["state"] == "pending"  # type: ignore[index]
    poller = SqsPoller(
        sqs=sqs, queue_url=queue, queue_arn=arn, handler=handler, function_name="train", wait_seconds=0
    )
    while poller.poll_once():  # the s3:TestEvent first, then the request
        pass
    status = components.models.read_status("acme", "fruit")
    assert status is not None and (status["state"], status["request"]) == ("trained", key)


def test_redelivered_request_is_not_trained_twice(
    aws: dict[str, Any], components: Components, handler: Any
) -> None:
    manifest = upload_ground_truth_job(aws["s3"])
    key = "tenants/acme/training-requests/again.train.json"
    etag = aws["s3"].put_object(
        Bucket=DATA, Key=key, Body=json.dumps({"model": "fruit", "examples": manifest}).encode()
    )["ETag"]
    event = sqs_event_for(key, etag.strip('"'))
    handler(event, CONTEXT)
    handler(event, CONTEXT)  # at-least-once delivery
    assert len(components.models.versions("acme", "fruit")) == 1


def test_malformed_request_fails_with_a_status_that_says_what_to_fix(
    aws: dict[str, Any], components: Components, handler: Any
) -> None:
    key = "tenants/acme/training-requests/bad.train.json"
    aws["s3"].put_object(
        Bucket=DATA,
        Key=key,
        Body=json.dumps({"model": "fruit", "examples": "s3://x/y/", "kind": "several"}).encode(),
    )
    response = handler(sqs_event_for(key), CONTEXT)
    assert response == {"batchItemFailures": []}  # dropped: retrying cannot help
    status = components.models.read_status("acme", "fruit")
    assert status is not None and status["state"] == "failed"
    assert "bad.train.json is malformed" in status["error"] and "'several'" in status["error"]


def test_request_for_another_tenants_examples_fails_naming_them(
    aws: dict[str, Any], components: Components, handler: Any
) -> None:
    key = "tenants/acme/training-requests/steal.train.json"
    aws["s3"].put_object(
        Bucket=DATA,
        Key=key,
        Body=json.dumps({"model": "fruit", "examples": f"s3://{DATA}/tenants/globex/examples/"}).encode(),
    )
    handler(sqs_event_for(key), CONTEXT)
    status = components.models.read_status("acme", "fruit")
    assert status is not None and status["state"] == "failed"
    assert "tenants/globex/examples/" in status["error"] and "outside this tenant" in status["error"]


def test_user_error_in_the_examples_fails_naming_the_tags_to_fix(
    aws: dict[str, Any], components: Components, handler: Any
) -> None:
    s3 = aws["s3"]
    for i in range(2):
        s3.put_object(
            Bucket=ASSETS, Key=f"acme/ex/red/{i}.jpg", Body=solid_jpeg((210, 30, 35), noise=20, seed=i)
        )
    for i in range(5):
        s3.put_object(
            Bucket=ASSETS, Key=f"acme/ex/blue/{i}.jpg", Body=solid_jpeg((40, 50, 200), noise=20, seed=i)
        )
    key = "tenants/acme/training-requests/few.train.json"
    s3.put_object(
        Bucket=DATA,
        Key=key,
        Body=json.dumps({"model": "colour", "examples": f"s3://{ASSETS}/acme/ex/"}).encode(),
    )
    assert handler(sqs_event_for(key), CONTEXT) == {"batchItemFailures": []}
    status = components.models.read_status("acme", "colour")
    assert status is not None and status["state"] == "failed" and "add more to: red (2)" in status["error"]


def test_manifest_dropped_under_a_model_folder_trains_that_model(
    aws: dict[str, Any], components: Components, handler: Any
) -> None:
    s3 = aws["s3"]
    lines = ["path,tags"]
    for tag, rgb in {"red": (210, 30, 35), "green": (60, 190, 50), "blue": (40, 50, 200)}.items():
        for i in range(3):
            s3.put_object(
                Bucket=DATA,
                Key=f"tenants/acme/training-requests/colour/img/{tag}{i}.jpg",
                Body=solid_jpeg(rgb, noise=20, seed=i),
            )
            lines.append(f"img/{tag}{i}.jpg,{tag}")
    key = "tenants/acme/training-requests/colour/batch-1.csv"
    s3.put_object(Bucket=DATA, Key=key, Body="\n".join(lines).encode())
    handler(sqs_event_for(key), CONTEXT)
    status = components.models.read_status("acme", "colour")
    assert status is not None and status["state"] == "trained" and status["report"]["examples"] == 9


def test_unexpected_failure_is_retried_and_the_status_says_so(
    aws: dict[str, Any], components: Components, handler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = upload_ground_truth_job(aws["s3"])
    key = "tenants/acme/training-requests/flaky.train.json"
    aws["s3"].put_object(
        Bucket=DATA, Key=key, Body=json.dumps({"model": "fruit", "examples": manifest}).encode()
    )

    def broken(images: Any) -> Any:
        raise RuntimeError("encoder session crashed")

    monkeypatch.setattr(components.encoder, "embed", broken)
    event = sqs_event_for(key)
    assert handler(event, CONTEXT) == {
        "batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]
    }
    status = components.models.read_status("acme", "fruit")
    assert status is not None and status["state"] == "failed" and status["retrying"] is True
    assert "encoder session crashed" in status["error"]


def test_multilabel_ground_truth_request_trains_a_multilabel_model(
    aws: dict[str, Any], components: Components, handler: Any
) -> None:
    s3 = aws["s3"]
    colours = {"outdoor": 0, "people": 1, "product": 2}
    for line in (MANIFESTS / "groundtruth-multilabel.manifest").read_text().splitlines():
        row = json.loads(line)
        tags = set(row["scene-metadata"]["class-map"].values())
        rgb = tuple(200 if name in tags else 30 for name in colours)
        s3.put_object(
            Bucket=ASSETS,
            Key=row["source-ref"].removeprefix(f"s3://{ASSETS}/"),
            Body=solid_jpeg(rgb, noise=15, seed=len(line)),
        )  # type: ignore[arg-type]
    s3.put_object(
        Bucket=ASSETS,
        Key="acme/labeling/scene.manifest",
        Body=(MANIFESTS / "groundtruth-multilabel.manifest").read_bytes(),
    )
    key = "tenants/acme/training-requests/scene.train.json"
    body = {
        "model": "scene",
        "examples": f"s3://{ASSETS}/acme/labeling/scene.manifest",
        "kind": "multilabel",
        "allow_near_duplicates": True,
    }
    s3.put_object(Bucket=DATA, Key=key, Body=json.dumps(body).encode())
    handler(sqs_event_for(key), CONTEXT)
    status = components.models.read_status("acme", "scene")
    assert status is not None and status["state"] == "trained", status.get("error")
    model = components.models.load_active("acme", "scene")
    assert (
        model is not None
        and model.kind is ModelKind.MULTILABEL
        and model.tags == ("outdoor", "people", "product")
    )
