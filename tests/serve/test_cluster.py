"""End to end on a real Ray instance: ``remask serve`` with the shipped models, driven over
HTTP with the official ``openai`` client, then stopped with Ctrl-C (SIGINT to its process
group: Ray's processes get it too; the command was started with SIGINT ignored, as a script's
background job is), which must end it with exit code 0 within 30 s, with no process and no
file left. One test, so Ray starts once."""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from bench.serve import free_port
from bench.shutdown import STOP_LIMIT_S, leftover_files, start

pytestmark = pytest.mark.slow


@pytest.mark.timeout(600)
def test_serve_on_ray_answers_fim_revise_and_batch_jobs_then_stops(tmp_path: Path) -> None:
    port = free_port()
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt"))  # Ray's temp directory (short: its socket paths are limited)
    # the child leads its own process group and gets SIGINT as ignored, whatever this process
    # inherited: as a background job of a script gets it; remask must take Ctrl-C regardless
    svc = start(["serve", "--port", str(port), "--num-cpus", "2", "--data-dir", str(tmp_path / "valkey"),
                 "--log-level", "warning"], tmp_path / "serve.log", port, ignore_sigint=True,
                env={"RAY_TMPDIR": str(ray_tmp)})
    url = svc.url
    try:
        svc.wait_ready()

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
        # the candidate search runs on Serve in ar and hybrid too: the ingress calls both deployments
        for mode in ("ar", "hybrid"):
            found = client.completions.create(model="remask", prompt="def add(a, b):\n    return ",
                                              suffix="\n\nprint(add(1, 2))\n", max_tokens=8, temperature=0,
                                              extra_body={"mode": mode, "seed": 0})
            ext = found.model_extra["remask"]
            assert ext["syntax_check"] == "checked" and 0.0 <= ext["confidence"] <= 1.0, (mode, ext)
            assert ext["audit"]["parameters"]["candidates"] is True
        streamed = "".join(c.choices[0].text for c in client.completions.create(
            model="remask", prompt="def add(a, b):\n    return ", suffix="\n\nprint(add(1, 2))\n", max_tokens=8,
            temperature=0, stream=True, extra_body={"mode": "ar", "seed": 0}))
        plain = client.completions.create(model="remask", prompt="def add(a, b):\n    return ",
                                          suffix="\n\nprint(add(1, 2))\n", max_tokens=8, temperature=0,
                                          extra_body={"mode": "ar", "seed": 0})
        assert streamed == plain.choices[0].text  # a streamed search ends with the same ranked answer

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

        svc.record_tree()
        svc.send(signal.SIGINT, group=True)  # Ctrl-C
        rc, took = svc.wait_exit()
        assert rc == 0 and took < STOP_LIMIT_S, (rc, took, svc.log_tail())
        assert svc.left_running() == []
        # the embedded server was stopped, Ray's session removed
        assert leftover_files(tmp_path / "valkey", ray_tmp) == []
    finally:
        if svc.proc.poll() is None:
            svc.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
