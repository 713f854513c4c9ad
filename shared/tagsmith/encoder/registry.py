"""The encoders one deployment runs (:class:`EncoderSet`): a default, the candidates the trainer
chooses between per model, and any built-in recipe a stored model names, built on first use.

A tag model records the encoder it was trained for (``encoder_id``); ingest embeds each upload
with exactly the encoders the tenant's active models name, so a tenant whose models all chose one
recipe pays one network pass per upload, whatever the others chose.

Example::

    >>> class Demo:  # any Encoder: encoder_id, dim, embed()
    ...     encoder_id, dim = "demo-4", 4
    >>> encoders = EncoderSet.of(Demo())  # type: ignore[arg-type]
    >>> encoders.default.encoder_id, encoders.candidates, encoders.available("other")
    ('demo-4', ('demo-4',), False)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from tagsmith.encoder.session import Encoder
from tagsmith.errors import ConfigurationError

__all__ = ["EncoderSet", "UnknownEncoderError"]


class UnknownEncoderError(ConfigurationError, LookupError):
    """A model names an encoder this deployment cannot run."""

    code = "unknown_encoder"


class EncoderSet:
    """The default encoder, the trainer's candidates, and a factory for other known encoders.

    ``factory(encoder_id)`` builds an encoder this deployment knows (a built-in recipe) or raises
    :class:`UnknownEncoderError`; without one, only the default and the candidates given exist.
    Built encoders are kept (one ONNX session each).
    """

    def __init__(
        self,
        *,
        default: Encoder,
        candidates: Sequence[Encoder | str] = (),
        factory: Callable[[str], Encoder] | None = None,
    ) -> None:
        self._built: dict[str, Encoder] = {default.encoder_id: default}
        self._default = default
        ids = [default.encoder_id]
        for c in candidates:
            if isinstance(c, str):
                encoder_id = c
            else:
                encoder_id = c.encoder_id
                self._built.setdefault(encoder_id, c)
            if encoder_id not in ids:
                ids.append(encoder_id)
        self._candidates = tuple(ids)
        self._factory = factory
        self._lock = threading.Lock()

    @classmethod
    def of(cls, encoder: Encoder) -> EncoderSet:
        """A set of one encoder (an operator's own ONNX model, a test's fake)."""
        return cls(default=encoder)

    @property
    def default(self) -> Encoder:
        return self._default

    @property
    def candidates(self) -> tuple[str, ...]:
        """The encoders the trainer compares per model, the default first."""
        return self._candidates

    def wrapped(self, wrap: Callable[[Encoder], Encoder]) -> EncoderSet:
        """The same set with every encoder (built now or later) passed through ``wrap``: e.g. one
        that reports progress. The candidates and their order are kept."""
        factory = self._factory
        out = EncoderSet(
            default=wrap(self._default),
            candidates=[wrap(self.get(c)) for c in self._candidates],
            factory=(lambda encoder_id: wrap(factory(encoder_id))) if factory is not None else None,
        )
        return out

    def available(self, encoder_id: str) -> bool:
        try:
            self.get(encoder_id)
        except UnknownEncoderError:
            return False
        return True

    def get(self, encoder_id: str) -> Encoder:
        with self._lock:
            if encoder_id in self._built:
                return self._built[encoder_id]
            if self._factory is None:
                raise UnknownEncoderError(f"encoder {encoder_id!r} is not one this deployment runs")
            encoder = self._factory(encoder_id)
            self._built[encoder_id] = encoder
            return encoder
