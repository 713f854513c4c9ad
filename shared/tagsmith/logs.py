"""Function logging: every line names the function that is running, whoever wrote it.

Each deployable handler logs through a Powertools ``Logger`` (structured JSON, ``service`` =
``tagsmith-<function>``); the library logs through the standard ``tagsmith.*`` loggers. Copying a
handler's configuration onto the library loggers (Powertools' ``copy_config_to_registered_loggers``)
is per *process*, so in one process that holds several handlers (the local stack) the last handler
imported won, and every library line said ``service=tagsmith-backfill``, whichever function wrote
it. Instead:

* :func:`function_logger` makes the function's Powertools logger and gives the ``tagsmith`` library
  logger one handler, :class:`_ToRunningFunction`, installed once per process;
* :func:`logged` decorates the Lambda handler: it injects the Lambda context (as
  ``inject_lambda_context`` does, with the request id kept per thread: the local runtime runs
  several invocations of one function at once) and marks the function as the one running *in this
  thread* for the length of the invocation (a context variable), so each library record is
  formatted by that function's handlers. Outside any invocation a record goes to the process's default logger (the
  local stack's), else to the only function logger of the process (Lambda: always exactly one),
  else to the root logger's handlers.

>>> from tagsmith.local.runtime import LambdaContext
>>> logger = function_logger("tagsmith-doc")
>>> @logged(logger)
... def handler(event, context):
...     return running_service()
>>> handler({}, LambdaContext("tagsmith-doc")), running_service()
('tagsmith-doc', None)
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
from collections.abc import Callable
from typing import IO, Any, TypeVar

from aws_lambda_powertools import Logger

F = TypeVar("F", bound=Callable[..., Any])

_running: contextvars.ContextVar[Logger | None] = contextvars.ContextVar(
    "tagsmith_function_logger", default=None
)
_functions: dict[str, Logger] = {}
_default: dict[str, Logger] = {}  # "process": where lines written outside any invocation go
_stream: dict[str, IO[str]] = {}  # "all": where every function logger writes (default: stdout)
_lock = threading.Lock()
LIBRARY = "tagsmith"


class _ToRunningFunction(logging.Handler):
    """Hands each library record to the handlers of the function running in this thread."""

    def emit(self, record: logging.LogRecord) -> None:
        target = _running.get() or _default.get("process")
        if target is None and len(_functions) == 1:
            target = next(iter(_functions.values()))
        if target is None:
            library = logging.getLogger(LIBRARY).handlers  # already given the record (pytest adds its own)
            for h in logging.getLogger().handlers:
                if h not in library and record.levelno >= h.level:
                    h.handle(record)
            return
        if record.levelno < target.log_level:
            return
        for h in target.handlers:
            if record.levelno >= h.level:
                h.handle(record)


_forwarder = _ToRunningFunction()


def function_logger(service: str, *, process_default: bool = False) -> Logger:
    """The Powertools logger of one function (``service`` = ``tagsmith-<name>``); the library's
    lines written while that function runs go through it (see the module docstring).
    ``process_default``: also take the lines written outside any invocation (the local stack's own
    ``tagsmith-stack`` logger: restart reconcile, sweeps, the search server's watchdog)."""
    logger = Logger(service=service)
    logger.append_keys(name="%(name)s")  # which module wrote the line
    if "all" in _stream:
        _redirect(logger, _stream["all"])
    with _lock:
        _functions[service] = logger
        if process_default:
            _default["process"] = logger
        library = logging.getLogger(LIBRARY)
        if _forwarder not in library.handlers:
            library.addHandler(_forwarder)
        library.propagate = False  # the forwarder decides where a line goes: never twice
        levels = [f.log_level for f in _functions.values()]
        library.setLevel(min(levels))
    return logger


def send_function_logs_to(stream: IO[str]) -> None:
    """Every function logger, made now or later, writes to ``stream`` instead of stdout (the local
    stack keeps its terminal for people and sends the handlers' JSON lines to a file)."""
    with _lock:
        _stream["all"] = stream
        loggers = list(_functions.values())
    for logger in loggers:
        _redirect(logger, stream)


def _redirect(logger: Logger, stream: IO[str]) -> None:
    for h in logger.handlers:
        if isinstance(h, logging.StreamHandler) and h.stream is not stream:
            h.setStream(stream)


def logged(logger: Logger) -> Callable[[F], F]:
    """Decorate a Lambda handler: Lambda context keys on every line, and library lines formatted
    with this function's ``service`` for the length of each invocation."""

    def decorate(handler: F) -> F:
        injected = logger.inject_lambda_context(handler)

        @functools.wraps(handler)
        def run(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            token = _running.set(logger)
            # inject_lambda_context puts the request id among the logger's shared keys, which the
            # local runtime's concurrent invocations of one function overwrite; this thread's own
            # (Powertools' context-variable keys, which win) keeps each line on its invocation
            request_id = getattr(context, "aws_request_id", "")
            if request_id:
                logger.thread_safe_append_keys(function_request_id=request_id)
            try:
                return injected(event, context, *args, **kwargs)
            finally:
                if request_id:
                    logger.thread_safe_remove_keys(["function_request_id"])
                _running.reset(token)

        return run  # type: ignore[return-value]

    return decorate


def running_service() -> str | None:
    """The ``service`` of the function running in this thread (None outside an invocation)."""
    logger = _running.get()
    return logger.service if logger is not None else None


def emit_metrics(
    logger: Logger, message: str, values: dict[str, float], *, namespace: str = "Tagsmith"
) -> None:
    """One INFO line that is also CloudWatch metrics: the line carries the embedded metric format's
    ``_aws`` block (counts per function ``service``), so Lambda's log stream is all it needs and the
    local stack shows the same line in its logs."""
    import time

    block = {
        "Timestamp": int(time.time() * 1000),
        "CloudWatchMetrics": [
            {
                "Namespace": namespace,
                "Dimensions": [["service"]],
                "Metrics": [{"Name": name, "Unit": "Count"} for name in values],
            }
        ],
    }
    logger.info(message, extra={"_aws": block, **values})
