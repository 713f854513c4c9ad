"""What the deployed functions rely on beyond the template: a pre-built encoder and signed requests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from tagsmith.config import ConfigurationError
from tagsmith.wiring import opensearch_index

REPO = Path(__file__).resolve().parents[2]


def test_image_build_step_leaves_an_encoder_that_a_cold_start_only_verifies(tmp_path, monkeypatch):
    # GIVEN the Dockerfile's build step, run into a folder
    cache = tmp_path / "encoder"
    env = {**os.environ, "TAGSMITH_ENCODER_CACHE": str(cache)}
    done = subprocess.run(
        [sys.executable, str(REPO / "infra/aws/build_encoder.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    # WHEN a cold start loads the encoder from it, with building made impossible
    import tagsmith.encoder.lite0 as lite0
    from tagsmith.encoder import default_encoder

    def no_build(*a: object, **k: object) -> None:
        raise AssertionError("a cold start rebuilt the encoder")

    monkeypatch.setattr(lite0, "build_lite0_model", no_build)
    monkeypatch.setattr(lite0, "build_efficientnet_lite_model", no_build)
    encoder = default_encoder(cache, threads=1)
    # THEN it loads, and nothing in the folder was written
    assert encoder.dim > 0
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before


def test_image_build_step_says_what_is_missing():
    env = {k: v for k, v in os.environ.items() if k != "TAGSMITH_ENCODER_CACHE"}
    done = subprocess.run(
        [sys.executable, str(REPO / "infra/aws/build_encoder.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "TAGSMITH_ENCODER_CACHE" in done.stderr


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def _reply(self) -> None:
        _Recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
        body = b'{"took":1,"timed_out":false,"hits":{"total":{"value":0,"relation":"eq"},"hits":[]}}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_PUT = _reply

    def log_message(self, *args: object) -> None:
        pass


def test_opensearch_requests_are_sigv4_signed_when_asked(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        index = opensearch_index(f"http://127.0.0.1:{server.server_port}", auth="sigv4", region="eu-west-1")
        client = index._client  # the adapter's client, as wiring configured it
        client.info()
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    auth = _Recorder.seen[-1]["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/es/aws4_request" in auth


def test_opensearch_auth_setting_is_checked():
    with pytest.raises(ConfigurationError, match="sigv4"):
        opensearch_index("http://127.0.0.1:1", auth="basic")


def test_opensearch_roles_map_every_role_that_reaches_the_domain():
    import importlib.util

    import yaml

    spec = importlib.util.spec_from_file_location("tagsmith_os_roles", REPO / "infra/aws/opensearch_roles.py")
    assert spec is not None and spec.loader is not None
    roles = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = roles
    spec.loader.exec_module(roles)
    text = (REPO / "infra/aws/template.yaml").read_text()
    # every function role the domain lets in (an ESHttp action in its policy) gets an OpenSearch role
    loader = type("L", (yaml.SafeLoader,), {})
    loader.add_multi_constructor("!", lambda ld, suffix, node: None)
    template = yaml.load(text, Loader=loader)
    reaching = {
        f"{rid}Arn"
        for rid, r in template["Resources"].items()
        if r["Type"] == "AWS::IAM::Role"
        and any(
            str(a).startswith("es:")
            for p in r["Properties"]["Policies"]
            for s in p["PolicyDocument"]["Statement"]
            for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        )
    }
    assert reaching == set(roles.ROLE_OF_FUNCTION)
    calls = roles.requests_for({k: f"arn:aws:iam::123456789012:role/{k}" for k in reaching})
    mapped = {a for _, path, body in calls if "rolesmapping" in path for a in body["backend_roles"]}
    assert len(mapped) == len(reaching)
    reader = roles.ROLES["tagsmith_reader"]["index_permissions"][0]["allowed_actions"]
    assert reader == ["read"]
