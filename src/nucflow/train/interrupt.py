"""Graceful Ctrl-C: the first SIGINT asks training (or tuning) to stop after the current batch."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

import lightning as L

log = logging.getLogger(__name__)


class Interrupt:
    """A SIGINT flag, installed as a context manager.

    Inside the ``with`` block the first Ctrl-C only sets :attr:`requested` (training stops at
    the end of the current batch and keeps its best epoch; tuning starts no further trial); a
    second one raises :class:`KeyboardInterrupt` as usual. Outside the main thread (where
    signal handlers cannot be installed) it is a plain flag.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def request(self) -> None:
        """Ask for a stop (what the first Ctrl-C does)."""
        if not self.requested:
            log.warning("interrupt: stopping after the current batch (Ctrl-C again to abort)")
        self.requested = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.request()

    def __enter__(self) -> Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


class StopOnInterrupt(L.Callback):
    """Stop a Lightning fit at the end of the batch during which ``interrupt`` was requested."""

    def __init__(self, interrupt: Interrupt) -> None:
        self.interrupt = interrupt

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        """Ask the trainer to stop once an interrupt was requested."""
        if self.interrupt.requested:
            trainer.should_stop = True
