"""The CLI starts fast: importing it (what `tagsmith --help` and every command pay first) must not
pull in the encoder, the model fitting or the AWS SDK; only the commands that need them import
them (`open_session`). Measured: 3.3-6 s for `--help` with them, about 0.3 s without
(docs/benchmarks.md, "CLI start-up")."""

from __future__ import annotations

import json
import subprocess
import sys

# What must stay out of `import tagsmith.cli`: each costs from 0.2 s (boto3) to 2 s (onnx's
# ml_dtypes, scikit-learn) on 2 cores.
HEAVY = ("onnxruntime", "onnx", "sklearn", "scipy", "boto3", "botocore", "tagsmith.wiring")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
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
    # the checks above can fail: the ingest path and the model fitting do pull them in (the
    # fitting through tagmodels' lazily loaded names)
    loaded = _modules_after("import tagsmith.ingest\nfrom tagsmith.tagmodels import fit_linear_head")
    assert {"sklearn", "onnx"} <= loaded
