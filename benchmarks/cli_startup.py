"""How long `tagsmith` commands take from a cold process: median of several runs each.

    .venv/bin/python -m benchmarks.cli_startup            # 7 runs of each command below
    .venv/bin/python -m benchmarks.cli_startup --runs 11 --command "search --help"

The light commands run against the local data folder of a scratch ``TAGSMITH_HOME`` (``--target
files``: no stack, nothing stored), so what is measured is the CLI's own start, not a server.
"""

from __future__ import annotations

import argparse
import os
import shlex
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cli_startup", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--command", action="append", help="a command line after `tagsmith` (repeatable)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tagsmith-cli-") as home:
        env = {**os.environ, "TAGSMITH_HOME": home}
        print(f"load average {os.getloadavg()[0]:.2f} at the start, {args.runs} runs each")
        for command in args.command or COMMANDS:
            median, low, high, code = time_command(shlex.split(command), args.runs, env)
            print(f"tagsmith {command}: median {median:.2f} s (min {low:.2f}, max {high:.2f}), exit {code}")
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
