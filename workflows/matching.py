"""Text matching for compliance rules in time linear in the text: RE2 for every pattern a user writes.

Python's ``re`` backtracks: ``(a+)+$`` takes time exponential in the text, and holds the GIL
meanwhile, so one rule could freeze every thread of the process. RE2 (google-re2) never
backtracks: a search costs at most (text bytes x program size) steps, and it releases the GIL
while it runs. So:

* a user's ``regex`` rule compiles with :func:`compile_user_pattern` (RE2 syntax: no
  backreferences, no lookarounds; ``\\w``, ``\\d`` and ``\\b`` are ASCII) and is refused, with
  the reason, when RE2 refuses it, when it is too long or compiles too large, or when it can
  match the empty string (a placeholder would land between characters);
* banned phrases and required terms are literals searched with RE2 too; a whole-word phrase
  keeps the meaning of Python's ``(?<!\\w)phrase(?!\\w)``, with the word boundary written as
  Unicode classes;
* the built-in e-mail detector runs on RE2 (on Python's ``re`` it is quadratic in a long run
  of letters and dots); the phone and ID detectors use lookarounds RE2 lacks and stay on
  ``re``, where they are linear: every repetition in them is bounded or anchored after a
  non-word character (``tests/workflows/test_rules.py`` checks the scaling).

Matching works on the UTF-8 bytes of the text, encoded once (:class:`EncodedText`); offsets
are turned back into code points through one table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import re2

MAX_PATTERN_CHARS = 500  # longest user regex
MAX_PROGRAM = 2000  # RE2 instructions of all regex rules of a set together: bounds matching cost
# a user pattern is checked with this little memory (room for ~2,700 instructions), so an
# oversized one fails in under a millisecond: request validation runs on the event loop, and
# with RE2's default 8 MiB saying "too large" takes ~70 ms
_CHECK_MEM = 64 << 10
_MATCH_MEM = 8 << 20  # matching gets RE2's default: the lazy DFA's cache lives in it

# Python's \w on str is "alphanumeric or underscore"; these Unicode classes say the same in RE2
_WORD = r"\pL\pN_"
# the contexts an empty match can depend on (start/end of text, word, non-word, newline on each
# side): a pattern that matches "" at no position of these matches "" nowhere
_EMPTY_PROBES = ("", "a", " ", "\n", "aa a\na\n \n\n  ")


class PatternError(ValueError):
    """A user pattern that is refused; the message says why."""


def _options(max_mem: int, case_sensitive: bool = True) -> re2.Options:
    opts = re2.Options()
    opts.max_mem = max_mem
    opts.case_sensitive = case_sensitive
    opts.log_errors = False  # a refused pattern is the user's mistake: it goes to them, not to stderr
    return opts


_CHECK = _options(_CHECK_MEM)
_MATCH = _options(_MATCH_MEM)
_MATCH_NOCASE = _options(_MATCH_MEM, case_sensitive=False)


def _reason(exc: Exception) -> str:
    msg = exc.args[0] if exc.args else exc
    return msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)


def _has_any_byte(pattern: str) -> bool:
    """``\\C`` (any single byte) would split UTF-8 characters, so no offset could point at it."""
    i = 0
    while i < len(pattern) - 1:
        if pattern[i] == "\\":
            if pattern[i + 1] == "C":
                return True
            i += 2
        else:
            i += 1
    return False


def matches_empty(rx: re2._Regexp) -> bool:
    """Whether ``rx`` matches the empty string at some position of some text."""
    return any(rx.fullmatch(t, p, p) is not None for t in _EMPTY_PROBES for p in range(len(t) + 1))


def compile_user_pattern(pattern: str) -> re2._Regexp:
    """Check a user's regex; its RE2 program size is ``.programsize``. Raises :class:`PatternError`."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"{len(pattern)} characters, over the limit of {MAX_PATTERN_CHARS}")
    if _has_any_byte(pattern):
        raise PatternError(r"\C (any byte) is not allowed: it can split a character")
    try:
        rx = re2.compile(pattern, _CHECK)
    except re2.error as exc:
        reason = _reason(exc)
        if "too large" in reason:
            raise PatternError(f"too large: it compiles to over {MAX_PROGRAM} RE2 instructions") from None
        raise PatternError(f"not a valid RE2 pattern ({reason}); RE2 has no backreferences or "
                           "lookarounds") from None
    if rx.programsize > MAX_PROGRAM:
        raise PatternError(f"compiles to {rx.programsize} RE2 instructions, over the limit of {MAX_PROGRAM}")
    if matches_empty(rx):
        raise PatternError("matches the empty string (like 'x*' or 'a?'): the placeholder would be inserted "
                           "between characters; make it match at least one character")
    return rx


def matcher(pattern: str, case_sensitive: bool = True) -> re2._Regexp:
    """``pattern`` compiled for matching (re2 keeps the last 128 compiled patterns)."""
    return re2.compile(pattern, _MATCH if case_sensitive else _MATCH_NOCASE)


def any_phrase(phrases: Sequence[str]) -> re2._Regexp | None:
    """One pattern that finds any of ``phrases`` as a whole word, in any case (None: no phrases).

    For short texts (a rewritten span): a single pass however many phrases there are.
    """
    if not phrases:
        return None
    alternatives = "|".join(re2.escape(p) for p in phrases)
    return matcher(rf"(?:^|[^{_WORD}])(?:{alternatives})(?:$|[^{_WORD}])", case_sensitive=False)


class EncodedText:
    """A text's UTF-8 bytes, and the way back from byte offsets to code points."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.data = text.encode("utf-8", "surrogatepass")
        self._chars: np.ndarray | None = None  # (len(data) + 1,): code points before each byte offset

    def char(self, offset: int) -> int:
        """The code-point offset of byte ``offset`` (a character boundary)."""
        if len(self.data) == len(self.text):  # ASCII: the offsets agree
            return offset
        if self._chars is None:
            starts = (np.frombuffer(self.data, dtype=np.uint8) & 0xC0) != 0x80  # not a continuation byte
            self._chars = np.concatenate(([0], np.cumsum(starts)))
        return int(self._chars[offset])

    def last_char_start(self, end: int) -> int:
        """Byte offset where the character that ends at byte ``end`` begins."""
        i = end - 1
        while i > 0 and self.data[i] & 0xC0 == 0x80:
            i -= 1
        return i

    def finditer(self, rx: re2._Regexp) -> Iterator[tuple[int, int]]:
        """Code-point spans of the non-overlapping matches of ``rx``, left to right."""
        for m in rx.finditer(self.data):
            yield self.char(m.start()), self.char(m.end())

    def contains(self, literal: str, case_sensitive: bool) -> bool:
        return matcher(re2.escape(literal), case_sensitive).search(self.data) is not None

    def phrase(self, phrase: str, case_sensitive: bool, whole_word: bool) -> Iterator[tuple[int, int]]:
        """Spans of ``phrase``, as Python's ``finditer`` finds ``(?<!\\w)phrase(?!\\w)`` (or the bare phrase).

        RE2 has no lookarounds, so the characters around a whole-word hit are matched (a
        non-word character, or the text's end, on each side) and the search resumes at the
        hit's last character, which may be the left edge of the next hit. A hit at the very
        start, with no character before it, is looked for first, anchored there.
        """
        lit = re2.escape(phrase)
        if not whole_word:
            yield from self.finditer(matcher(lit, case_sensitive))
            return
        first = matcher(rf"({lit})(?:$|[^{_WORD}])", case_sensitive).match(self.data)
        pos = 0
        if first is not None:
            yield 0, self.char(first.end(1))
            pos = self.last_char_start(first.end(1))
        rx = matcher(rf"[^{_WORD}]({lit})(?:$|[^{_WORD}])", case_sensitive)
        # each hit starts after the left edge, which is at pos or later: the search moves on
        while (m := rx.search(self.data, pos)) is not None:
            start, end = m.span(1)
            yield self.char(start), self.char(end)
            pos = self.last_char_start(end)
