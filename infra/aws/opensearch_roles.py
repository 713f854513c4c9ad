"""Map the functions' IAM roles to OpenSearch roles (fine-grained access control), once per domain.

The template lets the function roles *reach* the domain (IAM); what they may do inside it is
decided by OpenSearch's security plugin, which CloudFormation cannot configure. Run this as the
domain's master user (``OpenSearchMasterUserArn``) after the first deploy::

    python infra/aws/opensearch_roles.py --stack tagsmith            # reads the stack's outputs
    python infra/aws/opensearch_roles.py --stack tagsmith --dry-run  # print the requests only

Two roles, both limited to Tagsmith's indices (``tagsmith-assets-*``, tenants behind aliases):

* ``tagsmith_writer`` (ingest, backfill, video, review, sweep): create indices and aliases, write and
  read documents;
* ``tagsmith_reader`` (search): read documents only.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

INDEX_PATTERN = "tagsmith-assets-*"
ROLES: dict[str, dict[str, Any]] = {
    "tagsmith_writer": {
        "cluster_permissions": ["cluster_composite_ops", "cluster_monitor"],
        "index_permissions": [
            {
                "index_patterns": [INDEX_PATTERN],
                "allowed_actions": [
                    "crud",
                    "create_index",
                    "manage_aliases",
                    "indices:admin/mapping/put",
                    "indices:admin/delete",
                    "indices:monitor/stats",
                ],
            }
        ],
    },
    "tagsmith_reader": {
        "cluster_permissions": ["cluster_composite_ops_ro"],
        "index_permissions": [{"index_patterns": [INDEX_PATTERN], "allowed_actions": ["read"]}],
    },
}
# which function role (stack output ``<Name>RoleArn``) gets which OpenSearch role
ROLE_OF_FUNCTION = {
    "IngestRoleArn": "tagsmith_writer",
    "BackfillRoleArn": "tagsmith_writer",
    "VideoRoleArn": "tagsmith_writer",  # the last step of a long video job indexes it
    "ReviewRoleArn": "tagsmith_writer",
    "SweepRoleArn": "tagsmith_writer",  # repairs the index: catch-up writes and rebuilds
    "SearchRoleArn": "tagsmith_reader",
}


def requests_for(outputs: dict[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
    """The security-plugin REST calls (method, path, body) for a stack's outputs.

    >>> [p for _, p, _ in requests_for({"IngestRoleArn": "arn:aws:iam::1:role/i", "SearchRoleArn": "arn:aws:iam::1:role/s"})]
    ['/_plugins/_security/api/roles/tagsmith_writer', '/_plugins/_security/api/roles/tagsmith_reader', '/_plugins/_security/api/rolesmapping/tagsmith_writer', '/_plugins/_security/api/rolesmapping/tagsmith_reader']
    """
    calls = [("PUT", f"/_plugins/_security/api/roles/{name}", body) for name, body in ROLES.items()]
    for role in ROLES:
        arns = sorted(outputs[o] for o, r in ROLE_OF_FUNCTION.items() if r == role and o in outputs)
        calls.append(("PUT", f"/_plugins/_security/api/rolesmapping/{role}", {"backend_roles": arns}))
    return calls


def stack_outputs(stack: str) -> dict[str, str]:
    import boto3

    described = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Map Tagsmith's function roles to OpenSearch roles.")
    parser.add_argument("--stack", required=True, help="the CloudFormation stack name")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    outputs = stack_outputs(args.stack)
    calls = requests_for(outputs)
    if args.dry_run:
        for method, path, body in calls:
            print(method, path, json.dumps(body))
        return 0
    import boto3
    from opensearchpy import OpenSearch, Urllib3AWSV4SignerAuth

    session = boto3.Session()
    auth = Urllib3AWSV4SignerAuth(session.get_credentials(), session.region_name, "es")
    client = OpenSearch(hosts=[outputs["OpenSearchEndpoint"]], http_auth=auth, timeout=30)
    for method, path, body in calls:
        client.transport.perform_request(method, path, body=body)
        print(f"{method} {path}: ok", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
