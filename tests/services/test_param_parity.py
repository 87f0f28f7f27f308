"""One request, four ways in: directly over HTTP, as a batch job line, through the SDK and the CLI.

Each way ends in the same pipeline, whose audit record lists every parameter it ran with
(the options a request set and the defaults of those it left out). The four records must
list the same parameters, so a request means the same thing whichever way it arrives.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from client import Remask
from services.api import LocalEngine, Settings, build_app
from services.cli import main
from tests.services.conftest import LiveServer
from tests.services.test_cli_edit import model_dirs  # noqa: F401 - a fixture: tiny models saved to directories
from workflows.engines import Engines, load_drafter, load_refiner
from workflows.queue import JobQueue, Keys, ModelHandler, Worker, WorkerConfig

KEYS = Keys("parity")
PREFIX, SUFFIX = "def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"
TEXT = "The cat sat on teh mat, and the dog sat on the rug.\n"
CODE = "def f(:\n    return 1\n"


@dataclass
class Case:
    """The same request for each way in: an HTTP body, CLI arguments and an SDK call."""

    path: str
    body: dict[str, Any]
    cli: list[str]
    sdk: Callable[[Remask], Any] | None  # None: the SDK has no call for this endpoint
    cli_input: str = ""  # the file the CLI reads (default: the body's text or code)
    id: str = ""


CASES = [
    Case("/v1/completions", {"prompt": PREFIX, "suffix": SUFFIX}, ["infill"],
         lambda rm: rm.infill(PREFIX, SUFFIX), PREFIX + "<FILL>" + SUFFIX, "completion-defaults"),
    Case("/v1/completions", {"prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 6, "mode": "diffusion", "steps": 2,
                             "seed": 5, "temperature": 0.5},
         ["infill", "--max-tokens", "6", "--mode", "diffusion", "--steps", "2", "--seed", "5", "--temperature", "0.5"],
         lambda rm: rm.infill(PREFIX, SUFFIX, max_tokens=6, mode="diffusion", steps=2, seed=5, temperature=0.5),
         PREFIX + "<FILL>" + SUFFIX, "completion-options"),
    Case("/v1/fim/completions", {"prompt": PREFIX, "suffix": SUFFIX, "max_tokens": None}, ["infill"], None,
         PREFIX + "<FILL>" + SUFFIX, "fim-defaults"),
    Case("/v1/revise", {"text": TEXT, "spans": [[15, 18]]}, ["revise", "--span", "15:18"],
         lambda rm: rm.revise(TEXT, spans=[(15, 18)]), id="revise-spans-defaults"),
    Case("/v1/revise", {"text": TEXT, "steps": 2, "seed": 1, "max_fraction": 0.3},
         ["revise", "--steps", "2", "--seed", "1", "--max-fraction", "0.3"],
         lambda rm: rm.revise(TEXT, steps=2, seed=1, max_fraction=0.3), id="revise-found-options"),
    Case("/v1/repair", {"code": CODE, "rounds": 1}, ["repair", "--rounds", "1"],
         lambda rm: rm.repair(CODE, rounds=1), id="repair"),
]


@pytest.fixture(scope="module")
def engines(model_dirs: Path) -> Engines:  # noqa: F811 - the fixture imported above
    return Engines(load_refiner(model_dirs / "refiner"), load_drafter(model_dirs / "drafter"))


@pytest.fixture(scope="module")
def url(engines: Engines, r: redis.Redis) -> Iterator[str]:
    """The app over the saved models, with a job queue on the module's Valkey server."""
    engine = LocalEngine(engines.refiner, engines.drafter)
    with LiveServer(build_app(engine, Settings(api_keys=[]), JobQueue(r, KEYS))) as server:
        yield server.url
    engine.close()


def parameters(answer: dict[str, Any]) -> dict[str, Any]:
    """The audit record's parameters: under ``remask`` in an HTTP answer, at the top of a pipeline's result."""
    return dict(answer.get("remask", answer)["audit"]["parameters"])


def direct(http: httpx.Client, url: str, case: Case) -> dict[str, Any]:
    resp = http.post(f"{url}{case.path}", json=case.body)
    assert resp.status_code == 200, resp.text
    return parameters(resp.json())


def batch_line(http: httpx.Client, url: str, r: redis.Redis, engines: Engines, case: Case) -> dict[str, Any]:
    line = {"custom_id": case.id, "method": "POST", "url": case.path, "body": case.body}
    resp = http.post(f"{url}/v1/jobs", json={"requests": [line]})
    assert resp.status_code == 200, resp.text
    Worker(r, ModelHandler(engines), WorkerConfig(lease_s=60), queue=JobQueue(r, KEYS)).run(stop_when_empty=True)
    result = json.loads(http.get(f"{url}/v1/jobs/{resp.json()['id']}/results").text)
    assert result["response"]["status_code"] == 200, result
    return parameters(result["response"]["body"])


def sdk(url: str, call: Callable[[Remask], Any]) -> dict[str, Any]:
    with Remask(url, api_key="") as rm:
        audit = call(rm).audit
    assert audit is not None
    return dict(audit["parameters"])


def cli(dirs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: Case) -> dict[str, Any]:
    source = tmp_path / "input.txt"
    source.write_text(case.cli_input or case.body.get("text") or case.body["code"])
    command, *flags = case.cli
    models = ["--refiner", str(dirs / "refiner")]
    if command != "repair":  # the only command without a drafter
        models += ["--drafter", str(dirs / "drafter")]
    main([command, str(source), *models, "--json", *flags])  # repair's exit status says whether the code parses
    return parameters(json.loads(capsys.readouterr().out))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_same_request_runs_with_the_same_parameters_every_way_in(
        case: Case, url: str, http: httpx.Client, r: redis.Redis, engines: Engines, model_dirs: Path,  # noqa: F811
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ways = {"http": direct(http, url, case), "batch": batch_line(http, url, r, engines, case),
            "cli": cli(model_dirs, tmp_path, capsys, case)}
    if case.sdk is not None:
        ways["sdk"] = sdk(url, case.sdk)
    for name, params in ways.items():
        assert params == ways["http"], name
    for option, value in case.body.items():  # the options the request set are the ones that ran
        if option in ways["http"] and value is not None:
            assert ways["http"][option] == value, option
