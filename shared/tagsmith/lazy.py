"""Values a Lambda handler builds once per container: on the first invocation, not at import.

Every handler module holds its clients and services in a :class:`Lazy`, so importing the module
(tests, the local stack, a cold start that fails early) never touches AWS, and warm invocations
reuse what the first one built. Tests inject a ready value with :meth:`Lazy.set`.

>>> built = []
>>> settings = Lazy(lambda: built.append(1) or "built")
>>> settings(), settings(), len(built)
('built', 'built', 1)
>>> settings.set("injected"); settings()
'injected'
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from tagsmith.wiring import Components

T = TypeVar("T")


class Lazy(Generic[T]):
    """Calls ``factory`` on first use and returns the same value afterwards."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None
        self._built = False
        self._lock = threading.Lock()

    def __call__(self) -> T:
        if not self._built:
            with self._lock:  # the local stack may invoke one handler module from several threads
                if not self._built:
                    self._value = self._factory()
                    self._built = True
        return self._value  # type: ignore[return-value]

    def set(self, value: T) -> None:
        """Use ``value`` from now on instead of building one (tests, the local CLI)."""
        with self._lock:
            self._value = value
            self._built = True


def lazy_components() -> Lazy[Components]:
    """:class:`~tagsmith.wiring.Components` from the environment (``Settings.from_env()``), built on
    first use: what every handler module starts from."""

    def build_from_env() -> Components:
        from tagsmith.config import Settings
        from tagsmith.wiring import build

        return build(Settings.from_env())

    return Lazy(build_from_env)
