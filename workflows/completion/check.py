"""The syntax check of a completion: it must not add a syntax error to the file.

The file with the candidate is compared against the file with the hole left empty. An
editor sends the whole file, which usually parses; then a candidate passes when the file
still parses. Where it does not (a file mid-edit, or context trimmed to the nearest text),
the check moves to the code around the hole: the smallest enclosing block (Python: the
lines from a line indented less than the hole to where that indentation returns) that
parses with the hole empty. Where no block does, a candidate passes when the first error
stays where it was, after the candidate. A language remask has no parser for gets no
check, and the result says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from workflows.syntax import ALIASES, LANGUAGES, TREE_SITTER_GRAMMARS, check

BLOCK_TRIES = 6  # enclosing blocks tried, innermost first, before falling back to the first error
WRAPPER = "if True:\n"  # makes an indented block parse on its own, candidate lines kept as they are


@dataclass(frozen=True)
class Region:
    """The code the check parses: ``before`` + candidate + ``after``; ``baseline`` is the
    offset of the first error with the hole empty (None: it parses)."""

    before: str
    after: str
    baseline: int | None


@dataclass(frozen=True)
class SyntaxJudge:
    """Decides, for one hole, which candidates keep the file's syntax."""

    language: str | None  # None: no parser for the file's language, so no check
    region: Region | None = None
    tentative: bool = False  # Python guessed though no block around the hole parses: only a candidate that
    # makes one parse proves it (see :meth:`confirmed`)

    @property
    def checked(self) -> bool:
        return self.language is not None

    def accepts(self, candidate: str) -> bool:
        """Whether ``candidate`` adds no syntax error (always, when the check is skipped)."""
        if self.language is None or self.region is None:
            return True
        r = self.region
        if self.language != "python":
            return _tree_sitter_accepts(r, candidate, self.language)
        first = _first_error(r.before + candidate + r.after, "python")
        if first is None:
            return True
        if r.baseline is None or self.tentative:
            return False
        # the old error may only have moved by the candidate's length, and past the line the candidate ends on
        # (an error right after it, such as "x +" before a line break, is the candidate's own)
        code = r.before + candidate + r.after
        line_end = code.find("\n", len(r.before) + len(candidate))
        return first > (line_end if line_end >= 0 else len(code)) and first - len(candidate) >= r.baseline


def confirmed(syntax: SyntaxJudge, accepted: int) -> SyntaxJudge:
    """``syntax`` once its candidates are judged: a tentative guess that no candidate bore out
    (``accepted`` 0) was wrong, and the check is skipped."""
    return SyntaxJudge(None) if syntax.tentative and not accepted else syntax


def judge(prefix: str, suffix: str, language: str | None) -> SyntaxJudge:
    """The check for the hole between ``prefix`` and ``suffix``.

    ``language``: a language name or alias; a language without a parser here skips the
    check; None guesses: Python when some block around the hole parses as Python, else a
    tree-sitter grammar that parses the file with the fewest errors, else Python tentatively (see
    :func:`confirmed`).
    """
    if language is not None:
        lang = ALIASES.get(language.lower(), language.lower())
        if lang not in LANGUAGES:
            return SyntaxJudge(None)
        return SyntaxJudge(lang, _python_region(prefix, suffix) if lang == "python" else
                           Region(prefix, suffix, None))
    region = _python_region(prefix, suffix)
    if region.baseline is None or region.baseline >= region.before.rfind("\n") + 1:
        # Python parses up to the hole's line at least: an empty hole may be the only error (an empty block)
        return SyntaxJudge("python", region)
    guessed = _tree_sitter_guess(prefix + suffix)
    if guessed:
        return SyntaxJudge(guessed, Region(prefix, suffix, None))
    # the hole itself may be what breaks Python here (half a statement): a candidate that mends it proves it
    return SyntaxJudge("python", region, tentative=True)


def _python_region(prefix: str, suffix: str) -> Region:
    """The whole text if it parses with the hole empty, else the innermost enclosing block
    that does, else the innermost block (judged by where its first error is)."""
    whole = Region(prefix, suffix, _first_error(prefix + suffix, "python"))
    if whole.baseline is None:
        return whole
    fallback = whole
    for region in _enclosing_blocks(prefix, suffix):
        if region.baseline is None:
            return region
        if fallback is whole:
            fallback = region
    return fallback


def _enclosing_blocks(prefix: str, suffix: str) -> list[Region]:
    """Blocks around the hole, innermost first: from an earlier line indented less than every
    line between it and the hole, to the first later line indented as little."""
    before_lines = prefix.split("\n")
    cursor_line = before_lines.pop()  # the part of the cursor's line before the cursor
    after_lines = suffix.split("\n")
    cursor_rest = after_lines.pop(0)
    level = _indent(cursor_line) + 1
    out: list[Region] = []
    for i in range(len(before_lines) - 1, -1, -1):
        line = before_lines[i]
        if not line.strip() or _indent(line) >= level:
            continue
        level = _indent(line)
        end = next((j for j, ln in enumerate(after_lines) if ln.strip() and _indent(ln) <= level), len(after_lines))
        wrap = WRAPPER if level else ""
        before = wrap + "\n".join([*before_lines[i:], cursor_line])
        after = "\n".join([cursor_rest, *after_lines[:end]]) + "\n"
        baseline = _first_error(before + after, "python")
        out.append(Region(before, after, baseline))
        if len(out) >= BLOCK_TRIES or level == 0:
            break
    return out


def _tree_sitter_accepts(r: Region, candidate: str, language: str) -> bool:
    """No more errors than with the hole empty, and none inside the candidate."""
    base = check(r.before + r.after, language)
    issues = check(r.before + candidate + r.after, language)
    lo, hi = len(r.before), len(r.before) + len(candidate)
    inside = any((i.start < hi and lo < i.end) or lo < i.start < hi for i in issues)
    return len(issues) <= len(base) and not inside


def _tree_sitter_guess(text: str) -> str | None:
    """The grammar that finds the fewest errors in ``text``, if one finds fewer than one per 20 lines."""
    counts = {lang: len(check(text, lang)) for lang in TREE_SITTER_GRAMMARS if lang != "json"}
    best = min(counts, key=lambda lang: counts[lang])
    return best if counts[best] <= text.count("\n") // 20 else None


def _first_error(code: str, language: str) -> int | None:
    issues = check(code, language)
    return min(i.start for i in issues) if issues else None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))
