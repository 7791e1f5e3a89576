"""``exit_on_signals``: a stop signal unwinds the block (its cleanup runs), then one line and 128 + signal."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from giqa.llm.signals import STOP_SIGNALS, StopSignal, exit_on_signals

pytestmark = pytest.mark.unit


def arrive() -> None:
    """Python runs signal handlers between bytecodes of the main thread: give it some."""
    for _ in range(100):
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)]
)
def test_a_stop_signal_runs_the_cleanup_then_exits_with_its_code(
    signum: signal.Signals, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    cleaned = []
    with pytest.raises(SystemExit) as stopped, exit_on_signals():
        try:
            os.kill(os.getpid(), signum)
            arrive()
            raise AssertionError("the signal did not interrupt the block")
        finally:
            cleaned.append(True)
    assert stopped.value.code == code
    assert cleaned == [True]
    assert capsys.readouterr().err == f"giqa: stopped by {signum.name}\n"
    assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before


def test_except_exception_in_the_work_cannot_swallow_it() -> None:
    swallowed = []
    with pytest.raises(SystemExit), exit_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            arrive()
        except Exception:  # noqa: BLE001 — what per-sample error handling looks like
            swallowed.append(True)
    assert swallowed == []
    assert issubclass(StopSignal, BaseException) and not issubclass(StopSignal, Exception)


def test_a_second_signal_during_the_cleanup_is_ignored() -> None:
    cleaned = []
    with pytest.raises(SystemExit) as stopped, exit_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            arrive()
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # must not cut the cleanup short
            arrive()
            cleaned.append(True)
    assert stopped.value.code == 143 and cleaned == [True]


def test_a_block_that_ends_normally_is_untouched() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with exit_on_signals():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def test_off_the_main_thread_it_changes_nothing() -> None:
    seen = []

    def work() -> None:
        with exit_on_signals():
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [before]
