"""Stop strings on decoded text, with tokens released only once they are known to be kept.

A stop string can span several tokens ("\\n\\n" from two "\\n" tokens, "END" from "E" + "ND"),
so it is matched on the decoded text, not on token ids. While the end of the text could still
be the start of a stop string, the tokens that produced it are held back; they are released
when the text moves on, or dropped when the stop string completes. Streaming and the final
draft therefore agree token for token, and neither ever shows a character of a stop string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from drafter.outputs import DraftToken
from drafter.text import IncrementalDecoder


@dataclass
class _Pending:
    id: int
    logprob: float
    entropy: float
    start: int  # where this token's text starts in the tracker's text
    text: str


class StopTracker:
    """Follow one row's generated tokens: decode them, watch for stop strings, release tokens.

    ``push`` returns the tokens that became safe to show; once a stop string has matched,
    ``stopped`` is true and the text is cut just before it. ``finish`` releases what is left
    when generation ends for another reason (length, an end token).
    """

    def __init__(
        self, tokenizer: Any, stop: Sequence[str] = (), context_ids: Sequence[int] = ()
    ) -> None:
        self._decoder = IncrementalDecoder(tokenizer, context_ids)
        self._stop = [s for s in stop if s]
        self._text = ""  # text of every token pushed so far (released or pending)
        self._pending: list[_Pending] = []
        self.stopped = False

    @property
    def text(self) -> str:
        """Decoded text so far; after a stop, cut before the stop string."""
        return self._text

    def push(self, token_id: int, logprob: float, entropy: float) -> list[DraftToken]:
        """Add a generated token; return the tokens now safe to release, in order."""
        if self.stopped:
            raise RuntimeError("push after a stop string matched")
        piece = self._decoder.push(token_id)
        self._pending.append(_Pending(token_id, logprob, entropy, len(self._text), piece))
        return self._after_new_text(len(self._text), piece)

    def finish(self) -> list[DraftToken]:
        """Generation is over: release every token still held (incomplete characters too)."""
        if self.stopped:
            return []
        tail = self._decoder.flush()
        released: list[DraftToken] = []
        if tail and self._pending:
            self._pending[-1].text += tail
            released = self._after_new_text(len(self._text), tail)
            if self.stopped:
                return released
        released += self._release(len(self._pending))
        return released

    def _after_new_text(self, old_len: int, piece: str) -> list[DraftToken]:
        self._text += piece
        cut = self._find_stop(old_len)
        if cut is not None:
            self.stopped = True
            self._text = self._text[:cut]
            keep = [p for p in self._pending if p.start < cut]
            for p in keep:
                p.text = p.text[: max(0, cut - p.start)]
            self._pending = keep
            return self._release(len(keep))
        safe = len(self._text) - self._held_chars()
        # tokens inside an unfinished UTF-8 character stay with the token that completes it
        decodable = len(self._pending) - self._decoder.pending
        n = 0
        while n < decodable and self._pending[n].start + len(self._pending[n].text) <= safe:
            n += 1
        return self._release(n)

    def _find_stop(self, old_len: int) -> int | None:
        # earlier text was already searched: a new match must end inside the new piece
        hits = [
            i for s in self._stop if (i := self._text.find(s, max(0, old_len - len(s) + 1))) >= 0
        ]
        return min(hits) if hits else None

    def _held_chars(self) -> int:
        """Length of the longest end of the text that is a proper prefix of a stop string."""
        held = 0
        for s in self._stop:
            for k in range(min(len(s) - 1, len(self._text)), held, -1):
                if self._text.endswith(s[:k]):
                    held = k
                    break
        return held

    def _release(self, n: int) -> list[DraftToken]:
        out = [DraftToken(p.id, p.text, p.logprob, p.entropy) for p in self._pending[:n]]
        del self._pending[:n]
        return out
