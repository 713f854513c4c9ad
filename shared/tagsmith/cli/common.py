"""What every CLI command shares: where it works (``--target``), output consoles, error reporting.

Where it works (``--target``):

* ``auto`` (default): the running local stack if there is one, else the local data directory;
* ``files``: the local data directory (``var/s3``) with no server running;
* ``stack``: the running local stack (moto + osmem on 127.0.0.1);
* ``aws``: real AWS, configured by ``TAGSMITH_DATA_BUCKET``, ``TAGSMITH_ASSETS_BUCKET``,
  ``TAGSMITH_OPENSEARCH_URL`` and the usual AWS credentials.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from tagsmith.errors import TagsmithError

if TYPE_CHECKING:
    from tagsmith.local.stack import StackInfo
    from tagsmith.wiring import Components

out = Console()
err = Console(stderr=True)


class Target(StrEnum):
    AUTO = "auto"
    FILES = "files"
    STACK = "stack"
    AWS = "aws"


TargetOpt = Annotated[
    Target,
    typer.Option(
        "--target",
        help="where to work: auto = the running local stack, else the local data folder; files = the "
        "local data folder (var/, no server); stack = the running local stack (`make run`); aws = your "
        "AWS account (TAGSMITH_DATA_BUCKET, TAGSMITH_ASSETS_BUCKET, TAGSMITH_OPENSEARCH_URL)",
    ),
]
TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="tenant id (lower-case letters, digits, '-')")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output: one JSON object per line")]


@dataclass
class Session:
    components: Components
    where: str
    stack: StackInfo | None = None


def open_session(target: Target) -> Session:
    # The wiring pulls in the encoder (onnx, onnxruntime), scikit-learn and boto3: imported here,
    # by the commands that open a session, so `tagsmith --help` and the light commands do not pay
    # for them (seconds on 2 cores; tests/unit/test_cli_startup.py keeps it so).
    from tagsmith.config import Settings
    from tagsmith.local.stack import StackConfig, StackInfo
    from tagsmith.wiring import build

    home = StackConfig.from_env().home
    running = StackInfo.read(home) if target in (Target.AUTO, Target.STACK) else None
    if target is Target.STACK and running is None:
        raise TagsmithError(
            f"no local stack is running (looked in {home}/stack.json): start one with `make run`"
        )
    if running is not None:
        # moto accepts any credentials, but boto3 refuses to sign without some
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            os.environ.setdefault(name, running.environment()[name])
        return Session(build(running.settings()), f"local stack at {running.endpoint_url}", running)
    if target is Target.AWS:
        settings = Settings.from_env()
        return Session(build(settings), f"AWS (data bucket {settings.data_bucket})")
    from tagsmith.local.resources import STACK
    from tagsmith.search import InMemorySearchIndex
    from tagsmith.storage import FileObjectStore

    # the local stack's buckets, and the deployment's tuning (encoder recipe, retrain rule) as the
    # stack's functions would read it
    settings = Settings.local(
        data_bucket=STACK.bucket_name("data"),
        assets_bucket=STACK.bucket_name("assets"),
        encoder_cache_dir=home / "cache",
    )
    store = FileObjectStore(root=home / "s3")
    return Session(build(settings, store=store, index=InMemorySearchIndex()), f"local files in {home / 's3'}")


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def run_or_exit(fn: Any) -> Any:
    """Run ``fn``; a Tagsmith error becomes a one-line message and exit code 1."""
    try:
        return fn()
    except TagsmithError as e:
        fail(str(e))
