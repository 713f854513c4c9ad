"""Message queues: the ``Queue`` boundary, SQS and in-memory adapters."""

from __future__ import annotations

import json
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from tagsmith.errors import TransientError


class Queue(Protocol):
    def send(self, message: dict[str, Any], *, group: str | None = None) -> None: ...


class SqsQueue:
    def __init__(self, *, client: Any, url: str) -> None:
        self.client = client
        self.url = url

    def send(self, message: dict[str, Any], *, group: str | None = None) -> None:
        kwargs: dict[str, Any] = {
            "QueueUrl": self.url,
            "MessageBody": json.dumps(message, ensure_ascii=False),
        }
        if group is not None and self.url.endswith(".fifo"):
            kwargs["MessageGroupId"] = group
        try:
            self.client.send_message(**kwargs)
        except (ClientError, BotoCoreError) as e:
            raise TransientError(f"sending to {self.url} failed: {e}") from e


class MemoryQueue:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any], *, group: str | None = None) -> None:
        self.messages.append(json.loads(json.dumps(message)))
