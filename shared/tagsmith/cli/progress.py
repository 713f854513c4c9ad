"""Progress bars for the commands that take more than a moment: ``train`` (embedding photos),
``upload`` (many files), ``reindex``, ``backfill start --wait`` and exports.

Bars go to stderr, and only in an interactive session (stdout and stderr both terminals): with
``--json``, a pipe or a redirected output nothing but the results is written, and results printed
while a bar runs appear above it. Each command prints a summary when its bar is done (bars are
transient).

Example::

    with progress_bar(enabled=not as_json) as bar:
        task = bar.add_task("uploading", total=len(paths))
        for path in paths:
            ...
            bar.advance(task)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tagsmith.cli.common import err, out

# Embedding batches reported one at a time: small enough that a bar moves every second or so on
# 2 cores (the default encoder embeds about 30 photos/s there), large enough to cost nothing.
EMBED_BATCH = 16


@contextmanager
def progress_bar(
    *, enabled: bool = True, console: Console | None = None, results: Console | None = None
) -> Iterator[Progress]:
    """A rich :class:`Progress` on stderr (``console``), disabled unless both it and stdout
    (``results``, where the command prints its results) are terminals."""
    console = console or err
    results = results or out
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not (enabled and console.is_terminal and results.is_terminal),
    )
    with bar:
        yield bar


def record_count(c: Any, tenant: str) -> int:
    """How many asset records ``tenant`` has: the total of a bar over its records (one listing,
    1,000 keys per request on S3, no record read)."""
    from tagsmith.keys import records_prefix

    return sum(1 for _ in c.store.list(c.settings.data_bucket, records_prefix(tenant)))


class ProgressEncoder:
    """An image encoder that reports every embedded batch to ``on_embedded(count)``; everything
    else (``encoder_id``, ``dim``, ...) is the wrapped encoder's. Lets ``train`` show a bar over
    the slow part, embedding, without the trainer knowing about terminals."""

    def __init__(self, inner: Any, on_embedded: Callable[[int], None]) -> None:
        self.inner = inner
        self._on_embedded = on_embedded

    def embed(self, images: Sequence[Any]) -> np.ndarray:
        if len(images) <= EMBED_BATCH:
            out = self.inner.embed(images)
            self._on_embedded(len(images))
            return np.asarray(out)
        parts = []
        for start in range(0, len(images), EMBED_BATCH):
            chunk = images[start : start + EMBED_BATCH]
            parts.append(np.asarray(self.inner.embed(chunk)))
            self._on_embedded(len(chunk))
        return np.concatenate(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ProgressOcr:
    """An OCR engine that reports every photo it reads to ``on_read()`` (a model trained with
    ``--text`` reads each new example photo, about a second each); the rest is the wrapped engine's."""

    def __init__(self, inner: Any, on_read: Callable[[], None]) -> None:
        self.inner = inner
        self._on_read = on_read

    def read(self, image: Any) -> Any:
        lines = self.inner.read(image)
        self._on_read()
        return lines

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
