"""The embedded Valkey runs in a session of its own, so that a signal to its owner's process
group (a terminal's Ctrl-C) reaches the owner alone, and its stop leaves no file behind that
points at a server that is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import redis

from workflows.queue import EmbeddedValkey
from workflows.queue.embedded import CONFIG_FILE, URL_FILE

ROOT = Path(__file__).resolve().parents[2]


def _server_process(server: EmbeddedValkey) -> psutil.Process:
    """The valkey-server child of this process that serves ``server`` (Valkey sets its process
    title to its address)."""
    found = [p for p in psutil.Process().children() if f"127.0.0.1:{server.port}" in " ".join(p.cmdline())]
    assert len(found) == 1, found
    return found[0]


def test_the_server_runs_in_a_session_of_its_own_and_its_stop_removes_its_files(tmp_path: Path) -> None:
    server = EmbeddedValkey(tmp_path)
    server.start()
    try:
        proc = _server_process(server)
        assert os.getsid(proc.pid) == proc.pid != os.getsid(0)
        assert os.getpgid(proc.pid) != os.getpgid(0)
        assert (tmp_path / URL_FILE).is_file() and (tmp_path / CONFIG_FILE).is_file()
    finally:
        server.stop()
    assert not proc.is_running()
    assert not (tmp_path / URL_FILE).exists() and not (tmp_path / CONFIG_FILE).exists()
    server.stop()  # a second stop is a no-op


def test_a_group_sigint_reaches_the_owner_which_stops_valkey_last(tmp_path: Path) -> None:
    """The owner (a child here, in a session of its own as a terminal's job is) gets SIGINT
    with its whole group; Valkey is outside that group, so the owner still finds it serving
    when it handles the signal, writes to it, and then stops it."""
    code = textwrap.dedent(f"""
        import signal, sys, threading
        import redis
        from workflows.queue import EmbeddedValkey
        got = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: got.set())
        server = EmbeddedValkey({str(tmp_path)!r})
        url = server.start()
        print(url, flush=True)
        got.wait(30)
        # the signal has reached every process of this group by now: Valkey must still answer
        redis.Redis.from_url(url, socket_timeout=5).set("written-after-sigint", "yes")
        server.stop()
        print("stopped", flush=True)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    assert child.stdout is not None
    url = child.stdout.readline().strip()
    assert url.startswith("redis://"), child.stderr.read() if child.stderr else ""
    os.killpg(child.pid, signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert out == "stopped\n"
    log = (tmp_path / "valkey.log").read_text(errors="replace")
    assert "Received SIGTERM" in log and "SIGINT" not in log  # stopped by its owner, never by the group's signal
    # what the owner wrote after the signal was kept (its stop wrote the append-only file)
    server = EmbeddedValkey(tmp_path)
    server.start()
    try:
        assert redis.Redis.from_url(server.url).get("written-after-sigint") == b"yes"
    finally:
        server.stop()
