"""Graceful stops: Ctrl-C (SIGINT) ends training after the current batch and keeps the best
epoch; preemption (SIGTERM, or SLURM's warning signal SIGUSR1) ends it after a checkpoint."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
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
    """Stop a Lightning fit at the end of the batch during which ``interrupt`` was requested.

    Under DDP the processes agree (any one interrupted stops them all at the same batch).
    """

    def __init__(self, interrupt: Interrupt) -> None:
        self.interrupt = interrupt

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        """Ask the trainer to stop once an interrupt was requested."""
        if trainer.strategy.reduce_boolean_decision(self.interrupt.requested, all=False):
            trainer.should_stop = True


PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
"""Signals that preempt training: SIGTERM (preemption, scancel, time limit) and SIGUSR1 (what
``sbatch --signal=USR1@<seconds>`` sends before the time limit)."""


class Preempted(SystemExit):
    """Training stopped by a preemption signal after saving its checkpoint.

    A :class:`SystemExit` with status 128 + signal number (143 for SIGTERM, 138 for SIGUSR1),
    the status of a process killed by that signal: the job fails, and its rerun resumes.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


class Preemption:
    """A SIGTERM / SIGUSR1 flag, installed as a context manager.

    Inside the ``with`` block these signals only set :attr:`signum` (training saves a
    checkpoint at the end of the current batch and raises :class:`Preempted`); the previous
    handlers come back at its end. :meth:`install` puts the handlers back in place after
    Lightning installed its own, and makes them forward the signal to the DDP worker processes
    Lightning started. Outside the main thread it is a plain flag.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._forward: Callable[[int], None] | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """Whether a preemption signal arrived."""
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            log.warning(
                "%s: stopping after the current batch with a checkpoint",
                signal.Signals(signum).name,
            )
            self.signum = signum
        if self._forward is not None:
            self._forward(signum)

    def install(self, forward: Callable[[int], None] | None = None) -> None:
        """Handle the preemption signals here (again); ``forward`` passes them on."""
        self._forward = forward
        if threading.current_thread() is threading.main_thread():
            for signum in PREEMPTION_SIGNALS:
                signal.signal(signum, self._handle)

    def __enter__(self) -> Preemption:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.getsignal(signum) for signum in PREEMPTION_SIGNALS}
        self.install()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._forward = None
        for signum, handler in self._previous.items():
            if handler is not None:  # None: set outside Python, cannot be restored
                signal.signal(signum, handler)
        self._previous = {}
