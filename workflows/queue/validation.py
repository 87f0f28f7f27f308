"""Validation of a submission: JSONL (or a list of objects) into :class:`BatchItem` s.

Every problem is reported with the line it is on (1-based; for a JSON list, the item's
position) and the field it concerns, e.g. ``line 3, body.steps: Input should be greater
than or equal to 1``. Up to :data:`MAX_REPORTED` problems are collected at once, so a
user fixes a file in one round rather than one error per submission.

A line's body is checked by the model and against the operator limits of the endpoint it
names (:func:`workflows.queue.bodies.validate_body`), so a line is refused exactly when the
same request sent directly would be.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from workflows.limits import Limits, RequestRefused
from workflows.queue.jobs import URLS, BatchItem

MAX_LINES = 50_000  # OpenAI Batch's per-file request limit
MAX_REPORTED = 20
MAX_CUSTOM_ID = 512  # characters
ITEM_FIELDS = frozenset({"custom_id", "method", "url", "body"})


@dataclass(frozen=True)
class LineError:
    """One problem of a submission: where (line, field) and what."""

    line: int  # 1-based; 0 for the submission as a whole
    field: str  # dotted path, e.g. "body.steps"; "" for the line as a whole
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "submission"
        return f"{where}, {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class SubmissionError(ValueError):
    """A submission that does not validate; ``errors`` lists every problem found."""

    def __init__(self, errors: list[LineError]) -> None:
        self.errors = errors
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__("; ".join(str(e) for e in errors[:5]) + more)

    def to_list(self) -> list[dict[str, Any]]:
        """JSON-able problems (for a 422 answer)."""
        return [{"line": e.line, "field": e.field, "message": e.message} for e in self.errors]


def parse_submission(data: str | bytes | list[Any], max_lines: int = MAX_LINES,
                     limits: Limits | None = None) -> list[BatchItem]:
    """Validate a JSONL submission (text or bytes) or a list of item objects.

    Each body is checked against ``limits`` (default: the service's default :class:`Limits`).
    Blank lines are skipped (their numbers still count). Raises :class:`SubmissionError`.
    """
    limits = limits or Limits()
    if isinstance(data, list):
        rows: list[tuple[int, Any]] = [(i + 1, obj) for i, obj in enumerate(data)]
        return _validate(rows, max_lines, limits)
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise SubmissionError([LineError(line, "", f"not valid UTF-8 (byte {exc.start})")]) from None
    else:
        text = data
    rows = []
    errors: list[LineError] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            rows.append((n, json.loads(raw)))
        except json.JSONDecodeError as exc:
            errors.append(LineError(n, "", f"not valid JSON ({exc.msg} at column {exc.colno})"))
            rows.append((n, None))
    return _validate(rows, max_lines, limits, errors)


def _validate(rows: list[tuple[int, Any]], max_lines: int, limits: Limits,
              errors: list[LineError] | None = None) -> list[BatchItem]:
    errors = errors or []
    if not rows:
        raise SubmissionError([LineError(0, "", "the submission has no items")])
    if len(rows) > max_lines:
        raise SubmissionError([LineError(rows[max_lines][0], "",
                                         f"the submission has {len(rows)} items, over the limit of {max_lines}")])
    items: list[BatchItem] = []
    seen: dict[str, int] = {}
    for line, obj in rows:
        if obj is None:  # already reported as invalid JSON
            continue
        found = list(_check_item(line, obj, seen, limits))
        errors.extend(found)
        if not found:
            items.append(BatchItem(len(items), obj["custom_id"], obj["url"], obj["body"], obj.get("method", "POST")))
        if len(errors) >= MAX_REPORTED:
            break
    if errors:
        raise SubmissionError(errors[:MAX_REPORTED])
    return items


def _check_item(line: int, obj: Any, seen: dict[str, int], limits: Limits) -> Iterable[LineError]:
    if not isinstance(obj, dict):
        yield LineError(line, "", f"expected a JSON object, got {type(obj).__name__}")
        return
    for extra in sorted(set(obj) - ITEM_FIELDS):
        yield LineError(line, extra, "unknown field (expected custom_id, method, url, body)")
    cid = obj.get("custom_id")
    if not isinstance(cid, str) or not cid:
        yield LineError(line, "custom_id", "required: a non-empty string")
    elif len(cid) > MAX_CUSTOM_ID:
        yield LineError(line, "custom_id", f"longer than {MAX_CUSTOM_ID} characters")
    elif not _valid_unicode(cid):  # it is stored and echoed in every output line
        yield LineError(line, "custom_id", "holds a lone surrogate: send valid Unicode text")
    elif cid in seen:
        yield LineError(line, "custom_id", f"{cid!r} repeats line {seen[cid]}; custom_ids must be unique")
    else:
        seen[cid] = line
    if obj.get("method", "POST") != "POST":
        yield LineError(line, "method", f"{obj.get('method')!r}: only POST is supported")
    url = obj.get("url")
    if url not in URLS:
        yield LineError(line, "url", f"{url!r} is not one of {', '.join(URLS)}")
    body = obj.get("body")
    if not isinstance(body, dict):
        yield LineError(line, "body", "required: a JSON object")
        return
    if url in URLS:
        yield from _check_body(line, url, body, limits)


def _valid_unicode(s: str) -> bool:
    return not any("\ud800" <= ch <= "\udfff" for ch in s)


def _check_body(line: int, url: str, body: dict[str, Any], limits: Limits) -> Iterable[LineError]:
    from workflows.queue.bodies import validate_body  # imports the pipelines: only where validating

    try:
        validate_body(url, body, limits)
    except ValidationError as exc:
        for err in exc.errors():
            path = ".".join(str(x) for x in err["loc"])
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            yield LineError(line, f"body.{path}" if path else "body", msg)
    except RequestRefused as exc:  # over an operator limit
        yield LineError(line, f"body.{exc.param}", exc.message)
    except ValueError as exc:  # a rule set that does not parse, raised outside pydantic
        yield LineError(line, "body", str(exc))
