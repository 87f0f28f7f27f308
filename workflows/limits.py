"""Request limits: what an operator allows in one request, and the one check that applies them.

A direct HTTP request and a line of a batch job are the same request models
(:mod:`workflows.requests`) checked against the same :class:`Limits`, so every bound is
written once:

* a *static* bound (``ge``/``le`` of a field, e.g. ``temperature <= 2``) lives on the field;
* an *operator* bound lives here, as a field of :class:`Limits`; a request field names the
  limit that bounds it with :func:`limited` (``Field(..., json_schema_extra=limited("max_tokens"))``).

:func:`check_limits` applies the operator bounds to a validated request (the HTTP routes and
the batch validation both call it), and :func:`document_limits` writes the configured values
into an OpenAPI document as ``maximum`` / ``maxLength`` / ``maxItems``, so the published
schema states the bounds the server enforces. The request field carries the limit's name
under :data:`LIMIT_KEY` in that document too.

This module lives in ``workflows`` (not in the HTTP layer) because the job queue validates
batch lines with it and ``workflows`` never imports ``services``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CEILING_TOKENS = 1024  # the most max_tokens an operator may allow (and a request's static bound)
CEILING_STEPS = 1024  # the most denoising steps an operator may allow
LIMIT_KEY = "x-remask-limit"  # names the Limits field that bounds a request field (schema extension)

Measure = Literal["chars", "items", "value"]
# what each limit measures, and the JSON Schema keyword that states it
MEASURES: dict[str, tuple[Measure, str]] = {
    "max_text_chars": ("chars", "maxLength"),
    "max_spans": ("items", "maxItems"),
    "max_tokens": ("value", "maximum"),
    "max_steps": ("value", "maximum"),
}
_SCHEMA_TYPE = {"maxLength": "string", "maxItems": "array", "maximum": "integer"}


class Limits(BaseModel):
    """Request limits; a request over one is refused with the status given per field."""

    model_config = ConfigDict(extra="forbid")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="largest request body (413 over it)")
    max_job_bytes: int = Field(64 << 20, ge=1024, description="largest batch job submission (413 over it)")
    max_text_chars: int = Field(200_000, ge=1, description="longest prompt+suffix, text or code (422 over it)")
    max_spans: int = Field(64, ge=1, description="most spans in one revise request (422 over it)")
    max_tokens: int = Field(256, ge=1, le=CEILING_TOKENS,
                            description="largest max_tokens of a completion (422 over it)")
    max_steps: int = Field(128, ge=1, le=CEILING_STEPS, description="largest denoising step budget (422 over it)")


class RequestRefused(ValueError):
    """A request over an operator limit, or refused by a check across its fields.

    ``param`` is the request field at fault (a dotted path), ``code`` a stable error code;
    the HTTP API answers it with 422, a batch submission reports it on the item's line.
    """

    def __init__(self, param: str, message: str, code: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param, self.message, self.code = param, message, code


def limited(limit: str) -> dict[str, Any]:
    """``json_schema_extra`` of a request field bounded by the operator limit ``limit``."""
    if limit not in MEASURES:
        raise ValueError(f"unknown limit {limit!r}; one of {', '.join(MEASURES)}")
    return {LIMIT_KEY: limit}


def limited_fields(model: type[BaseModel]) -> Iterator[tuple[str, str]]:
    """(field name, limit name) of every field of ``model`` bounded by an operator limit."""
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and LIMIT_KEY in extra:
            yield name, str(extra[LIMIT_KEY])


def _size(value: Any, measure: Measure) -> int:
    if measure == "value":
        return int(value)
    if measure == "chars":  # a one-string list (an OpenAI list prompt) counts as its string
        return sum(len(s) for s in value) if isinstance(value, list) else len(value)
    return len(value)


def check_limits(request: BaseModel, limits: Limits) -> None:
    """Raise :class:`RequestRefused` naming the first field of ``request`` over its limit.

    The characters of every field bounded by ``max_text_chars`` count together (prompt and
    suffix share one budget) and are checked first, reported at the first of those fields;
    then the other limits, in field order. Unset (None) fields pass.
    """
    bounded = [(name, limit, getattr(request, name)) for name, limit in limited_fields(type(request))]
    texts = [(name, _size(value, "chars")) for name, limit, value in bounded
             if value is not None and MEASURES[limit][0] == "chars"]
    chars = sum(n for _, n in texts)
    if texts and chars > limits.max_text_chars:
        raise RequestRefused(texts[0][0], f"{chars} characters, over the limit of {limits.max_text_chars}",
                             "text_too_long")
    for name, limit, value in bounded:
        measure, bound = MEASURES[limit][0], getattr(limits, limit)
        if value is None or measure == "chars" or _size(value, measure) <= bound:
            continue
        if measure == "items":
            raise RequestRefused(name, f"{len(value)} {name}, over the limit of {bound}", "too_many_" + name)
        raise RequestRefused(name, f"{value} is over the limit of {bound}", "over_limit")


def document_limits(schema: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """Write ``limits`` into an OpenAPI document (in place; returned for convenience).

    Every property that names a limit under :data:`LIMIT_KEY` gets the limit's keyword on
    each of its sub-schemas of the matching type (the string of ``str | list[str]``, the
    array of ``list[...] | None``); an existing static bound is kept when it is tighter.
    """
    def walk(node: Any) -> None:
        if isinstance(node, list):
            for x in node:
                walk(x)
        elif isinstance(node, dict):
            if node.get(LIMIT_KEY) in MEASURES:
                _, keyword = MEASURES[node[LIMIT_KEY]]
                _bound_schema(node, keyword, getattr(limits, node[LIMIT_KEY]))
            for x in node.values():
                walk(x)

    walk(schema)
    return schema


def _bound_schema(node: Any, keyword: str, bound: int) -> None:
    """Set ``keyword`` (the tighter of ``bound`` and the one there) on every sub-schema of its type."""
    if isinstance(node, list):
        for x in node:
            _bound_schema(x, keyword, bound)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == _SCHEMA_TYPE[keyword]:
        node[keyword] = min(bound, node.get(keyword, bound))
    # an array's items are bounded too for lengths (the string of a list prompt), never
    # for counts (the pairs of a span list are not spans lists)
    for key in ("anyOf", "oneOf", "allOf") if keyword == "maxItems" else ("anyOf", "oneOf", "allOf", "items"):
        if key in node:
            _bound_schema(node[key], keyword, bound)


def check_input(text: str, max_chars: int, noun: str, task: str) -> None:
    """A pipeline's own check of its input: ValueError for an empty text or one over its
    ``max_chars`` option (``noun``: "text", "code"; ``task``: what it would have done)."""
    if not text:
        raise ValueError(f"{noun} is empty: there is nothing to {task}")
    if len(text) > max_chars:
        raise ValueError(f"{noun} has {len(text)} characters, over the limit of {max_chars}")
