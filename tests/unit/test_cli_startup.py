"""The CLI starts fast: importing it (what `tagsmith --help` and every command pay first) must not
pull in the encoder, the model fitting or the AWS SDK; only the commands that need them import
them (`open_session`). Measured: 3.3-6 s for `--help` with them, about 0.3 s without
(docs/benchmarks.md, "CLI start-up")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What must stay out of `import tagsmith.cli`: each costs from 0.2 s (boto3) to 2 s (onnx's
# ml_dtypes, scikit-learn) on 2 cores.
HEAVY = ("onnxruntime", "onnx", "sklearn", "scipy", "boto3", "botocore", "tagsmith.wiring")


def _modules_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_cli_import_leaves_heavy_modules_out() -> None:
    loaded = _modules_after("import tagsmith.cli")
    assert "tagsmith.cli" in loaded  # the probe ran what it says
    assert not [m for m in HEAVY if m in loaded]


def test_cli_help_renders_without_heavy_modules() -> None:
    # the whole help path, typer's rendering included, as `tagsmith --help` runs it
    code = (
        "from typer.testing import CliRunner\n"
        "from tagsmith.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0 and 'search' in result.output, result.output"
    )
    loaded = _modules_after(code)
    assert not [m for m in HEAVY if m in loaded]


def test_the_probe_sees_heavy_modules_when_they_are_imported() -> None:
    # the checks here can fail: training pulls in scikit-learn, and building a graph onnx
    code = (
        "import numpy as np\n"
        "import tagsmith.trainer\n"
        "from tagsmith.encoder.lite0 import _GraphBuilder\n"
        "_GraphBuilder({})._constant('x', np.zeros(1, np.float32))"
    )
    loaded = _modules_after(code)
    assert {"sklearn", "onnx"} <= loaded


# What the light commands must not load: the ingest path, the trainer and what they bring, and
# opensearch-py (0.3 s; `--target files` never reaches a cluster).
NOT_FOR_LIGHT_COMMANDS = (
    "onnxruntime",
    "onnx",
    "sklearn",
    "scipy",
    "opensearchpy",
    "tagsmith.trainer",
    "tagsmith.ingest",
    "tagsmith.tagging",
    "tagsmith.video.analysis",
)


@pytest.mark.parametrize(
    ("args", "exit_code", "ran"),
    [
        # no such asset: the session's wiring opened, the record store and the video job's state read
        (["record", "--tenant", "acme", "acme/none.jpg", "--target", "files"], 1, "tagsmith.video.jobstate"),
        (["review", "list", "--tenant", "acme", "--target", "files"], 0, "tagsmith.console"),
    ],
)
def test_light_commands_leave_the_ingest_path_and_the_trainer_out(
    tmp_path: Path, args: list[str], exit_code: int, ran: str
) -> None:
    code = (
        "from typer.testing import CliRunner\n"
        "from tagsmith.cli import app\n"
        f"result = CliRunner().invoke(app, {args!r})\n"
        f"assert result.exit_code == {exit_code}, result.output"
    )
    loaded = _modules_after(code, env={"TAGSMITH_HOME": str(tmp_path)})
    assert {"tagsmith.wiring", ran} <= loaded  # the probe ran the command's own code
    assert not [m for m in NOT_FOR_LIGHT_COMMANDS if m in loaded]


def test_ingest_import_and_a_cached_graph_leave_onnx_out(tmp_path: Path) -> None:
    # the ingest handler's cold start: the graph is built once into the cache; a later container
    # (a fresh process) finds it verified there and never needs onnx, only onnxruntime
    from tagsmith.encoder import ensure_lite0_onnx

    ensure_lite0_onnx(tmp_path)
    code = (
        "from pathlib import Path\n"
        "import functions.ingest.handler\n"
        "import tagsmith.ingest\n"
        "from tagsmith.encoder import ensure_lite0_onnx\n"
        f"ensure_lite0_onnx(Path({str(tmp_path)!r}))"
    )
    loaded = _modules_after(code)
    assert "tagsmith.ingest" in loaded and "tagsmith.encoder.lite0" in loaded
    assert "onnx" not in loaded
