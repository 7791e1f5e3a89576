"""Stop signals for commands that start an embedded LLM server: unwind, stop the server, exit with one line.

By default SIGTERM and SIGHUP end Python at once: no ``finally`` runs, so ``with EmbeddedLLMServer()`` cannot
stop its server (the launcher's parent-death signal and watchdog still end it, a moment later). Inside
:func:`exit_on_signals` SIGTERM, SIGINT and SIGHUP instead raise :class:`StopSignal` in the main thread, every
``with``/``finally`` on the way out runs (the server stops first-hand), and at the block's edge the command
prints ``giqa: stopped by SIGTERM`` on stderr and exits with the shell's code for the signal, 128 + number
(143, 130, 129).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name)
)


class StopSignal(BaseException):
    """A stop signal arrived. A BaseException, like KeyboardInterrupt, so ``except Exception`` in the work
    (per-sample error handling, retries) cannot swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def exit_on_signals(prog: str = "giqa") -> Iterator[None]:
    """Inside the block a stop signal unwinds the stack; at its edge it becomes one line and ``SystemExit``.

    A second signal while the first one unwinds is ignored, so it cannot cut the server's stop short. Off
    the main thread (where Python cannot install handlers) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, _frame: FrameType | None) -> None:
        nonlocal fired
        if fired:
            return
        fired = True
        raise StopSignal(signum)

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    except StopSignal as stop:
        sys.stderr.write(f"{prog}: stopped by {stop.name}\n")
        sys.stderr.flush()
        raise SystemExit(stop.exit_code) from None
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
