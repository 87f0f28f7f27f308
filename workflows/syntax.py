"""Does this code parse, and if not, where is it broken?

Python is checked with the standard library's ``ast`` (the reference grammar); other
languages with tree-sitter, whose trees mark ERROR and MISSING nodes. Neither executes the
code: parsing is all that happens to user input.
"""

from __future__ import annotations

import ast
import importlib
import warnings
from dataclasses import dataclass
from functools import cache
from typing import Any

# language name -> (grammar module, attribute returning the language pointer)
TREE_SITTER_GRAMMARS: dict[str, tuple[str, str]] = {
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "json": ("tree_sitter_json", "language"),
}
ALIASES = {"py": "python", "python3": "python", "js": "javascript", "ts": "typescript", "rs": "rust"}
LANGUAGES: tuple[str, ...] = ("python", *TREE_SITTER_GRAMMARS)


@dataclass(frozen=True)
class SyntaxIssue:
    """A broken region: code-point offsets [start, end) and what the parser said."""

    start: int
    end: int
    message: str


def normalize_language(language: str) -> str:
    lang = ALIASES.get(language.lower(), language.lower())
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; supported: {', '.join(LANGUAGES)}")
    return lang


def check(code: str, language: str = "python") -> list[SyntaxIssue]:
    """Every syntax problem found; empty when the code parses."""
    lang = normalize_language(language)
    if lang == "python":
        return _python_issues(code)
    return _tree_sitter_issues(code, lang)


def parses(code: str, language: str = "python") -> bool:
    return not check(code, language)


def _line_starts(code: str) -> list[int]:
    starts = [0]
    for i, ch in enumerate(code):
        if ch == "\n":
            starts.append(i + 1)
    return starts


def _python_issues(code: str) -> list[SyntaxIssue]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences etc. are not errors
            ast.parse(code)
        return []
    except SyntaxError as exc:
        starts = _line_starts(code)
        line = max(1, min(exc.lineno or 1, len(starts)))
        col = max(0, (exc.offset or 1) - 1)
        start = min(starts[line - 1] + col, len(code))
        end_line = getattr(exc, "end_lineno", None) or line
        end_col = getattr(exc, "end_offset", None)
        if end_col is not None and end_line <= len(starts):
            end = min(starts[end_line - 1] + max(end_col - 1, 0), len(code))
        else:
            end = start
        return [SyntaxIssue(start, max(start, end), f"{type(exc).__name__}: {exc.msg} (line {line})")]


@cache
def _parser(lang: str) -> Any:
    import tree_sitter

    module, attr = TREE_SITTER_GRAMMARS[lang]
    grammar = importlib.import_module(module)
    return tree_sitter.Parser(tree_sitter.Language(getattr(grammar, attr)()))


def _tree_sitter_issues(code: str, lang: str) -> list[SyntaxIssue]:
    data = code.encode("utf-8")
    tree = _parser(lang).parse(data)
    if not tree.root_node.has_error:
        return []
    # tree-sitter reports byte offsets; map them to code points
    byte_to_char = _byte_to_char(code)
    issues: list[SyntaxIssue] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_missing:
            at = byte_to_char[node.start_byte]
            issues.append(SyntaxIssue(at, at, f"missing {node.type!r}"))
        elif node.is_error:
            issues.append(SyntaxIssue(byte_to_char[node.start_byte], byte_to_char[node.end_byte],
                                      "unexpected syntax"))
        if node.has_error:
            stack.extend(node.children)
    issues.sort(key=lambda i: (i.start, i.end))
    return _innermost(issues)


def _innermost(issues: list[SyntaxIssue]) -> list[SyntaxIssue]:
    """Drop issues that contain another issue: the smallest region is the useful one."""
    out = []
    for i in issues:
        contains_other = any(
            o is not i and i.start <= o.start and o.end <= i.end and (o.start, o.end) != (i.start, i.end)
            for o in issues
        )
        if not contains_other:
            out.append(i)
    return out


def _byte_to_char(code: str) -> list[int]:
    table = []
    for ci, ch in enumerate(code):
        table.extend([ci] * len(ch.encode("utf-8")))
    table.append(len(code))
    return table
