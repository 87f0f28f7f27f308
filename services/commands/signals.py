"""How the long-running commands (``remask serve``, ``remask serve-local``) take SIGTERM and SIGINT.

The first SIGTERM or SIGINT (what systemd, Kubernetes, ``docker stop`` and a terminal's
Ctrl-C send) asks for a graceful stop: the command drains its requests, stops what it
started and exits 0. A second one exits at once, after the callbacks registered with
:meth:`StopSignals.on_force` (which stop the embedded Valkey: it runs in a session of its
own and would otherwise outlive the command). A deadline armed with
:meth:`StopSignals.deadline` does the same when a graceful stop takes too long.

Why the command installs its own handlers instead of Python's defaults: SIGINT raises
KeyboardInterrupt wherever the main thread happens to be (a traceback mid-startup, half a
cleanup); SIGTERM ends the process with no cleanup at all; a command started in the
background by a non-interactive shell inherits SIGINT as ignored; and ``ray.init`` replaces
the SIGTERM handler with Ray's own (which exits 1, and the process then aborts), so
``remask serve`` installs these again after it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """A stop request set by the first of ``signals``; the second one exits at once.

    A handler runs on the main thread between two bytecodes of whatever it interrupted, so
    it takes no lock (the interrupted code may hold it: a deadlock) and does no buffered
    I/O: it sets a flag and calls the ``on_stop`` callbacks, which must be as plain (set
    an attribute). The main thread polls the flag with :meth:`wait` and does the stopping.
    """

    def __init__(self, command: str, signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> None:
        self.command = command
        self.signals = signals
        self.signum: int | None = None  # the signal that asked for the stop, if one did
        self._requested = False
        self._on_stop: list[Callable[[], None]] = []
        self._on_force: list[Callable[[], None]] = []
        self._timer: threading.Timer | None = None

    @property
    def requested(self) -> bool:
        """Whether a stop was requested."""
        return self._requested

    def install(self) -> None:
        """(Re)install the handlers, whatever was installed or inherited before (call it
        again after a library that replaces them, such as ``ray.init``)."""
        for sig in self.signals:
            signal.signal(sig, self._handle)

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (plain and non-blocking: see the class) when a stop is requested."""
        self._on_stop.append(callback)

    def on_force(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` before exiting at once (a second signal or the deadline)."""
        self._on_force.append(callback)

    def request(self, signum: int | None = None) -> None:
        """Ask for a graceful stop (what the first signal does, with its number)."""
        if self._requested:
            return
        self.signum = signum
        self._requested = True
        if signum is not None:
            _say(f"{self.command}: {signal.Signals(signum).name} received, stopping "
                 "(send it again to exit at once)")
        for callback in self._on_stop:
            callback()

    def wait(self, timeout: float | None = None, step: float = 0.1) -> bool:
        """Sleep until a stop is requested (True) or ``timeout`` seconds pass (False)."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self._requested:
            left = step if end is None else min(step, end - time.monotonic())
            if left <= 0:
                return False
            time.sleep(left)  # a signal interrupts the sleep; its handler runs first
        return True

    def deadline(self, seconds: float) -> None:
        """Exit at once (exit code 1) unless the process has exited ``seconds`` from now."""
        if self._timer is None:
            self._timer = threading.Timer(seconds, self.force, kwargs={
                "reason": f"the graceful stop took more than {seconds:g}s", "code": 1})
            self._timer.daemon = True
            self._timer.start()

    def force(self, reason: str, code: int) -> NoReturn:
        """Run the ``on_force`` callbacks (newest first; one that fails does not stop the
        others) and exit with ``code`` without unwinding: whatever was running is abandoned."""
        _say(f"{self.command}: {reason}; exiting now")
        for callback in reversed(self._on_force):
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 - exiting anyway: the next callback gets its turn
                _say(f"{self.command}: while exiting: {exc!r}")
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, RuntimeError, ValueError):  # a reentrant flush from a handler: drop it
                pass
        os._exit(code)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._requested:
            self.force(f"{signal.Signals(signum).name} received again", 128 + signum)
        self.request(signum)


def _say(message: str) -> None:
    """One line on stderr, written unbuffered: a handler may interrupt a buffered write, and
    writing through the same buffer again from it raises."""
    try:
        os.write(2, (message + "\n").encode("utf-8", "replace"))
    except OSError:
        pass
