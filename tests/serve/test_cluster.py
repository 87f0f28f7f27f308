"""End to end on a real Ray instance: ``remask serve`` with the shipped models, driven over
HTTP with the official ``openai`` client, then stopped. One test, so Ray starts once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from bench.serve import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> None:
    try:
        wait_ready(url, proc, timeout)
    except RuntimeError as exc:
        pytest.fail(f"{exc}:\n{log.read_text()[-3000:]}")


@pytest.mark.timeout(600)
def test_serve_on_ray_answers_fim_revise_and_batch_jobs_then_stops(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REMASK_API_KEYS")}
    cmd = [sys.executable, "-m", "services.cli", "serve", "--port", str(port), "--num-cpus", "2",
           "--data-dir", str(tmp_path / "valkey"), "--log-level", "warning"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait(url, proc, log)

        # fill in the middle with the official client, as an editor plugin would
        client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        done = client.completions.create(model="remask", prompt="def add(a, b):\n    return ",
                                         suffix="\n\nprint(add(1, 2))\n", max_tokens=8, temperature=0)
        assert done.choices[0].finish_reason in ("stop", "length")
        assert isinstance(done.choices[0].text, str) and done.usage.completion_tokens >= 1
        again = client.completions.create(model="remask", prompt="def add(a, b):\n    return ",
                                          suffix="\n\nprint(add(1, 2))\n", max_tokens=8, temperature=0)
        assert again.choices[0].text == done.choices[0].text  # greedy: the same answer through the batcher
        pieces = [c.choices[0].text for c in client.completions.create(
            model="remask", prompt="x = [1, 2, ", suffix="]\n", max_tokens=6, stream=True, extra_body={"mode": "ar"})]
        assert pieces

        # revise a selected span; the edit points into the original text
        text = "The licensee shall pay the fee within thirty days."
        rev = httpx.post(f"{url}/v1/revise", json={"text": text, "spans": [[31, 37]], "seed": 0}, timeout=120)
        assert rev.status_code == 200, rev.text
        body = rev.json()
        assert all(text[e["start"]:e["end"]] == e["before"] for e in body["edits"])
        assert body["remask"]["audit"]["models"]
        bad = httpx.post(f"{url}/v1/revise", json={"text": text, "spans": [[40, 99]]}, timeout=60)
        assert bad.status_code in (400, 422) and "span" in bad.text

        # a batch job, worked off by the JobWorker deployment
        lines = "".join(json.dumps({"custom_id": f"doc-{i}", "method": "POST", "url": "/v1/repair",
                                    "body": {"code": f"x = ({i}\n"}}) + "\n" for i in range(2))
        job = httpx.post(f"{url}/v1/jobs", content=lines, headers={"content-type": "application/jsonl"}, timeout=60)
        assert job.status_code == 200, job.text
        job_id = job.json()["id"]
        deadline = time.monotonic() + 180
        while (state := httpx.get(f"{url}/v1/jobs/{job_id}", timeout=30).json())["status"] != "completed":
            assert state["status"] not in ("failed", "cancelled", "expired"), state
            assert time.monotonic() < deadline, state
            time.sleep(1)
        results = [json.loads(x) for x in httpx.get(f"{url}/v1/jobs/{job_id}/results", timeout=30).text.splitlines()]
        assert sorted(r["custom_id"] for r in results) == ["doc-0", "doc-1"]
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
        assert "remask" in metrics
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            rc = proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"remask serve did not stop on SIGINT:\n{log.read_text()[-3000:]}")
    assert rc == 0, log.read_text()[-3000:]
    assert not (tmp_path / "valkey" / "server.url").exists()  # the embedded server was stopped
