"""A word lexicon (lower-cased word -> count, word pair -> count) from training prose.

The refiner sees text as sub-word tokens and cannot tell a rare right word from a typo on
its own; a lexicon of the words its training prose uses can. It is built from the corpus's
*train* split only (held-out text never enters it), stored next to the refiner as a small
gzipped TSV (``lexicon.tsv.gz``: ``word<TAB>count`` lines, most frequent first), and loaded
with the refiner when the file is there. Pairs of adjacent words within a clause are stored
in the same file as ``first second<TAB>count`` lines (a word never holds a space); they give
a bigram model with back-off, enough to tell "a copy of" from "copy a of".
"""

from __future__ import annotations

import gzip
import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

LEXICON_FILE = "lexicon.tsv.gz"
ALPHABET = "abcdefghijklmnopqrstuvwxyz"

# clause breaks: word pairs are not counted across them
CLAUSE = re.compile(r'[.;:!?()\[\]{}"]|\n\s*\n')
BACKOFF = math.log(0.4)  # a pair never seen: this times the second word's own frequency

# a word: letters, with inner apostrophes ("don't") but no digits or underscores
WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def words(text: str) -> Iterator[re.Match[str]]:
    """The words of ``text`` as regex matches (their spans are code-point offsets)."""
    return WORD.finditer(text)


def case_like(word: str, model: str) -> str:
    """``word`` (lower case) cased the way ``model`` is: UPPER, Title or lower."""
    if len(model) > 1 and model.isupper():
        return word.upper()
    if model[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def edits1(word: str) -> set[str]:
    """Every string one edit from ``word``: a deleted, inserted, replaced or transposed letter.

    Transposition of two adjacent letters counts as one edit (Damerau), the commonest typo
    of a fast typist; the alphabet for inserts and replacements is a-z.
    """
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    out = {a + b[1:] for a, b in splits if b}
    out |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    out |= {a + c + b[1:] for a, b in splits if b for c in ALPHABET}
    out |= {a + c + b for a, b in splits for c in ALPHABET}
    out.discard(word)
    return out


class Lexicon:
    """Word counts; lookups are case-insensitive (keys are lower case)."""

    def __init__(self, counts: dict[str, int], pairs: dict[tuple[str, str], int] | None = None) -> None:
        self.counts = counts
        self.pairs = pairs or {}
        self.total = max(1, sum(counts.values()))

    def __len__(self) -> int:
        return len(self.counts)

    def __contains__(self, word: str) -> bool:
        return word.lower() in self.counts

    def count(self, word: str) -> int:
        return self.counts.get(word.lower(), 0)

    def log_prior(self, word: str) -> float:
        """Log relative frequency, add-one smoothed so unseen words stay finite."""
        return math.log((self.count(word) + 1) / (self.total + len(self.counts)))

    def pair_logp(self, first: str, second: str) -> float:
        """log P(second | first) from pair counts, backing off to the second word's frequency."""
        a, b = first.lower(), second.lower()
        n = self.pairs.get((a, b), 0)
        if n and self.count(a):
            return math.log(n / self.count(a))
        return BACKOFF + self.log_prior(b)

    def sequence_logp(self, seq: list[str]) -> float:
        """Bigram log-probability of a word sequence, the first word given."""
        return sum(self.pair_logp(a, b) for a, b in itertools.pairwise(seq))

    def candidates(self, word: str) -> list[str]:
        """Lexicon words one edit from ``word`` (lower case), most frequent first."""
        found = [w for w in edits1(word.lower()) if w in self.counts]
        return sorted(found, key=lambda w: (-self.counts[w], w))

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 2, min_pair_count: int = 3,
              max_words: int = 60_000, max_pairs: int = 60_000) -> Lexicon:
        """Count the words and in-clause word pairs of ``texts``, keeping the frequent ones.

        The floors drop one-off typos of the training text itself; the caps keep the file small.
        """
        counts: Counter[str] = Counter()
        pairs: Counter[tuple[str, str]] = Counter()
        for text in texts:
            for clause in CLAUSE.split(text):
                ws = [m.group().lower() for m in words(clause)]
                counts.update(ws)
                pairs.update(itertools.pairwise(ws))
        kept = sorted(((w, c) for w, c in counts.items() if c >= min_count), key=lambda x: (-x[1], x[0]))
        lex = dict(kept[:max_words])
        kept_pairs = sorted(((p, c) for p, c in pairs.items() if c >= min_pair_count and p[0] in lex and p[1] in lex),
                            key=lambda x: (-x[1], x[0]))
        return cls(lex, dict(kept_pairs[:max_pairs]))

    def save(self, path: str | Path) -> None:
        """Write ``word<TAB>count`` lines, most frequent first; byte-identical for equal counts."""
        rows = sorted(self.counts.items(), key=lambda x: (-x[1], x[0]))
        pair_rows = sorted(self.pairs.items(), key=lambda x: (-x[1], x[0]))
        data = "".join([*(f"{w}\t{c}\n" for w, c in rows),
                        *(f"{a} {b}\t{c}\n" for (a, b), c in pair_rows)]).encode("utf-8")
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
            gz.write(data)

    @classmethod
    def load(cls, path: str | Path) -> Lexicon:
        counts: dict[str, int] = {}
        pairs: dict[tuple[str, str], int] = {}
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                w, _, c = line.rstrip("\n").partition("\t")
                a, space, b = w.partition(" ")
                if space:
                    pairs[(a, b)] = int(c)
                elif w:
                    counts[w] = int(c)
        return cls(counts, pairs)

    @classmethod
    def beside(cls, model_dir: str | Path | None) -> Lexicon | None:
        """The lexicon stored in a model directory, or None when it has none."""
        if model_dir is None:
            return None
        path = Path(model_dir) / LEXICON_FILE
        return cls.load(path) if path.is_file() else None
