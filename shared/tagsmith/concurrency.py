"""Concurrent I/O for a batch: the requests of one asset wait on S3 or OpenSearch, not on the CPU,
so a batch's assets issue theirs side by side.

:func:`map_io` runs each call in a worker thread and in a *copy of the caller's context*, so what
a context variable says in the caller (which function's logger a library line goes to,
:mod:`tagsmith.logs`) holds in the workers too. A fresh pool per call: a call made from inside a
worker cannot starve waiting for a slot its own caller holds.

>>> map_io(lambda n: n * n, [1, 2, 3])
[1, 4, 9]
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Requests in flight per batch: a whole SQS batch (10 messages) in one round, and no more than
#: botocore's default pool of 10 connections per client (more threads would queue for one).
IO_WORKERS = 10


def map_io(fn: Callable[[T], R], items: Iterable[T], *, workers: int = IO_WORKERS) -> list[R]:
    """``[fn(x) for x in items]``, in order, with up to ``workers`` calls at a time. The first
    exception raised by a call is raised here (after every call has finished): a caller that
    wants each item's own outcome catches inside ``fn``."""
    todo = list(items)
    if len(todo) <= 1 or workers <= 1:
        return [fn(x) for x in todo]
    with ThreadPoolExecutor(max_workers=min(workers, len(todo))) as pool:
        futures = [pool.submit(contextvars.copy_context().run, fn, x) for x in todo]
        return [f.result() for f in futures]
