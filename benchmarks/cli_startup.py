"""How long `tagsmith` commands take from a cold process: median of several runs each.

    .venv/bin/python -m benchmarks.cli_startup            # 7 runs of each command below
    .venv/bin/python -m benchmarks.cli_startup --runs 11 --command "search --help"
    .venv/bin/python -m benchmarks.cli_startup --tag            # and `tagsmith tag one.jpg`, cold

The light commands run against the local data folder of a scratch ``TAGSMITH_HOME`` (``--target
files``: no stack, nothing stored), so what is measured is the CLI's own start, not a server.

``--tag`` first trains a small grocery model (10 products, 5 photos each) into that folder, then
times ``tagsmith tag --target files one.jpg`` end to end in fresh processes: the CLI's start, the
model read, the encoder's ONNX session made from the cached graph, decode, embed, scoring. The
very first run after a fresh install also builds the graph into the cache: that run is timed once
on its own (the cache emptied first).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TAGSMITH = Path(sys.executable).with_name("tagsmith")
COMMANDS = (
    "--help",
    "search --help",
    "record --tenant acme acme/none.jpg --target files",
    "review list --tenant acme --target files",
)


def time_command(args: list[str], runs: int, env: dict[str, str]) -> tuple[float, float, float, int]:
    """(median, min, max seconds, exit code of the last run)."""
    took = []
    code = 0
    for _ in range(runs):
        started = time.perf_counter()
        code = subprocess.run([str(TAGSMITH), *args], env=env, capture_output=True, check=False).returncode
        took.append(time.perf_counter() - started)
    return statistics.median(took), min(took), max(took), code


def train_small_model(env: dict[str, str]) -> Path:
    """A tenant ``bench`` with a grocery model in ``env``'s TAGSMITH_HOME; returns a photo to tag."""
    from benchmarks.run import GROCERY, load_split

    code = (
        "from tagsmith.cli.common import Target, open_session\n"
        "from tagsmith.trainer import Example\n"
        "from benchmarks.run import GROCERY, load_split\n"
        "split = load_split(5, 0)\n"
        "labels = sorted({label for _, label in split.support})[:10]\n"
        "examples = [Example(label, p, (GROCERY / p).read_bytes) for p, label in split.support if label in labels]\n"
        "open_session(Target.FILES).components.trainer.train(tenant='bench', model_id='grocery', examples=examples)\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=Path(__file__).resolve().parents[1])
    return GROCERY / load_split(5, 0).test[0][0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cli_startup", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--command", action="append", help="a command line after `tagsmith` (repeatable)")
    parser.add_argument("--tag", action="store_true", help="also `tagsmith tag one.jpg` on a trained model")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tagsmith-cli-") as home:
        env = {**os.environ, "TAGSMITH_HOME": home}
        print(f"load average {os.getloadavg()[0]:.2f} at the start, {args.runs} runs each")
        for command in args.command or COMMANDS:
            median, low, high, code = time_command(shlex.split(command), args.runs, env)
            print(f"tagsmith {command}: median {median:.2f} s (min {low:.2f}, max {high:.2f}), exit {code}")
        if args.tag:
            photo = train_small_model(env)
            tag = ["tag", "--tenant", "bench", "--target", "files", str(photo)]
            median, low, high, code = time_command(tag, args.runs, env)
            print(f"tagsmith tag one.jpg: median {median:.2f} s (min {low:.2f}, max {high:.2f}), exit {code}")
            shutil.rmtree(Path(home) / "cache")  # the encoder's graphs: a fresh install builds them
            first, _, _, code = time_command(tag, 1, env)
            print(f"tagsmith tag one.jpg, first run (graph built into the cache): {first:.2f} s, exit {code}")
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
