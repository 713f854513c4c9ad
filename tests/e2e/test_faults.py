"""``make faults`` at a small N, inside the suite: the local stack loses nothing, duplicates
nothing, explains every poison input and converges (index == records, review items == review tags,
dead-letter queues empty) through S3 errors, a search-server kill and a SIGKILL of the whole stack
mid-batch, with no manual reindex. The published run (N=1000) is in docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.faults import FaultPlan, run_faults

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_the_local_stack_converges_through_every_fault(tmp_path: Path) -> None:
    plan = FaultPlan(n=40, outage_seconds=5.0, sweep_seconds=5.0, timeout=420.0)
    said: list[str] = []
    result = run_faults(plan, home=tmp_path / "home", say=said.append)
    assert result.ok, result.line() + "\n" + "\n".join(said + result.problems)
    assert result.uploads == 40 and result.poison >= 1 and result.stack_kills == 1
    assert result.s3_errors_injected > 0 and result.search_outage_seconds == 5.0
    assert result.review_tags > 0  # ambiguous photos did go to review
