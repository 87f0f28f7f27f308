"""Schema fuzzing in the suite: schemathesis against the real app over loopback HTTP.

The app is the one users get (routes, validation, middleware, error handlers, a job queue on
a real Valkey) over the tiny test models. Every operation of its own /openapi.json gets
:data:`EXAMPLES` cases per generation mode (valid and invalid by the schema), the same cases
on every run (a fixed seed). ``remask bench fuzz`` runs the same driver at >= 10,000 cases.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.fuzz import FuzzReport, fuzz, serve_app

EXAMPLES = 12  # per operation and mode: about 300 cases in all
OPERATIONS = {"GET /health", "GET /ready", "GET /metrics", "GET /v1/models", "POST /v1/completions",
              "POST /v1/fim/completions", "POST /v1/revise", "POST /v1/repair", "POST /v1/jobs", "GET /v1/jobs",
              "GET /v1/jobs/{job_id}", "POST /v1/jobs/{job_id}/cancel", "GET /v1/jobs/{job_id}/results",
              "GET /v1/jobs/{job_id}/errors"}


@pytest.fixture(scope="module")
def report(api_models: Any) -> FuzzReport:
    with serve_app(api_models) as url:
        return fuzz(url, EXAMPLES, seed=0)


def failures_of(report: FuzzReport, check: str) -> list[dict[str, Any]]:
    return [f for f in report.failures if check in f["checks"]]


def test_every_operation_is_fuzzed(report: FuzzReport) -> None:
    assert set(report.by_operation) == OPERATIONS
    # operations with inputs get both modes' cases; /health, /ready and /metrics have one case each
    assert all(n >= EXAMPLES for op, n in report.by_operation.items() if "/v1/" in op), report.by_operation
    assert report.cases >= 11 * EXAMPLES * 2
    assert {200, 404, 422} <= set(report.statuses)  # valid, unknown jobs and refused inputs were all reached


def test_no_server_errors(report: FuzzReport) -> None:
    assert report.violations["not_a_server_error"] == 0, failures_of(report, "not_a_server_error")
    assert not [s for s in report.statuses if s >= 500]


def test_every_status_is_documented(report: FuzzReport) -> None:
    assert report.violations["status_code_conformance"] == 0, failures_of(report, "status_code_conformance")


def test_every_content_type_is_documented(report: FuzzReport) -> None:
    assert report.violations["content_type_conformance"] == 0, failures_of(report, "content_type_conformance")


def test_every_answer_matches_its_documented_schema(report: FuzzReport) -> None:
    assert report.violations["response_schema_conformance"] == 0, failures_of(report, "response_schema_conformance")
