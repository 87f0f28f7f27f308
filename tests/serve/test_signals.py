"""StopSignals (services/commands/signals.py): the first SIGTERM/SIGINT asks for a graceful
stop, a second one or the deadline exits at once after the force callbacks. What exits the
process runs in a child; the rest runs here, with this process's handlers restored after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bench.shutdown import with_disposition
from services.commands.serve import remove_session
from services.commands.signals import StopSignals

ROOT = Path(__file__).resolve().parents[2]

CHILD_HEAD = """
import os, signal, sys, time
from services.commands.signals import StopSignals
stop = StopSignals("child")
stop.on_force(lambda: os.write(1, b"force callback ran\\n"))
stop.install()
"""


def _child(body: str, ignore_sigint: bool = False) -> subprocess.Popen[str]:
    """A Python child running ``CHILD_HEAD`` + ``body``; its SIGINT disposition is set here
    (ignored, as a background job of a non-interactive shell inherits it, or the default),
    whatever this test process was given."""
    code = CHILD_HEAD + textwrap.dedent(body)
    return subprocess.Popen(with_disposition([sys.executable, "-c", code], ignore_sigint), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in before.items():
        signal.signal(sig, handler)


def test_the_first_signal_asks_for_a_stop_and_calls_the_stop_callbacks(restore_handlers: None) -> None:
    stop = StopSignals("test")
    called: list[bool] = []
    stop.on_stop(lambda: called.append(True))
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # what a library (ray.init) may leave there
    stop.install()
    assert not stop.requested and not stop.wait(0.05)
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.wait(5)
    assert stop.signum == signal.SIGTERM and called == [True]
    stop.request()  # a later request (the command's own, at the end of its run) changes nothing
    assert stop.signum == signal.SIGTERM and called == [True]


def test_a_second_signal_exits_at_once_after_the_force_callbacks() -> None:
    child = _child("""
        os.kill(os.getpid(), signal.SIGINT)
        stop.wait()
        print("stopping", flush=True)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)
        print("not reached", flush=True)
    """)
    out, err = child.communicate(timeout=20)
    assert child.returncode == 128 + signal.SIGINT, err
    assert out.splitlines() == ["stopping", "force callback ran"]
    assert "SIGINT received again" in err


def test_sigint_stops_the_command_even_when_it_was_inherited_as_ignored() -> None:
    child = _child("""
        print("ready", flush=True)
        stop.wait(20)
        print("stopped by", signal.Signals(stop.signum).name, flush=True)
    """, ignore_sigint=True)
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=20)
    assert child.returncode == 0, err
    assert out == "stopped by SIGINT\n"


def test_the_deadline_exits_with_1_after_the_force_callbacks() -> None:
    child = _child("""
        stop.request()
        stop.deadline(0.2)
        time.sleep(30)
    """)
    out, err = child.communicate(timeout=20)
    assert child.returncode == 1
    assert out == "force callback ran\n"
    assert "the graceful stop took more than 0.2s" in err


def test_a_stopped_command_removes_its_ray_session_and_only_that(tmp_path: Path) -> None:
    ours = tmp_path / "session_2026-01-01_00-00-00_000001_42"
    other = tmp_path / "session_2026-01-01_00-00-00_000002_43"
    for d in (ours, other):
        (d / "logs").mkdir(parents=True)
        (d / "logs" / "raylet.out").write_text("log\n")
    latest = tmp_path / "session_latest"
    latest.symlink_to(ours)
    remove_session(ours)
    assert not ours.exists() and not latest.is_symlink()
    latest.symlink_to(other)  # another instance started since: its link stays
    remove_session(other.with_name("session_x_44"))
    assert latest.is_symlink() and other.is_dir()


def test_an_exit_at_once_kills_every_process_the_command_started() -> None:
    """What ``remask serve`` runs last before exiting at once: its descendants (Ray's daemons,
    agents and workers; a grandchild here) are killed, not left running."""
    code = textwrap.dedent("""
        import subprocess, sys
        from services.commands.serve import kill_descendants
        sleeper = "import time; time.sleep(60)"
        spawn = (f"import subprocess, sys, time; g = subprocess.Popen([sys.executable, '-c', {sleeper!r}]); "
                 "print(g.pid, flush=True); time.sleep(60)")
        child = subprocess.Popen([sys.executable, "-c", spawn], stdout=subprocess.PIPE, text=True)
        print(child.pid, child.stdout.readline().strip(), flush=True)
        kill_descendants()
        child.wait(10)
    """)
    done = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    pids = [int(x) for x in done.stdout.split()]
    assert len(pids) == 2
    for pid in pids:
        try:
            gone = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # killed, not yet reaped
        except psutil.NoSuchProcess:
            gone = True
        assert gone, pid
