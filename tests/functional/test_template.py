"""The SAM template and the local stack come from one definition (``resources.py``): no drift.

Three independent checks:
1. the committed ``infra/aws/template.yaml`` is exactly what ``infra/aws/generate.py`` renders now;
2. the committed template, parsed as CloudFormation YAML (short tags included), carries every
   queue, notification and function setting of ``STACK`` (and nothing ``STACK`` does not know);
3. the local stack, provisioned on moto, ends up with the same settings the template declares.
Plus the security properties the template promises (least privilege, encryption, TLS).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws
from tagsmith.local.resources import STACK, FunctionDef, StackDef
from tagsmith.local.stack import LocalStack, StackConfig

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra" / "aws" / "template.yaml"


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "tagsmith_infra_generate", REPO / "infra" / "aws" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


generate = _load_generator()


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags, each read back as its long form."""


def _intrinsic(tag: str, fn: str) -> None:
    def construct(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if fn == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {fn: value}

    CfnLoader.add_constructor(tag, construct)


for _tag, _fn in (
    ("!Ref", "Ref"),
    ("!GetAtt", "Fn::GetAtt"),
    ("!Sub", "Fn::Sub"),
    ("!If", "Fn::If"),
    ("!Equals", "Fn::Equals"),
    ("!Not", "Fn::Not"),
    ("!Join", "Fn::Join"),
):
    _intrinsic(_tag, _fn)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def sub(physical: str) -> dict[str, str]:
    """The template's name for a local physical name: the prefix becomes ``${NamePrefix}``."""
    return {"Fn::Sub": "${NamePrefix}" + physical[len(STACK.prefix) :]}


# --- 1. rendered == committed -----------------------------------------------------------------------
def test_template_committed_is_what_resources_py_renders():
    assert TEMPLATE.read_text() == generate.render(), "infra/aws/template.yaml is stale: run `make template`"


def test_template_render_changes_when_the_definition_changes():
    # GIVEN a definition whose ingest queue differs WHEN rendered THEN the template differs
    changed = StackDef(
        queues=tuple(
            q if q.name != "ingest" else type(q)(q.name, q.visibility_timeout + 1, q.max_receive_count)
            for q in STACK.queues
        )
    )
    assert generate.render(changed) != generate.render()


def test_template_refuses_a_function_without_an_iam_decision():
    extra = StackDef(
        functions=(*STACK.functions, FunctionDef("mystery", "functions/mystery/handler.handler", None))
    )
    with pytest.raises(KeyError, match="no ACCESS entry"):
        generate.build_template(extra)


# --- 2. the committed template says what STACK says -----------------------------------------------------
def test_template_queues_match_resources_py(resources):
    queues = of_type(resources, "AWS::SQS::Queue")
    expected = {generate.queue_id(q.name) for q in STACK.queues} | {
        generate.dlq_id(q.name) for q in STACK.queues
    }
    assert set(queues) == expected
    for q in STACK.queues:
        main = queues[generate.queue_id(q.name)]["Properties"]
        dlq = queues[generate.dlq_id(q.name)]["Properties"]
        assert main["QueueName"] == sub(STACK.queue_name(q.name))
        assert dlq["QueueName"] == sub(STACK.queue_name(q.dlq_name))
        assert main["VisibilityTimeout"] == q.visibility_timeout
        assert main["RedrivePolicy"]["maxReceiveCount"] == q.max_receive_count
        assert main["RedrivePolicy"]["deadLetterTargetArn"] == {
            "Fn::GetAtt": [generate.dlq_id(q.name), "Arn"]
        }
        assert dlq["MessageRetentionPeriod"] == q.dlq_retention
        assert main["SqsManagedSseEnabled"] is True


def test_template_notifications_match_resources_py(resources):
    found = []
    for b in STACK.buckets:
        props = resources[generate.bucket_id(b)]["Properties"]
        for conf in props.get("NotificationConfiguration", {}).get("QueueConfigurations", []):
            rules = {r["Name"]: r["Value"] for r in conf.get("Filter", {}).get("S3Key", {}).get("Rules", [])}
            queue = conf["Queue"]["Fn::GetAtt"][0]
            found.append((b, queue, conf["Event"], rules.get("prefix", ""), rules.get("suffix", "")))
    expected = [
        (n.bucket, generate.queue_id(n.queue), n.events[0], n.prefix, n.suffix) for n in STACK.notifications
    ]
    assert sorted(found) == sorted(expected)
    assert ("data", "TrainingQueue", "s3:ObjectCreated:*", "tenants/", ".train.json") in found


def test_template_functions_match_resources_py(resources):
    functions = of_type(resources, "AWS::Serverless::Function")
    assert set(functions) == {generate.function_id(f.name) for f in STACK.functions}
    for f in STACK.functions:
        props = functions[generate.function_id(f.name)]["Properties"]
        assert props["PackageType"] == "Image"
        assert props["ImageConfig"]["Command"] == [f.handler]
        assert (props["MemorySize"], props["Timeout"]) == (f.memory_mb, f.timeout)
        assert (REPO / f.handler.rsplit(".", 1)[0]).with_suffix(".py").is_file()
        events = props.get("Events", {})
        sqs = [e["Properties"] for e in events.values() if e["Type"] == "SQS"]
        if f.queue is None:
            assert sqs == []
        else:
            assert sqs == [
                {
                    "Queue": {"Fn::GetAtt": [generate.queue_id(f.queue), "Arn"]},
                    "BatchSize": f.batch_size,
                    "FunctionResponseTypes": ["ReportBatchItemFailures"],
                    "ScalingConfig": {"MaximumConcurrency": f.max_concurrency},
                }
            ]
            # Lambda refuses an SQS source whose visibility timeout is below the function timeout
            # (its guidance is 6x; docs/deploy.md notes where resources.py is below that)
            assert STACK.queue(f.queue).visibility_timeout >= f.timeout
        routes = sorted(
            f"{e['Properties']['Method']} {e['Properties']['Path']}"
            for e in events.values()
            if e["Type"] == "HttpApi"
        )
        assert routes == sorted(f.routes)


def test_template_functions_read_the_settings_handlers_read(template):
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    from tagsmith.config import ENV_NAMES

    # every queue a function sends to, under the name Settings reads; no variable nothing reads
    for q in STACK.queues:
        field = f"{q.name.replace('-', '_')}_queue_url"
        if q.name != "ingest":
            assert env[ENV_NAMES[field]] == {"Ref": generate.queue_id(q.name)}
    assert {k for k in env if k.startswith("TAGSMITH_")} <= set(ENV_NAMES.values())
    assert env["TAGSMITH_ENCODER_CACHE"] == generate.ENCODER_CACHE
    assert env["TAGSMITH_OPENSEARCH_AUTH"] == "sigv4"
    from tagsmith.config import Settings

    names = {k: "x" for k in env} | {
        "TAGSMITH_DATA_BUCKET": "d",
        "TAGSMITH_ENCODER_CACHE": generate.ENCODER_CACHE,
        "TAGSMITH_BACKFILL_RATE": str(template["Parameters"]["BackfillRate"]["Default"]),
    }
    settings = Settings.from_env(names)
    assert settings.backfill_queue_url and settings.webhooks_queue_url and settings.training_queue_url
    assert settings.event_bus and settings.webhooks_dlq_url
    assert str(settings.encoder_cache_dir) == generate.ENCODER_CACHE
    assert env["TAGSMITH_BACKFILL_RATE"] == {"Ref": "BackfillRate"}
    assert settings.backfill_rate == template["Parameters"]["BackfillRate"]["Default"]
    dockerfile = (REPO / "infra" / "aws" / "Dockerfile").read_text()
    assert f"ENV TAGSMITH_ENCODER_CACHE={generate.ENCODER_CACHE}" in dockerfile


# --- 3. the local stack provisions the same thing -----------------------------------------------------------
def test_local_stack_provisions_what_the_template_declares(resources, tmp_path):
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        stack = LocalStack(config=StackConfig(home=tmp_path))
        urls, arns = stack._provision_queues(sqs)
        buckets = {b: STACK.bucket_name(b) for b in STACK.buckets}
        for name in buckets.values():
            s3.create_bucket(Bucket=name)
        stack._configure_notifications(s3, buckets, arns)

        for q in STACK.queues:
            attrs = sqs.get_queue_attributes(QueueUrl=urls[q.name], AttributeNames=["All"])["Attributes"]
            props = resources[generate.queue_id(q.name)]["Properties"]
            assert int(attrs["VisibilityTimeout"]) == props["VisibilityTimeout"]
            redrive = json.loads(attrs["RedrivePolicy"])
            assert int(redrive["maxReceiveCount"]) == props["RedrivePolicy"]["maxReceiveCount"]
            assert redrive["deadLetterTargetArn"].endswith(":" + STACK.queue_name(q.dlq_name))

        for b, name in buckets.items():
            local = s3.get_bucket_notification_configuration(Bucket=name).get("QueueConfigurations", [])
            got = sorted(
                (
                    c["QueueArn"].rsplit(":", 1)[1],
                    c["Events"][0],
                    tuple(
                        sorted(
                            (r["Name"].lower(), r["Value"])
                            for r in c.get("Filter", {}).get("Key", {}).get("FilterRules", [])
                        )
                    ),
                )
                for c in local
            )
            declared = sorted(
                (
                    STACK.queue_name(c["Queue"]["Fn::GetAtt"][0].removesuffix("Queue").lower()),
                    c["Event"],
                    tuple(
                        sorted(
                            (r["Name"], r["Value"])
                            for r in c.get("Filter", {}).get("S3Key", {}).get("Rules", [])
                        )
                    ),
                )
                for c in resources[generate.bucket_id(b)]["Properties"]
                .get("NotificationConfiguration", {})
                .get("QueueConfigurations", [])
            )
            assert got == declared


# --- security properties ---------------------------------------------------------------------------------------
def _allow_statements(resources: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for rid, r in of_type(resources, "AWS::IAM::Role").items():
        for policy in r["Properties"]["Policies"]:
            out += [(rid, s) for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    return out


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def test_template_roles_name_every_action_no_wildcards(resources):
    statements = _allow_statements(resources)
    assert statements
    for rid, s in statements:
        for action in _as_list(s["Action"]):
            assert "*" not in action, f"{rid} allows the wildcard action {action}"


def test_template_roles_scope_data_access_to_prefixes(resources):
    for rid, s in _allow_statements(resources):
        if any(a in ("s3:GetObject", "s3:PutObject") for a in _as_list(s["Action"])):
            for res in _as_list(s["Resource"]):
                arn = res["Fn::Sub"]
                if "-data-" in arn:
                    assert "/tenants/" in arn, f"{rid} reaches the data bucket outside tenants/: {arn}"


def test_template_search_role_cannot_write(resources):
    actions = {
        a for rid, s in _allow_statements(resources) if rid == "SearchRole" for a in _as_list(s["Action"])
    }
    assert "s3:PutObject" not in actions
    assert "es:ESHttpPut" not in actions
    assert "es:ESHttpDelete" not in actions
    assert "es:ESHttpGet" in actions


def test_template_opensearch_access_is_scoped_to_the_domain(resources):
    for rid, s in _allow_statements(resources):
        if any(a.startswith("es:") for a in _as_list(s["Action"])):
            assert s["Resource"] == {"Fn::Sub": generate.DOMAIN_ARN.text + "/*"}, rid


def test_template_buckets_are_private_encrypted_versioned_and_tls_only(resources):
    for b in STACK.buckets:
        props = resources[generate.bucket_id(b)]["Properties"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert all(props["PublicAccessBlockConfiguration"].values())
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        policy = resources[f"{generate.bucket_id(b)}Policy"]["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy
        )


def test_template_opensearch_domain_is_locked_down(resources):
    props = resources["SearchDomain"]["Properties"]
    assert props["EncryptionAtRestOptions"] == {"Enabled": True}
    assert props["NodeToNodeEncryptionOptions"] == {"Enabled": True}
    assert props["DomainEndpointOptions"]["EnforceHTTPS"] is True
    assert props["AdvancedSecurityOptions"]["Enabled"] is True
    assert props["AdvancedSecurityOptions"]["InternalUserDatabaseEnabled"] is False


def test_template_alarms_watch_every_dead_letter_queue_and_function(resources):
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    for q in STACK.queues:
        a = alarms[f"{generate.dlq_id(q.name)}Alarm"]["Properties"]
        assert (a["MetricName"], a["Threshold"], a["ComparisonOperator"]) == (
            "ApproximateNumberOfMessagesVisible",
            0,
            "GreaterThanThreshold",
        )
    for f in STACK.functions:
        a = alarms[f"{generate.function_id(f.name)}ErrorRateAlarm"]["Properties"]
        assert a["Threshold"] == {"Ref": "ErrorRatePercent"}


def test_template_outputs_what_an_operator_needs(template):
    outputs = template["Outputs"]
    for key in (
        "AssetsBucketName",
        "DataBucketName",
        "HttpApiUrl",
        "OpenSearchEndpoint",
        "IngestQueueUrl",
        "BackfillQueueUrl",
    ):
        assert key in outputs
