"""Per-tenant values kept in memory for a while: what a warm Lambda container reuses between
invocations (active models, media settings) and picks up changes of within ``ttl`` seconds.

>>> loads = []
>>> cache = TenantCache(lambda tenant: loads.append(tenant) or len(loads), ttl=30.0, clock=lambda: 0.0)
>>> cache.get("acme"), cache.get("acme"), loads
(1, 1, ['acme'])
>>> cache.invalidate("acme"); cache.get("acme")
2
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TenantCache(Generic[T]):
    """``load(tenant)`` at most once per ``ttl`` seconds per tenant; thread-safe (a load runs outside
    the lock: two threads may both load a missing tenant, and the later result is kept)."""

    def __init__(
        self, load: Callable[[str], T], *, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.load = load
        self.ttl = ttl
        self.clock = clock
        self._values: dict[str, tuple[float, T]] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str) -> T:
        now = self.clock()
        with self._lock:
            hit = self._values.get(tenant)
            if hit and now - hit[0] < self.ttl:
                return hit[1]
        value = self.load(tenant)
        with self._lock:
            self._values[tenant] = (now, value)
        return value

    def invalidate(self, tenant: str | None = None) -> None:
        """Forget one tenant's value (all tenants' with None): the next ``get`` loads it again."""
        with self._lock:
            if tenant is None:
                self._values.clear()
            else:
                self._values.pop(tenant, None)
