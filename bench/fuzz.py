"""Schema fuzzing of the HTTP API: schemathesis cases against the real app, counted.

``remask bench fuzz --json`` starts the real FastAPI app in this process (the routes,
validation, middleware and error handlers over a :class:`~services.api.LocalEngine`, with an
embedded Valkey behind the ``/v1/jobs`` routes) under uvicorn on a free loopback port, loads
the app's own ``/openapi.json`` and sends schemathesis cases to every operation: ``--examples``
per operation in each generation mode (``positive``: requests the schema admits; ``negative``:
requests it does not), deterministic for a ``--seed``. Every answer goes through four checks:

- ``not_a_server_error``: no 5xx;
- ``status_code_conformance``: the status is documented for the operation;
- ``content_type_conformance``: the content type is documented for that status;
- ``response_schema_conformance``: the body matches the documented schema.

Figures: ``cases``, ``server_errors``, ``undocumented_statuses``, ``content_type_violations``,
``schema_violations``, ``failing_cases``, ``statuses`` (count per status), ``cases_by_operation``,
``seconds`` and the first few ``failures`` with a curl line each. Targets: 0 of each over
>= 10,000 cases. ``--models tiny`` (the default) runs random small models over the shipped
tokenizer, so the cases measure the HTTP layer rather than the models' speed; ``shipped``
loads ``models/``. The limits are small (``SMALL_LIMITS``) for the same reason.

The test suite runs :func:`fuzz` with a few examples per operation (tests/services/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SMALL_LIMITS = {"max_body_bytes": 64 << 10, "max_text_chars": 1500, "max_spans": 8, "max_tokens": 16,
                "max_steps": 8, "max_job_bytes": 256 << 10}
MODES = ("positive", "negative")
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance")
FIGURE = {"not_a_server_error": "server_errors", "status_code_conformance": "undocumented_statuses",
          "content_type_conformance": "content_type_violations",
          "response_schema_conformance": "schema_violations"}
MAX_KEPT = 20  # failures kept with their reproduction


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--examples", type=int, default=460, help="cases per operation and generation mode")
    p.add_argument("--seed", type=int, default=0, help="the cases are the same for the same seed")
    p.add_argument("--modes", default=",".join(MODES), help="generation modes: positive, negative or both")
    p.add_argument("--models", default="tiny", choices=["tiny", "shipped"],
                   help="tiny: random small models over the shipped tokenizer; shipped: models/")


@dataclass
class FuzzReport:
    """What the cases found; :meth:`figures` is the benchmark's JSON."""

    cases: int = 0
    violations: Counter[str] = field(default_factory=Counter)  # check name -> failing cases
    failing_cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_KEPT
    seconds: float = 0.0

    def figures(self) -> dict[str, Any]:
        return {"cases": self.cases, **{FIGURE[c]: self.violations[c] for c in CHECKS},
                "failing_cases": self.failing_cases, "statuses": dict(sorted(self.statuses.items())),
                "cases_by_operation": dict(sorted(self.by_operation.items())), "seconds": round(self.seconds, 1),
                "failures": self.failures}


def _checks() -> dict[str, Callable[..., Any]]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return {"not_a_server_error": not_a_server_error, "status_code_conformance": status_code_conformance,
            "content_type_conformance": content_type_conformance,
            "response_schema_conformance": response_schema_conformance}


def fuzz(base_url: str, examples: int, seed: int = 0, modes: tuple[str, ...] = MODES,
         operations: Callable[[str], bool] | None = None) -> FuzzReport:
    """Fuzz the API at ``base_url`` (loopback) from its own /openapi.json; see the module doc.

    ``operations`` picks operations by label (``"POST /v1/revise"``); default: all of them.
    """
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fixed_seed
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.core.result import Err

    if not base_url.startswith(("http://127.0.0.1:", "http://localhost:", "http://[::1]:")):
        raise ValueError(f"fuzzing is for a service on this machine (loopback), not {base_url!r}")
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    checks = _checks()
    report = FuzzReport()
    t0 = time.perf_counter()
    session = requests.Session()

    def run_case(case: Any) -> None:
        response = case.call(base_url=base_url, session=session, timeout=60)
        _record(report, case, response, _failed_checks(case, response, checks))

    for i, result in enumerate(schema.get_all_operations()):
        if isinstance(result, Err):  # the app's own document must load whole
            raise result.err()
        operation = result.ok()
        if operations is not None and not operations(operation.label):
            continue
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=GenerationMode(mode))

            # nothing raises inside, so hypothesis neither shrinks nor stops: every case is counted
            @fixed_seed(seed * 1000 + i * 2 + MODES.index(mode))
            @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def each(case: Any) -> None:
                run_case(case)

            try:
                each()
            except Unsatisfiable:  # no case of this mode exists (a negative case of a route without inputs)
                continue
    session.close()
    report.seconds = time.perf_counter() - t0
    return report


def _failed_checks(case: Any, response: Any, checks: dict[str, Any]) -> list[tuple[str, str]]:
    """``(check, what failed)`` for every check the response violates."""
    from schemathesis.core.failures import FailureGroup

    failed = []
    for name, check in checks.items():
        try:
            case.validate_response(response, checks=[check])
        except FailureGroup as exc:
            failed.append((name, "; ".join(f.title for f in exc.exceptions)))
    return failed


def _record(report: FuzzReport, case: Any, response: Any, failed: list[tuple[str, str]]) -> None:
    """Count one case in ``report``; keep the first failing ones whole."""
    report.cases += 1
    report.statuses[response.status_code] += 1
    report.by_operation[case.operation.label] += 1
    for name, _ in failed:
        report.violations[name] += 1
    if failed:
        report.failing_cases += 1
        if len(report.failures) < MAX_KEPT:
            report.failures.append({"operation": case.operation.label, "status": response.status_code,
                                    "checks": dict(failed), "response": response.text[:300],
                                    "curl": case.as_curl_command()[:1500]})


# --- the app under test ----------------------------------------------------------------------

def _tiny_engines(seed: int = 0) -> tuple[Any, Any]:
    """A random small refiner and drafter over the shipped tokenizer (fast on any CPU)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from drafter import Drafter
    from refiner.text import tiny_text_refiner

    tokenizer = AutoTokenizer.from_pretrained("models/tokenizer")
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    drafter = Drafter(LlamaForCausalLM(cfg).eval(), tokenizer, name="tiny-drafter")
    return tiny_text_refiner(tokenizer, seed=seed), drafter


@contextlib.contextmanager
def serve_app(models: tuple[Any, Any] | str = "tiny") -> Iterator[str]:
    """The real app on a free loopback port, with a job queue on an embedded Valkey; yields its URL.

    ``models``: a (refiner, drafter) pair, or ``"tiny"`` / ``"shipped"`` (see the module doc).
    """
    from unittest import mock

    import redis
    import uvicorn

    from services.api import LocalEngine, Settings, build_app
    from workflows.engines import load_engines
    from workflows.limits import Limits
    from workflows.queue import EmbeddedValkey, JobQueue

    if isinstance(models, tuple):
        refiner, drafter = models
    elif models == "shipped":
        engines = load_engines()
        refiner, drafter = engines.refiner, engines.drafter
    else:
        refiner, drafter = _tiny_engines()
    # the fuzzer's webhook host names must never leave this machine as DNS queries: every
    # name is answered "does not resolve" (the API's refusal path); IP literals need no lookup
    with tempfile.TemporaryDirectory(prefix="remask-fuzz-") as tmp, \
            mock.patch("workflows.queue.webhook._getaddrinfo", side_effect=socket.gaierror("no lookups while fuzzing")):
        valkey = EmbeddedValkey(Path(tmp))
        valkey.start()
        client = redis.Redis.from_url(valkey.url)
        engine = LocalEngine(refiner, drafter)
        app = build_app(engine, Settings(api_keys=[], limits=Limits(**SMALL_LIMITS)), JobQueue(client))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not server.started:
                if time.monotonic() > deadline or not thread.is_alive():
                    raise RuntimeError("uvicorn did not start")
                time.sleep(0.02)
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(10)
            sock.close()
            engine.close()
            client.close()
            valkey.stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' notes, once per forward pass
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    with serve_app(args.models) as url:
        report = fuzz(url, args.examples, args.seed, modes)
    return {"benchmark": "fuzz", "models": args.models, "examples_per_operation_and_mode": args.examples,
            "modes": list(modes), "seed": args.seed, "limits": SMALL_LIMITS, **report.figures()}


if __name__ == "__main__":  # python -m bench.fuzz
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    print(json.dumps(run(parser.parse_args()), indent=2))
