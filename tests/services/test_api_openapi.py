"""The published OpenAPI document states what the server enforces: its limits, and every status."""

from __future__ import annotations

from typing import Any, cast

import httpx
import pytest

from services.api import LocalEngine, Settings, build_app
from tests.services.conftest import TEST_LIMITS
from workflows.limits import CEILING_TOKENS, Limits
from workflows.options import SEED_MAX
from workflows.queue import JobQueue


def subschemas(spec: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    """The parts of a property's schema of JSON type ``type_`` (through anyOf and array items)."""
    found, stack = [], [spec]
    while stack:
        node = stack.pop()
        if node.get("type") == type_:
            found.append(node)
        stack.extend(node.get("anyOf", []))
        if isinstance(node.get("items"), dict) and type_ != "array":  # a list prompt's string
            stack.append(node["items"])
    return found


def bound(doc: dict[str, Any], model: str, field: str, type_: str, keyword: str) -> set[Any]:
    spec = doc["components"]["schemas"][model]["properties"][field]
    parts = subschemas(spec, type_)
    assert parts, f"{model}.{field} has no {type_} part: {spec}"
    return {p.get(keyword) for p in parts}


@pytest.fixture(scope="module")
def doc(api_url: str, http: httpx.Client) -> dict[str, Any]:
    return http.get(f"{api_url}/openapi.json").json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(("model", "field", "type_", "keyword", "value"), [
    ("CompletionRequest", "max_tokens", "integer", "maximum", TEST_LIMITS.max_tokens),
    ("FimRequest", "max_tokens", "integer", "maximum", TEST_LIMITS.max_tokens),
    ("CompletionRequest", "steps", "integer", "maximum", TEST_LIMITS.max_steps),
    ("FimRequest", "steps", "integer", "maximum", TEST_LIMITS.max_steps),
    ("ReviseRequest", "steps", "integer", "maximum", TEST_LIMITS.max_steps),
    ("RepairRequest", "steps", "integer", "maximum", TEST_LIMITS.max_steps),
    ("CompletionRequest", "prompt", "string", "maxLength", TEST_LIMITS.max_text_chars),
    ("CompletionRequest", "suffix", "string", "maxLength", TEST_LIMITS.max_text_chars),
    ("FimRequest", "prompt", "string", "maxLength", TEST_LIMITS.max_text_chars),
    ("ReviseRequest", "text", "string", "maxLength", TEST_LIMITS.max_text_chars),
    ("RepairRequest", "code", "string", "maxLength", TEST_LIMITS.max_text_chars),
    ("ReviseRequest", "spans", "array", "maxItems", TEST_LIMITS.max_spans),
    ("CompletionRequest", "n", "integer", "minimum", 1),
    ("CompletionRequest", "n", "integer", "maximum", 1),
    ("CompletionRequest", "seed", "integer", "maximum", SEED_MAX),
    ("CompletionRequest", "seed", "integer", "minimum", 0),
    ("FimRequest", "random_seed", "integer", "maximum", SEED_MAX),
    ("CompletionRequest", "temperature", "number", "maximum", 2.0),
])
def test_request_bounds_are_the_configured_limits(doc: dict[str, Any], model: str, field: str, type_: str,
                                                   keyword: str, value: int) -> None:
    assert bound(doc, model, field, type_, keyword) == {value}


def test_another_configuration_publishes_its_own_limits(api_models: Any) -> None:
    wide = Limits(max_tokens=CEILING_TOKENS, max_steps=100, max_text_chars=10, max_spans=1)
    engine = LocalEngine(*api_models)
    doc = build_app(engine, Settings(api_keys=[], limits=wide)).openapi()
    engine.close()
    assert bound(doc, "CompletionRequest", "max_tokens", "integer", "maximum") == {CEILING_TOKENS}
    assert bound(doc, "CompletionRequest", "steps", "integer", "maximum") == {100}
    assert bound(doc, "RepairRequest", "steps", "integer", "maximum") == {100}
    assert bound(doc, "ReviseRequest", "text", "string", "maxLength") == {10}
    assert bound(doc, "ReviseRequest", "spans", "array", "maxItems") == {1}
    # every step budget has the one static bound of workflows.options, so each endpoint publishes the limit
    tight = Limits(max_steps=1000)
    engine = LocalEngine(*api_models)
    doc = build_app(engine, Settings(api_keys=[], limits=tight)).openapi()
    engine.close()
    assert bound(doc, "RepairRequest", "steps", "integer", "maximum") == {1000}
    assert bound(doc, "ReviseRequest", "steps", "integer", "maximum") == {1000}


def test_every_job_route_that_can_answer_404_documents_it(api_models: Any) -> None:
    engine = LocalEngine(*api_models)
    # the document is built from the routes alone: a queue client that is never called will do
    doc = build_app(engine, Settings(api_keys=[]), cast(JobQueue, object())).openapi()
    engine.close()
    routes = [("/v1/jobs", "get"), ("/v1/jobs/{job_id}", "get"), ("/v1/jobs/{job_id}/cancel", "post"),
              ("/v1/jobs/{job_id}/results", "get"), ("/v1/jobs/{job_id}/errors", "get")]
    for path, method in routes:
        answers = doc["paths"][path][method]["responses"]
        assert "404" in answers, (path, method)
        assert answers["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
