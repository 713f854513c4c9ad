"""`tagsmith import` of a folder of grocery photos through the local stack `make run` starts, against
decode + embed measured in the same run; then the same import again (the resume check).

    .venv/bin/python -m benchmarks.import_stack                 # 300 photos
    .venv/bin/python -m benchmarks.import_stack --photos 1000

The stack is ``tagsmith up --no-demo`` (what ``make run`` runs, without the demo) in a subprocess on
free ports, its home in a temporary folder. A tenant's model is trained through the CLI on the k=5
support photos of split seed 0; the library is a folder of links to other grocery photos, one
sub-folder per class. ``tagsmith import`` runs as a user runs it (a subprocess, ``--json``) and is
timed from its start to its return, when every photo has a record. Decode + embed alone runs in
this process on the same photos before and after the import (the mean of the two is the figure:
a shared machine's load moves it by 2x within minutes). The load average is read before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.faults import StackProcess, free_port
from benchmarks.run import CACHE, GROCERY, load_split, split_paths

TENANT = "bench"


def _cli(env: dict[str, str], *args: str, timeout: float = 3600) -> tuple[float, dict[str, Any], str]:
    """Run ``tagsmith ARGS`` as a user would: seconds taken, its last JSON line (if any), output."""
    cli = Path(sys.executable).parent / "tagsmith"
    started = time.perf_counter()
    done = subprocess.run([str(cli), *args], env=env, capture_output=True, text=True, timeout=timeout)
    took = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 and not lines:
        raise RuntimeError(
            f"tagsmith {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return took, json.loads(lines[-1]) if lines else {}, done.stdout + done.stderr


def _embed_rate(paths: list[Path], batch: int = 10) -> float:
    """Decode + embed alone, images per second, with the default encoder as the stack runs it."""
    from tagsmith.config import Settings
    from tagsmith.encoder import decode_image
    from tagsmith.wiring import build

    encoder = build(Settings(data_bucket="d", encoder_cache_dir=CACHE / "onnx")).encoder
    data = [p.read_bytes() for p in paths]
    encoder.embed([decode_image(data[0]).image])  # the session, loaded
    started = time.perf_counter()
    for i in range(0, len(data), batch):
        encoder.embed([decode_image(d).image for d in data[i : i + batch]])
    return len(data) / (time.perf_counter() - started)


def run(*, photos: int = 300) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tagsmith-import-bench-") as tmp:
        root = Path(tmp)
        home = root / "home"
        home.mkdir()
        env = {
            **os.environ,
            "TAGSMITH_HOME": str(home),
            "TAGSMITH_MOTO_PORT": str(free_port()),
            "TAGSMITH_OPENSEARCH_PORT": str(free_port()),
            "TAGSMITH_CONSOLE_PORT": str(free_port()),
        }
        split = load_split(5, 0)
        examples = root / "examples"
        for path, label in split.support:
            link = examples / label / Path(path).name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(GROCERY / path)
        support = {p for p, _ in split.support}
        pool = [p for p in split_paths((5,), (0,)) if p not in support]
        pool += [str(p.relative_to(GROCERY)) for p in sorted((GROCERY / "train").rglob("*.jpg"))]
        chosen = list(dict.fromkeys(p for p in pool if p not in support))[:photos]
        library = root / "library"
        for path in chosen:
            link = library / path  # train/... and val/... hold photos of the same name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(GROCERY / path)

        stack = StackProcess(home, env)
        stack.start()
        try:
            _cli(env, "train", "-t", TENANT, "-m", "grocery", "-e", str(examples))
            load_before = os.getloadavg()
            embed_before = _embed_rate([GROCERY / p for p in chosen])
            took, summary, _ = _cli(env, "import", "-t", TENANT, str(library), "--json")
            embed_after = _embed_rate([GROCERY / p for p in chosen])
            load_after = os.getloadavg()
            again, resumed, _ = _cli(env, "import", "-t", TENANT, str(library), "--json")
        finally:
            stack.stop()
    embed = (embed_before + embed_after) / 2
    return {
        "photos": len(chosen),
        "import_seconds": round(took, 1),
        "import_photos_per_second": round(len(chosen) / took, 2),
        "embed_only_photos_per_second": round(embed, 1),
        "embed_only_before_after": [round(embed_before, 1), round(embed_after, 1)],
        "ratio": round(len(chosen) / took / embed, 2),
        "summary": summary,
        "rerun_seconds": round(again, 1),
        "rerun_skipped": resumed.get("skipped"),
        "rerun_sent": resumed.get("sent"),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.import_stack", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--photos", type=int, default=300)
    args = parser.parse_args(argv)
    print(json.dumps(run(photos=args.photos), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
