"""Fixtures shared by every test layer."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from osmem_server import OsmemServer
from tagsmith.config import Settings
from tagsmith.search import InMemorySearchIndex
from tagsmith.storage import FileObjectStore, MemoryObjectStore, ObjectStore, S3ObjectStore
from tagsmith.wiring import Components, build

from tests.fakes import FakeEncoder

TESTS = Path(__file__).resolve().parent
GROCERY = TESTS.parents[1] / "shared" / "datasets" / "grocery"
ASSETS = "assets-bucket"
DATA = "data-bucket"


def load_event(name: str) -> dict[str, Any]:
    """A sample event from ``tests/events``."""
    return json.loads((TESTS / "events" / name).read_text())


@pytest.fixture(scope="session")
def encoder_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The EfficientNet-Lite0 graph, built once per session (about half a second) into a temporary
    folder, never into the repository or a user cache."""
    from tagsmith.encoder import ensure_lite0_onnx

    cache_dir = tmp_path_factory.mktemp("encoder-cache")
    ensure_lite0_onnx(cache_dir)
    return cache_dir


@pytest.fixture(scope="session")
def lite0_onnx_path(encoder_cache_dir: Path) -> Path:
    from tagsmith.encoder import ensure_lite0_onnx

    return ensure_lite0_onnx(encoder_cache_dir)


@pytest.fixture(scope="session")
def lite0_encoder(encoder_cache_dir: Path) -> Any:
    """The baseline EfficientNet-Lite0 encoder (224 px, 1280-d); two threads, as on CI machines."""
    from tagsmith.encoder import baseline_encoder

    return baseline_encoder(encoder_cache_dir, batch_size=16, threads=2)


@pytest.fixture(scope="session")
def lite0_weights() -> dict[str, Any]:
    from tagsmith.encoder import load_lite0_state_dict

    return load_lite0_state_dict()


@pytest.fixture
def settings() -> Settings:
    return Settings(data_bucket=DATA, assets_bucket=ASSETS)


@pytest.fixture
def components(settings: Settings) -> Components:
    """Real services over in-memory adapters and a fast fake encoder."""
    return build(
        settings,
        store=MemoryObjectStore(),
        index=InMemorySearchIndex(),
        encoder=FakeEncoder(),
    )


@pytest.fixture(scope="session")
def grocery_dir() -> Path:
    if not GROCERY.is_dir():
        pytest.skip(f"the grocery dataset is not at {GROCERY} (it lives in the team folder ../shared)")
    return GROCERY


#: Buckets the ``store`` fixture's S3 (moto) has; the other adapters make buckets on first write.
STORE_BUCKETS = ("assets", "contract-bucket")


@pytest.fixture(params=["memory", "files", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ObjectStore]:
    """Every ``ObjectStore`` adapter in turn: memory, folder, and S3 on in-process moto (buckets
    :data:`STORE_BUCKETS`). A test module with a ``store`` fixture of its own overrides this one."""
    if request.param == "memory":
        yield MemoryObjectStore()
    elif request.param == "files":
        yield FileObjectStore(root=tmp_path)
    else:
        import boto3
        from moto import mock_aws

        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1")
            for bucket in STORE_BUCKETS:
                client.create_bucket(Bucket=bucket)
            yield S3ObjectStore(client=client)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def local_stack(tmp_path: Path) -> Iterator[Any]:
    """The real local stack (moto S3/SQS server, osmem, the Lambda-style pollers of every function
    in ``resources.py``) on free ports with its home in ``tmp_path / "home"``, stopped afterwards."""
    from tagsmith.local.stack import LocalStack, StackConfig

    saved = dict(os.environ)  # start() exports the stack's endpoints for in-process handlers
    config = StackConfig(home=tmp_path / "home", moto_port=free_port(), opensearch_port=free_port())
    stack = LocalStack(config=config)
    try:
        stack.start()
        yield stack
    finally:
        # moto keeps every server's state in this process's memory: forget it, so the next stack
        # starts as empty as `make run` in a new process does
        with contextlib.suppress(OSError):
            reset = f"http://127.0.0.1:{config.moto_port}/moto-api/reset"
            urllib.request.urlopen(urllib.request.Request(reset, method="POST"), timeout=10).close()
        stack.stop()
        # osmem-server's close() leaves its stdout pipe open (see tests/functional/conftest.py)
        process = getattr(stack._osmem, "process", None)
        if process is not None and process.stdout is not None and not process.stdout.closed:
            process.stdout.close()
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def osmem_server(request: pytest.FixtureRequest) -> Iterator[OsmemServer]:
    """The plugin's session server, same ini options, but closing its stdout pipe on teardown.

    osmem-server 0.1.6's ``close()`` leaves the pipe open; the resulting ResourceWarning is an error
    under our ``filterwarnings = ["error"]`` and fails whichever test ran last.
    """
    cfg = request.config
    server = OsmemServer.start(
        seed=[str(p) for p in cfg.getini("osmem_seed")],
        freeze=cfg.getini("osmem_freeze"),
        japanese=cfg.getini("osmem_japanese"),
    )
    yield server
    server.close()
    if server.process.stdout is not None:
        server.process.stdout.close()
