"""Durable local state: moto's S3 objects and SQS messages written to disk before a request is
answered, so nothing the local stack acknowledged is lost when its process is killed.

moto keeps S3 and SQS in memory. Copying them to disk every few seconds (what the stack used to do)
lost every upload acknowledged since the last copy when the process was killed (149 uploads, some
acknowledged 7.6 s before a ``kill -9``), lost records' review items mid-copy, and never kept queued
messages or dead-letter queues at all. Here the local stack's moto (in the same process) is hooked
at its backends, *inside* the request that changes it:

* **S3**: every object written or deleted in a tracked bucket (put, copy, multipart completion,
  single and batch delete) is mirrored to ``<home>/s3/<bucket>/<key>`` (write, then rename: a file
  is whole or absent) under one lock, so the files change in the same order as moto's memory.
  A key the folder cannot hold (an empty, ``.`` or ``..`` segment, a trailing ``/``) is refused
  with a 400 before moto stores it: the client knows it was not kept. A conditional write
  (``If-Match``, ``If-None-Match``) is checked and stored under the same lock: moto alone checks
  and stores in two steps, so two compare-and-swaps of one key at once could both succeed.
* **SQS**: every message added to a queue (send, batch send, a move to a dead-letter queue) and
  every deletion or purge is a row of ``<home>/sqs.sqlite`` (WAL journal), committed before the
  request is answered. A message received but not yet deleted is still there after a restart,
  and is delivered again (at least once, as SQS promises).

The guarantee: **once moto has answered a write, it survives ``kill -9`` of the stack**. A
committed write is in the operating system's cache when the process dies, which is all a killed
process needs; a power cut or kernel crash can still lose the last writes (``fsync`` on every
request would cover that, at several milliseconds each: set ``fsync=True``).

At start, :meth:`DurableState.restore` loads the files into moto's S3 backend (no events: they were
sent when the objects were written) and the journal's messages into their queues, with their ids
(receive counts start again at zero). Then :meth:`attach` hooks the backends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tagsmith.errors import InvalidKeyError
from tagsmith.storage import FileObjectStore

log = logging.getLogger(__name__)

_active: DurableState | None = None  # the state the hooks write to (one local stack per process)
_installed = False
_install_lock = threading.Lock()


class DurableState:
    """The on-disk side of one local stack's moto (see the module docstring)."""

    def __init__(self, *, home: Path, buckets: list[str], queues: list[str], fsync: bool = False) -> None:
        self.home = Path(home)
        self.buckets = set(buckets)
        self.queues = set(queues)
        self.disk = FileObjectStore(root=self.home / "s3")
        self.fsync = fsync
        self.s3_lock = threading.RLock()  # one S3 change at a time: files change in moto's order
        self._db_lock = threading.Lock()
        self.home.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.home / "sqs.sqlite", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, queue TEXT NOT NULL, seq INTEGER NOT NULL,"
            " body TEXT NOT NULL, attributes TEXT NOT NULL, group_id TEXT)"
        )
        self._seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM messages").fetchone()[0]
        # (bucket, key) of every object a restored storage event names: its event is queued already
        self.pending_objects: set[tuple[str, str]] = set()
        # (bucket, key) of every object restored from disk: objects written after the start have
        # events of their own
        self.restored_objects: set[tuple[str, str]] = set()

    # --- restore ----------------------------------------------------------------------------------
    def restore_objects(self, backend: Any) -> int:
        """Load every object on disk into moto's S3 ``backend`` (no notifications); returns how many."""
        n = 0
        for bucket in sorted(self.buckets):
            for info in self.disk.list(bucket):
                body = self.disk.get(bucket, info.key).body
                backend.put_object(bucket, info.key, body, disable_notification=True)
                self.restored_objects.add((bucket, info.key))
                n += 1
        return n

    def restore_messages(self, backend: Any) -> dict[str, int]:
        """Put every journaled message back into its queue of moto's SQS ``backend`` (same id);
        returns queue name -> messages restored. Messages of queues that no longer exist stay in
        the journal and are logged."""
        from moto.sqs.models import Message

        restored: dict[str, int] = {}
        with self._db_lock:
            rows = self._db.execute(
                "SELECT id, queue, body, attributes, group_id FROM messages ORDER BY seq"
            ).fetchall()
        for message_id, queue_name, body, attributes, group_id in rows:
            try:
                queue = backend.get_queue(queue_name)
            except Exception:
                log.warning(
                    "journaled message %s is for queue %s, which does not exist: kept", message_id, queue_name
                )
                continue
            message = Message(message_id, body)
            message.message_attributes = json.loads(attributes)
            if group_id:
                message.group_id = group_id
            message.mark_sent()
            queue.add_message(message)
            restored[queue_name] = restored.get(queue_name, 0) + 1
            self.pending_objects |= _objects_named(body)
        return restored

    # --- hooks ------------------------------------------------------------------------------------
    def attach(self) -> None:
        """From now on, every S3 and SQS change of this process's moto goes through this state."""
        global _active
        _install_hooks()
        _active = self

    def detach(self) -> None:
        global _active
        if _active is self:
            _active = None

    def close(self) -> None:
        self.detach()
        with self._db_lock:
            self._db.close()

    def tracks(self, bucket: str) -> bool:
        return bucket in self.buckets

    def tracks_queue(self, queue: str) -> bool:
        return queue in self.queues

    def check_key(self, key: str) -> None:
        """Refuse, before moto stores it, a key the folder cannot hold (:class:`InvalidKeyError`)."""
        self.disk.path_of("check", key)

    def object_written(self, bucket: str, key: str, body: bytes) -> None:
        self.disk.put(bucket, key, body)
        if self.fsync:
            _fsync_file(self.disk.path_of(bucket, key))

    def object_deleted(self, bucket: str, key: str) -> None:
        with contextlib.suppress(InvalidKeyError):  # never stored: nothing to delete
            self.disk.delete(bucket, key)

    def message_added(self, queue: str, message: Any) -> None:
        with self._db_lock:
            self._seq += 1
            self._db.execute(
                "INSERT OR REPLACE INTO messages (id, queue, seq, body, attributes, group_id) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    message.id,
                    queue,
                    self._seq,
                    message.body,
                    json.dumps(message.message_attributes or {}),
                    message.group_id,
                ),
            )

    def messages_deleted(self, ids: list[str]) -> None:
        if not ids:
            return
        with self._db_lock:
            self._db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])

    def queue_purged(self, queue: str) -> None:
        with self._db_lock:
            self._db.execute("DELETE FROM messages WHERE queue = ?", (queue,))

    def journaled(self) -> dict[str, int]:
        """queue -> messages in the journal (for tests and the stack's start-up line)."""
        with self._db_lock:
            rows = self._db.execute("SELECT queue, COUNT(*) FROM messages GROUP BY queue").fetchall()
        return {q: int(n) for q, n in rows}


def _objects_named(body: str) -> set[tuple[str, str]]:
    from tagsmith.errors import InvalidInputError
    from tagsmith.events import parse_storage_changes

    try:
        return {(ref.bucket, ref.key) for ref in parse_storage_changes(body)}
    except (InvalidInputError, KeyError, TypeError, RecursionError):
        return set()  # not a storage event (a review nudge, a job step)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _install_hooks() -> None:
    """Wrap moto's S3 and SQS backends, once per process; the wrappers do nothing without an
    attached :class:`DurableState` (tests that use moto in-process are unaffected)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from moto.s3.exceptions import InvalidArgumentError
        from moto.s3.models import S3Backend
        from moto.s3.responses import S3Response
        from moto.sqs.models import Queue, SQSBackend

        put_object: Callable[..., Any] = S3Backend.put_object
        put_request: Callable[..., Any] = S3Response.put_object
        delete_object: Callable[..., Any] = S3Backend.delete_object
        add_message: Callable[..., Any] = Queue.add_message
        queue_delete: Callable[..., Any] = Queue.delete_message
        purge_queue: Callable[..., Any] = SQSBackend.purge_queue

        def durable_put(
            self: Any, bucket_name: str, key_name: str, value: bytes, *args: Any, **kw: Any
        ) -> Any:
            state = _active
            if state is None or not state.tracks(bucket_name):
                return put_object(self, bucket_name, key_name, value, *args, **kw)
            try:
                state.check_key(key_name)
            except InvalidKeyError as e:
                log.warning("refused s3://%s/%s: %s", bucket_name, key_name, e)
                raise InvalidArgumentError(str(e), "key", key_name) from e
            with state.s3_lock:
                key = put_object(self, bucket_name, key_name, value, *args, **kw)
                state.object_written(bucket_name, key_name, bytes(value))
            return key

        def atomic_conditional_put(self: Any) -> Any:
            # moto checks If-Match / If-None-Match and then stores, with nothing between: two
            # compare-and-swaps of one record at once (the same upload delivered twice to two
            # ingest invocations, a reviewer's decision beside an ingestion) could both succeed and
            # one update be lost. Under the S3 lock (re-entrant: the store inside takes it again)
            # the check and the write are one step, as on S3.
            state = _active
            if state is None or not (self.headers.get("If-Match") or self.headers.get("If-None-Match")):
                return put_request(self)
            with state.s3_lock:
                return put_request(self)

        def durable_delete(self: Any, bucket_name: str, key_name: str, *args: Any, **kw: Any) -> Any:
            state = _active
            if state is None or not state.tracks(bucket_name):
                return delete_object(self, bucket_name, key_name, *args, **kw)
            with state.s3_lock:
                result = delete_object(self, bucket_name, key_name, *args, **kw)
                if key_name not in self.get_bucket(bucket_name).keys:
                    state.object_deleted(bucket_name, key_name)
            return result

        def durable_add(self: Any, message: Any) -> None:
            state = _active
            if state is not None and state.tracks_queue(self.name):
                # journaled first: a message moto holds is always in the journal too (a crash in
                # between leaves a journaled message moto never had, delivered after the restart)
                state.message_added(self.name, message)
            add_message(self, message)

        def durable_queue_delete(self: Any, receipt_handle: str) -> None:
            state = _active if _active is not None and _active.tracks_queue(self.name) else None
            ids = [m.id for m in self._messages if m.had_receipt_handle(receipt_handle)] if state else []
            queue_delete(self, receipt_handle)
            if state is not None:
                state.messages_deleted(ids)

        def durable_purge(self: Any, queue_name: str) -> None:
            purge_queue(self, queue_name)
            state = _active
            if state is not None and state.tracks_queue(queue_name):
                state.queue_purged(queue_name)

        S3Backend.put_object = durable_put  # type: ignore[method-assign]
        S3Response.put_object = atomic_conditional_put  # type: ignore[method-assign]
        S3Backend.delete_object = durable_delete  # type: ignore[method-assign]
        Queue.add_message = durable_add  # type: ignore[method-assign]
        Queue.delete_message = durable_queue_delete  # type: ignore[method-assign]
        SQSBackend.purge_queue = durable_purge  # type: ignore[method-assign]
        _installed = True
