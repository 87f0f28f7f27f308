"""``remask jobs ...`` against a live server and a worker (the real app, a real Valkey)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client import Remask
from services.cli import main
from services.commands.jobs import write_atomic
from tests.client.conftest import API_KEY, SLOW, BackgroundWorker, Live
from tests.client.test_jobs import item


def jobs(live: Live, *argv: str) -> int:
    return main(["jobs", *argv, "--url", live.url, "--api-key", API_KEY])


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_submit_wait_shows_progress_and_writes_results(live: Live, worker: BackgroundWorker, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    src = write_jsonl(tmp_path / "docs.jsonl", [item(f"d{i}", f"y{i} = ") for i in range(5)])
    assert jobs(live, "submit", str(src), "--wait", "--poll", "0.05") == 0
    err = capsys.readouterr().err
    assert "5/5" in err and "completed: 5 succeeded, 0 failed" in err  # the bar reached the end
    out = tmp_path / "docs.jsonl.results.jsonl"  # the default name
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["custom_id"] for r in rows] == [f"d{i}" for i in range(5)]
    assert all(r["response"]["status_code"] == 200 for r in rows)
    assert not (tmp_path / "docs.jsonl.errors.jsonl").exists()  # nothing failed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.jsonl", "docs.jsonl.results.jsonl"]  # no temp left


def test_failed_items_go_to_the_errors_file(live: Live, worker: BackgroundWorker, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = {"custom_id": "bad-span", "url": "/v1/revise", "body": {"text": "short", "spans": [[0, 99]]}}
    src = write_jsonl(tmp_path / "in.jsonl", [item("ok"), bad])
    rc = jobs(live, "submit", str(src), "--wait", "--poll", "0.05", "--no-progress",
              "--out", str(tmp_path / "res" / "ok.jsonl"), "--errors", str(tmp_path / "bad.jsonl"))
    assert rc == 0 and "1 succeeded, 1 failed" in capsys.readouterr().err
    assert [json.loads(x)["custom_id"] for x in (tmp_path / "res" / "ok.jsonl").read_text().splitlines()] == ["ok"]
    errors = [json.loads(x) for x in (tmp_path / "bad.jsonl").read_text().splitlines()]
    assert [e["custom_id"] for e in errors] == ["bad-span"] and errors[0]["error"]["message"]


def test_submit_status_results_and_cancel(live: Live, worker: BackgroundWorker, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    src = write_jsonl(tmp_path / "one.jsonl", [item("only")])
    assert jobs(live, "submit", str(src)) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["object"] == "batch" and job["request_counts"]["total"] == 1
    with Remask(live.url, API_KEY) as rm:
        rm.wait_job(job["id"], poll_interval=0.05, timeout=60)
    assert jobs(live, "status", job["id"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "completed"
    assert jobs(live, "results", job["id"]) == 0
    assert [json.loads(x)["custom_id"] for x in capsys.readouterr().out.splitlines()] == ["only"]

    slow = write_jsonl(tmp_path / "slow.jsonl", [item(f"{SLOW}x")])
    assert jobs(live, "submit", str(slow)) == 0
    slow_id = json.loads(capsys.readouterr().out)["id"]
    assert jobs(live, "cancel", slow_id) == 0
    assert json.loads(capsys.readouterr().out)["status"] in ("cancelling", "cancelled")
    with Remask(live.url, API_KEY) as rm:
        assert rm.wait_job(slow_id, poll_interval=0.05, timeout=30).status == "cancelled"


def test_server_errors_print_the_message_and_exit_non_zero(live: Live, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps(item("a")) + "\n" + '{"custom_id": "b", "url": "/v1/nope", "body": {}}\n')
    assert jobs(live, "submit", str(src), "--wait") == 1
    err = capsys.readouterr().err
    assert err.startswith("remask: error: ") and "(field: line 2.url)" in err
    assert jobs(live, "status", "batch_unknown") == 1
    assert "remask: error: " in capsys.readouterr().err
    assert main(["jobs", "status", "x", "--url", live.url, "--api-key", "wrong"]) == 1
    assert "the API key is not valid" in capsys.readouterr().err
    assert main(["jobs", "status", "x", "--url", "http://127.0.0.1:9"]) == 1
    assert "could not reach the server" in capsys.readouterr().err


def test_write_atomic_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")

    def rows():
        yield '{"a": 1}'
        raise RuntimeError("the server went away")

    with pytest.raises(RuntimeError):
        write_atomic(target, rows())
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
    assert write_atomic(target, ['{"a": 1}', '{"b": 2}\n']) == 2 and target.read_text() == '{"a": 1}\n{"b": 2}\n'
