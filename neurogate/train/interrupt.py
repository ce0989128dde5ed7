"""Stopping a run cleanly: SIGTERM or Ctrl-C end the current batch, then the run checkpoints.

A job scheduler's SIGTERM (or torchrun forwarding one) and a first Ctrl-C set a flag that the
training loop reads after each batch; under DDP the flag is summed over processes so every rank
stops at the same batch. A second Ctrl-C raises ``KeyboardInterrupt`` at once.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

from .distributed import DistContext, all_reduce_sum

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["StopFlag"]


class StopFlag:
    """SIGTERM / SIGINT set a flag the loop checks after each batch (second SIGINT aborts)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def check(self, ctx: DistContext) -> bool:
        if not ctx.enabled:
            return self.signum is not None
        return all_reduce_sum([float(self.signum is not None)], ctx)[0] > 0
