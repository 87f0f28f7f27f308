"""SIGTERM and Ctrl-C stop the services cleanly: exit code 0 within 30 s, a request in flight
finished, no process and no file left behind.

Starting ``remask serve`` costs most of a minute on a small machine, so the cases are spread
over the commands, one start each:

- ``remask serve``, SIGTERM to the process (what systemd, Kubernetes and ``docker stop``
  send; Ray replaces the handler of exactly this signal), with a streamed request in flight
  that must finish, and ``--log-level warning`` that the replicas must follow.
- ``remask serve``, SIGINT to the process while its replicas load: the start is cut short
  (a short run). Ctrl-C (SIGINT to the whole process group, Ray's processes included) on a
  running ``remask serve`` started with SIGINT ignored is the stop of
  tests/serve/test_cluster.py, checked there the same way.
- ``remask serve-local --jobs`` (a few seconds to start), where the embedded Valkey is the
  child: SIGINT to the process while SIGINT was inherited as ignored (a background job of a
  script), and SIGTERM to the whole group (Valkey, in a session of its own, gets none of it
  and is stopped by remask, last).
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.serve import free_port
from bench.shutdown import STOP_LIMIT_S, Service, leftover_files, start

pytestmark = pytest.mark.slow


@pytest.fixture
def ray_tmp() -> Iterator[Path]:
    """Ray's temp directory for one child (RAY_TMPDIR): short, as Ray's socket paths must be."""
    d = Path(tempfile.mkdtemp(prefix="rt"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _stream_first_event(url: str, client: httpx.Client) -> tuple[httpx.Response, Iterator[str]]:
    """Open a long streamed infill (one snapshot per denoising step) and read its first event."""
    body = {"prompt": "def mean(values):\n    ", "suffix": "\n\nprint(mean([1, 2, 3]))\n", "max_tokens": 128,
            "steps": 128, "mode": "diffusion", "temperature": 0, "stream": True}
    resp = client.send(client.build_request("POST", f"{url}/v1/completions", json=body), stream=True)
    assert resp.status_code == 200, resp.read()
    lines = (line for line in resp.iter_lines() if line.startswith("data: "))
    first = next(lines)
    assert json.loads(first[len("data: "):])["choices"]
    return resp, lines


@pytest.mark.timeout(600)
def test_serve_stops_on_sigterm_after_the_request_in_flight(tmp_path: Path, ray_tmp: Path) -> None:
    port = free_port()
    data = tmp_path / "valkey"
    svc = start(["serve", "--port", str(port), "--num-cpus", "2", "--data-dir", str(data), "--log-level", "warning"],
                tmp_path / "serve.log", port, env={"RAY_TMPDIR": str(ray_tmp)})
    try:
        svc.wait_ready()
        assert (data / "server.url").is_file() and list((ray_tmp / "ray").glob("session_*"))
        with httpx.Client(timeout=60) as client:
            resp, rest = _stream_first_event(svc.url, client)
            svc.record_tree()
            svc.send(signal.SIGTERM, group=False)
            events = list(rest)  # the drain lets the stream finish
            resp.close()
        rc, took = svc.wait_exit()
    finally:
        if svc.proc.poll() is None:
            svc.kill()
    assert rc == 0 and took < STOP_LIMIT_S, (rc, took, svc.log_tail())
    assert events and events[-1] == "data: [DONE]", events[-3:]
    assert len(svc.tree) >= 5  # Ray's processes, the replicas and Valkey were there to stop
    assert svc.left_running() == []
    assert leftover_files(data, ray_tmp) == []
    log = svc.log_tail(1 << 20)
    assert "SIGTERM received, stopping" in log
    # --log-level warning reached the replicas: no request lines (Serve logs each at info)
    assert "GET /ready" not in log and "POST /v1/completions" not in log, log[-3000:]


@pytest.mark.timeout(600)
def test_serve_stops_on_sigint_in_the_middle_of_its_start(tmp_path: Path, ray_tmp: Path) -> None:
    """Ctrl-C while the replicas load (``serve.run`` has not returned) is a stop like any
    other: no KeyboardInterrupt traceback, exit code 0, nothing left."""
    port = free_port()
    data = tmp_path / "valkey"
    svc = start(["serve", "--port", str(port), "--num-cpus", "2", "--data-dir", str(data), "--log-level", "warning"],
                tmp_path / "serve.log", port, env={"RAY_TMPDIR": str(ray_tmp)})
    try:
        svc.wait_for_descendant("ServeReplica")  # the application is being deployed
        svc.record_tree()
        svc.send(signal.SIGINT, group=False)
        rc, took = svc.wait_exit()
    finally:
        if svc.proc.poll() is None:
            svc.kill()
    assert rc == 0 and took < STOP_LIMIT_S, (rc, took, svc.log_tail())
    assert svc.left_running() == []
    assert leftover_files(data, ray_tmp) == []
    log = svc.log_tail(1 << 20)
    assert "SIGINT received, stopping" in log and "KeyboardInterrupt" not in log


def _serve_local(tmp_path: Path, ignore_sigint: bool) -> tuple[Service, Path]:
    port = free_port()
    data = tmp_path / "valkey"
    svc = start(["serve-local", "--port", str(port), "--jobs", "--no-drafter", "--data-dir", str(data)],
                tmp_path / "serve-local.log", port, ignore_sigint=ignore_sigint)
    svc.wait_ready(120)
    assert (data / "server.url").is_file()
    return svc, data


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("sig", "group", "ignore_sigint"), [
    (signal.SIGINT, False, True),   # started by a script in the background: SIGINT came in ignored
    (signal.SIGTERM, True, False),  # the whole group, as a supervisor that signals every process would
], ids=["sigint-inherited-ignored", "sigterm-to-group"])
def test_serve_local_stops_and_stops_its_valkey(tmp_path: Path, sig: signal.Signals, group: bool,
                                                ignore_sigint: bool) -> None:
    svc, data = _serve_local(tmp_path, ignore_sigint)
    try:
        job = httpx.post(f"{svc.url}/v1/jobs", timeout=30, headers={"content-type": "application/jsonl"},
                         content=json.dumps({"custom_id": "a", "url": "/v1/repair", "body": {"code": "x = (1\n"}}))
        assert job.status_code == 200, job.text  # the queue was up until the signal
        svc.record_tree()
        assert svc.tree  # the embedded Valkey
        svc.send(sig, group=group)
        rc, took = svc.wait_exit()
    finally:
        if svc.proc.poll() is None:
            svc.kill()
    assert rc == 0 and took < STOP_LIMIT_S, (rc, took, svc.log_tail())
    assert svc.left_running() == []
    assert leftover_files(data) == []
    log = (data / "valkey.log").read_text(errors="replace")
    assert "Received SIGTERM" in log and "SIGINT" not in log  # stopped by remask, not by the group's signal
