"""Bounds on retrain requests: one pending retrain per model, and a per-tenant rate.

Every tenant's trainings share one training queue (and two concurrent training functions), so
retrain requests are work one tenant can make for all: six queued retrains of one tenant once made
another tenant's training take 15 s instead of 3. Reviewers ask for retrains from the console
("Retrain now") and decisions ask for them every N corrections, so both pass through
:class:`RetrainThrottle`:

* **one pending retrain per model**: while a requested retrain has not started (the model's
  ``status.json`` does not name it yet), asking again returns that request instead of queueing
  another. It will train on every correction made until it starts, so nothing is lost;
* **a per-tenant rate**: at most ``per_hour`` retrain requests per tenant in any rolling hour;
  beyond it :class:`RetrainRateError` says when the next one is allowed (HTTP 429).

State is one small JSON document per tenant, ``tenants/<t>/retrains.json``, updated with
compare-and-swap (:class:`~tagsmith.storage.cas.JsonDocument`), so two console servers or Lambda
containers cannot both slip past the limit. A pending request whose training never started (its
message lost) stops blocking after ``pending_expiry`` seconds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tagsmith.errors import NotFoundError, TransientError
from tagsmith.keys import model_prefix, tenant_prefix
from tagsmith.storage.base import ObjectStore
from tagsmith.storage.cas import JsonDocument

log = logging.getLogger(__name__)


class RetrainRateError(TransientError):
    """The tenant asked for more retrains than its hourly allowance; ``retry_after`` in seconds."""

    code = "retrain_rate"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetrainLimits:
    per_hour: int = 6  # retrain requests per tenant per rolling hour
    pending_expiry: float = 2 * 3600.0  # a pending request whose training never started stops blocking


def retrains_key(tenant: str) -> str:
    return tenant_prefix(tenant) + "retrains.json"


def _now() -> datetime:
    return datetime.now(UTC)


class RetrainThrottle:
    """Admits retrain requests within :class:`RetrainLimits` (see the module docstring)."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        data_bucket: str,
        limits: RetrainLimits = RetrainLimits(),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.data_bucket = data_bucket
        self.limits = limits
        self.clock = clock

    def pending(self, tenant: str, model: str) -> str | None:
        """The key of the model's retrain request that has not started yet, if there is one."""
        got = self._document(tenant).get()
        return self._still_pending(tenant, model, got[0] if got else {}, self.clock())

    def allows(self, tenant: str, model: str) -> bool:
        """Whether asking for a retrain now would be accepted (coalesced with a pending one counts)."""
        got = self._document(tenant).get()
        state = got[0] if got else {}
        now = self.clock()
        if self._still_pending(tenant, model, state, now) is not None:
            return True
        return len(self._recent(state, now)) < self.limits.per_hour

    @staticmethod
    def _recent(state: dict[str, Any], now: datetime) -> list[str]:
        hour_ago = now - timedelta(hours=1)
        return sorted(t for t in state.get("recent", []) if _parse(t) > hour_ago)

    def admit(self, tenant: str, model: str, key: str) -> str | None:
        """Record a new retrain request ``key``; returns the pending request's key instead when one
        is still waiting (nothing is recorded), and raises :class:`RetrainRateError` over the rate."""
        now = self.clock()
        found: dict[str, str | None] = {"pending": None}

        def change(state: dict[str, Any] | None) -> dict[str, Any] | None:
            state = dict(state or {})
            waiting = self._still_pending(tenant, model, state, now)
            found["pending"] = waiting
            if waiting is not None:
                return None  # coalesced: nothing to write
            recent = self._recent(state, now)
            if len(recent) >= self.limits.per_hour:
                wait = (_parse(recent[0]) + timedelta(hours=1) - now) if recent else timedelta(hours=1)
                retry = max(1, int(wait.total_seconds()) + 1)
                raise RetrainRateError(
                    f"tenant {tenant!r} has asked for {len(recent)} retrains in the last hour (the limit is "
                    f"{self.limits.per_hour}); the next one is allowed in {retry} s",
                    retry_after=retry,
                )
            pending = dict(state.get("pending") or {})
            pending[model] = {"key": key, "at": now.isoformat()}
            return {"recent": [*recent, now.isoformat()], "pending": pending}

        self._document(tenant).update(change)
        if found["pending"] is not None:
            log.info(
                "retrain of %s already pending (%s): not queued again",
                model,
                found["pending"],
                extra={"tenant": tenant},
            )
        return found["pending"]

    def _still_pending(self, tenant: str, model: str, state: dict[str, Any], now: datetime) -> str | None:
        entry = (state.get("pending") or {}).get(model)
        if not entry:
            return None
        key, at = str(entry.get("key", "")), _parse(str(entry.get("at", "")))
        if now - at > timedelta(seconds=self.limits.pending_expiry):
            return None  # its message was lost, or it failed before writing a status: stop blocking
        try:
            status = json.loads(
                self.store.get(self.data_bucket, model_prefix(tenant, model) + "status.json").body
            )
        except (NotFoundError, ValueError):
            return key
        started = status.get("request") == key and status.get("state") in ("training", "trained", "failed")
        return None if started else key

    def _document(self, tenant: str) -> JsonDocument[dict[str, Any]]:
        return JsonDocument(
            self.store,
            self.data_bucket,
            retrains_key(tenant),
            decode=lambda b: dict(json.loads(b)),
            encode=lambda d: json.dumps(d).encode(),
            what=f"retrain requests of {tenant}",
        )


def _parse(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
