"""Markdown pieces: tables, values, and the generic rendering of any benchmark's JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any


def fmt(value: Any) -> str:
    """A figure as table text: numbers as printed by the benchmark, booleans as yes/no."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return f"`{json.dumps(value)}`"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _flatten(figures: dict[str, Any],
             prefix: str = "") -> tuple[list[tuple[str, Any]], list[tuple[str, list[dict[str, Any]]]]]:
    """Scalars as (dotted key, value); lists of objects kept apart, to become their own tables."""
    scalars: list[tuple[str, Any]] = []
    records: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            s, r = _flatten(value, name + ".")
            scalars += s
            records += r
        elif _is_records(value):
            records.append((name, value))
        else:
            scalars.append((name, value))
    return scalars, records


def generic_tables(figures: dict[str, Any]) -> list[str]:
    """Any benchmark's JSON as markdown: one figure/value table of its scalars (nested keys
    dotted), then one table per list of objects with the union of their keys as columns."""
    scalars, records = _flatten(figures)
    out = []
    if scalars:
        out.append(table(("figure", "value"), scalars))
    for name, items in records:
        columns: list[str] = []
        for item in items:
            columns += [k for k in item if k not in columns]
        out.append(f"`{name}`:\n\n" + table(columns, ([item.get(c) for c in columns] for item in items)))
    return out
