"""English words and their frequencies, from symspellpy's dictionary: the spelling checker's word list.

The refiner sees text as sub-word tokens and cannot tell a rare right word from a typo on
its own; a word list can. An earlier version grew one from the training corpus, which knew
the words of licences and the standard library and little else, so unseen documentation
read as a page of typos. symspellpy ships an English frequency dictionary of about 83,000
words (counts from a large web corpus) and finds the words within a Damerau-Levenshtein
distance of a string in microseconds (symmetric delete lookup), so this module wraps it
rather than counting words itself. The dictionary is loaded once per process, on first use.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from importlib.resources import files

from symspellpy import SymSpell, Verbosity
from symspellpy.editdistance import DistanceAlgorithm, EditDistance

DICTIONARY_FILE = "frequency_dictionary_en_82_765.txt"  # shipped inside the symspellpy package
MAX_DISTANCE = 2  # the largest edit distance a lookup may ask for (fixes the index's size)

# a word: letters, with inner apostrophes ("don't") but no digits or underscores
WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def words(text: str) -> Iterator[re.Match[str]]:
    """The words of ``text`` as regex matches (their spans are code-point offsets)."""
    return WORD.finditer(text)


def document_words(text: str) -> Counter[str]:
    """How often each word (lower case) occurs in ``text``, code and identifiers included: a
    document's own vocabulary (names, terms of art) that no English dictionary holds."""
    return Counter(m.group().lower() for m in words(text))


def nearest(word: str, vocabulary: Iterable[str], max_distance: int) -> list[str]:
    """Words of ``vocabulary`` (lower case) at most ``max_distance`` edits from ``word``, nearest
    first; a transposition of two adjacent letters is one edit (optimal string alignment)."""
    measure = EditDistance(DistanceAlgorithm.DAMERAU_OSA)
    target = word.lower()
    found = []
    for v in vocabulary:
        if v != target and abs(len(v) - len(target)) <= max_distance:
            d = measure.compare(target, v, max_distance)
            if 0 < d <= max_distance:
                found.append((d, v))
    return [v for _, v in sorted(found)]


def case_like(word: str, model: str) -> str:
    """``word`` (lower case) cased the way ``model`` is: UPPER, Title or lower."""
    if len(model) > 1 and model.isupper():
        return word.upper()
    if model[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


@functools.cache
def english() -> Lexicon:
    """symspellpy's English dictionary, loaded once per process (a few seconds)."""
    speller = SymSpell(max_dictionary_edit_distance=MAX_DISTANCE)
    path = files("symspellpy") / DICTIONARY_FILE
    if not speller.load_dictionary(str(path), term_index=0, count_index=1, encoding="utf-8"):
        raise FileNotFoundError(f"symspellpy's dictionary {DICTIONARY_FILE} is missing from the package")
    return Lexicon(speller)


class Lexicon:
    """An English word list with frequencies; lookups are case-insensitive."""

    def __init__(self, speller: SymSpell) -> None:
        self.speller = speller
        self.total = max(1, sum(speller.words.values()))

    def __len__(self) -> int:
        return len(self.speller.words)

    def __contains__(self, word: str) -> bool:
        return word.lower() in self.speller.words

    def count(self, word: str) -> int:
        return int(self.speller.words.get(word.lower(), 0))

    def log_prior(self, word: str) -> float:
        """Log relative frequency, add-one smoothed so unknown words stay finite."""
        return math.log((self.count(word) + 1) / self.total)

    def candidates(self, word: str, max_distance: int = 1, limit: int = 5) -> list[str]:
        """Dictionary words nearest to ``word`` (lower case), at most ``max_distance`` edits
        away (a transposition of two adjacent letters is one edit), most frequent first."""
        if not 0 < max_distance <= MAX_DISTANCE:
            raise ValueError(f"max_distance must be 1..{MAX_DISTANCE}, got {max_distance}")
        found = self.speller.lookup(word.lower(), Verbosity.CLOSEST, max_edit_distance=max_distance)
        near = [s.term for s in found if s.term != word.lower()]
        return near[:limit]
