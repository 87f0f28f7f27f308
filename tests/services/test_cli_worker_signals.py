"""``remask worker`` with an embedded Valkey under Ctrl-C: the signal reaches the worker only
(Valkey runs in a session of its own), which stops and then stops Valkey; exit code 0."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import redis

from bench.shutdown import leftover_files, start


def test_a_group_sigint_stops_the_worker_then_its_valkey(tmp_path: Path) -> None:
    data = tmp_path / "valkey"
    # started as a script's background job (SIGINT inherited ignored): remask takes it anyway
    svc = start(["worker", "--handler", "echo", "--data-dir", str(data)], tmp_path / "worker.log", 0,
                ignore_sigint=True)
    try:
        end = time.monotonic() + 120
        while not (data / "server.url").is_file():  # the embedded Valkey is up
            assert svc.proc.poll() is None and time.monotonic() < end, svc.log_tail()
            time.sleep(0.1)
        assert redis.Redis.from_url((data / "server.url").read_text().strip(), socket_timeout=5).ping()
        svc.record_tree()
        assert svc.tree  # Valkey
        svc.send(signal.SIGINT, group=True)  # Ctrl-C
        rc, _ = svc.wait_exit(30)
    finally:
        if svc.proc.poll() is None:
            svc.kill()
    assert rc == 0, svc.log_tail()
    assert svc.left_running() == [] and leftover_files(data) == []
    assert "unavailable" not in svc.log_tail()  # the queue outlived the worker
    log = (data / "valkey.log").read_text(errors="replace")
    assert "Received SIGTERM" in log and "SIGINT" not in log  # stopped by remask, not by the group's signal
