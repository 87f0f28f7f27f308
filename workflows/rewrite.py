"""Candidate rewrites of a sentence that holds a banned phrase.

Three kinds, each a whole new sentence (the fluency judge ranks sentences, see
:mod:`workflows.fluency`):

- **deletions**: the phrase taken out, and with it a ``that`` left dangling after it, or the
  short subject before it ("We guarantee that every report ..." -> "Every report ...");
- **substitutions**: the rule's preferred term in the forms the slot may need. The banned
  word's part of speech and inflection (lemminflect: "guarantees" is a third-person verb)
  are given to the preferred term first, then its other forms follow; the judge picks;
- **refiner rewrites**: the phrase's tokens, and the phrase with a word on each side,
  re-masked at several lengths and denoised, greedy and sampled, all in one batch.

Every candidate is mended where the text was cut: no doubled space or space before
punctuation, a capital letter where the sentence now starts, and the other indefinite
article ("a" / "an") offered wherever one now stands before new text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lemminflect import getAllInflections, getAllLemmas

from refiner.editing import SpanEdit
from refiner.sampler import SamplerConfig
from refiner.text import TextRefiner, Window

SENTENCE_REACH = 400  # characters searched on each side of a phrase for the sentence's ends
MAX_SUBJECT_WORDS = 3  # "We", "The Provider": a subject this short may go with the phrase
MAX_FORMS = 6  # forms of a preferred term tried in one slot
CONTEXT_CHARS = 600  # text fed to the refiner on each side of a sentence (it windows by tokens)
SAMPLE_TEMPERATURE = 0.8  # the refiner's rewrites after the greedy one

_BOUNDARY = re.compile(r"[.!?][\"')\]]*(?=\s)|\n[ \t]*\n")
_THAT = re.compile(r"\s+that\b", re.IGNORECASE)
_CLAUSE_MARK = re.compile(r"[,;:(]")
_ARTICLE = re.compile(r"(?<![\w'-])(an?|An?|AN?)\s*$")
_CLOSING = ",.;:!?)]}'\""
_TAG_UPOS = {"VB": "VERB", "NN": "NOUN", "JJ": "ADJ", "RB": "ADV"}


def sentence_around(text: str, start: int, end: int, reach: int = SENTENCE_REACH) -> tuple[int, int]:
    """The sentence of ``text`` that holds ``[start, end)``: after the last sentence end or blank
    line before it, through the next sentence end (or up to the next blank line).

    Only ``reach`` characters are searched on each side, so a text without punctuation costs
    no more than a short one; the sentence is then cut at the spaces nearest that reach.
    """
    lo = max(0, start - reach)
    s = lo
    for m in _BOUNDARY.finditer(text[lo:start]):
        s = lo + m.end()
    if s == lo and lo > 0:  # no boundary in reach: start at a word
        space = text.find(" ", lo, start)
        s = space + 1 if space >= 0 else start
    while s < start and text[s].isspace():
        s += 1
    hi = min(len(text), end + reach)
    after = _BOUNDARY.search(text, end, hi)
    if after is not None:
        e = after.start() if after.group().startswith("\n") else after.end()
    elif hi < len(text):  # no boundary in reach: end at a word
        space = text.rfind(" ", end, hi)
        e = space if space >= 0 else end
    else:
        e = hi
    while e > end and text[e - 1].isspace():
        e -= 1
    return s, e


def _seam(left: str, right: str) -> tuple[str, str]:
    """``left`` and ``right`` tidied where they meet: one space, none before punctuation."""
    if not left.strip():
        return left, right.lstrip()
    if left[-1] in " \t" and (not right or right[0].isspace() or right[0] in _CLOSING):
        return left.rstrip(" \t"), right
    if left[-1].isalnum() and right[:1].isalnum():
        return left + " ", right
    return left, right


def join(original: str, prefix: str, middle: str, suffix: str) -> list[str]:
    """``prefix + middle + suffix`` mended, as a variant of the sentence ``original``; with the
    other indefinite article too where an article now stands before the new text."""
    left, mid = _seam(prefix, middle)
    head, tail = _seam(left + mid, suffix)
    text = head + tail
    if original[:1].isupper() and text[:1].islower():
        text = text[0].upper() + text[1:]
    out = [text]
    m = _ARTICLE.search(text[: len(left)])
    if m is not None:
        art = m.group(1)
        other = {"a": "an", "an": "a", "A": "An", "An": "A", "AN": "A"}.get(art, "AN")
        out.append(text[: m.start(1)] + other + text[m.end(1):])
    return out


def deletions(sentence: str, start: int, end: int) -> list[str]:
    """``sentence`` without ``[start, end)``; also without a ``that`` right after it, and without
    a short subject before it (from the start of its clause)."""
    ends = [end]
    that = _THAT.match(sentence, end)
    if that is not None:
        ends.append(that.end())
    starts = [start]
    clause = _clause_start(sentence, start)
    if clause < start and len(sentence[clause:start].split()) <= MAX_SUBJECT_WORDS:
        starts.append(clause)
    return [c for a in starts for b in ends for c in join(sentence, sentence[:a], "", sentence[b:])]


def _clause_start(sentence: str, at: int) -> int:
    """Where the clause holding ``at`` begins: after the last comma, colon, semicolon or
    parenthesis before it (else the sentence start), past the spaces."""
    marks = [m.end() for m in _CLAUSE_MARK.finditer(sentence, 0, at)]
    c = marks[-1] if marks else 0
    while c < at and sentence[c].isspace():
        c += 1
    return c


def substitutions(sentence: str, start: int, end: int, preferred: str) -> list[str]:
    """``sentence`` with the preferred term, in each form the slot may need, for ``[start, end)``."""
    phrase = sentence[start:end]
    return [c for form in preferred_forms(phrase, preferred)
            for c in join(sentence, sentence[:start], form, sentence[end:])]


def preferred_forms(phrase: str, preferred: str) -> list[str]:
    """Forms of ``preferred`` for the place of ``phrase``: first in the inflection the phrase's
    last word has (its tags under lemminflect), then in the others of its word's part of speech.

    The word inflected is the first verb of the term for a verb slot ("make sure" -> "makes
    sure"), else its last word ("service level" -> "service levels"); the case follows the phrase.
    """
    words = phrase.split()
    tags = _tags(words[-1]) if words else []
    forms = [preferred]
    for tag in tags + _all_tags(preferred):
        forms += _inflected(preferred, tag)
    seen: list[str] = []
    for f in forms:
        f = _case_like(phrase, f)
        if f not in seen:
            seen.append(f)
    return seen[:MAX_FORMS]


def _tags(word: str) -> list[str]:
    """The Penn tags under which ``word`` is an inflection of one of its lemmas (sorted)."""
    low = word.lower()
    out: set[str] = set()
    for upos, lemmas in getAllLemmas(low).items():
        for lemma in lemmas:
            out |= {tag for tag, forms in getAllInflections(lemma, upos=upos).items() if low in forms}
    return sorted(out)


def _all_tags(term: str) -> list[str]:
    """Every tag the words of ``term`` can take as inflections of their own lemmas."""
    return sorted({tag for w in term.split() for tag in _tags(w)})


def _inflected(term: str, tag: str) -> list[str]:
    """``term`` with its head word put in ``tag`` (nothing when no word of it has that part of speech)."""
    upos = _TAG_UPOS.get(tag[:2])
    words = term.split(" ")
    if upos is None or not words:
        return []
    order = range(len(words)) if upos == "VERB" else range(len(words) - 1, -1, -1)
    for i in order:
        lemmas = getAllLemmas(words[i].lower(), upos=upos).get(upos)
        if lemmas:
            forms = getAllInflections(lemmas[0], upos=upos).get(tag, ())
            return [" ".join([*words[:i], f, *words[i + 1:]]) for f in forms]
    return []


def _case_like(model: str, text: str) -> str:
    """``text`` in the case of ``model``: all capitals, a leading capital, or as written."""
    if len(model) > 1 and model.isupper():
        return text.upper()
    if model[:1].isupper():
        return text[:1].upper() + text[1:]
    return text


@dataclass(frozen=True)
class RewriteSite:
    """A phrase for the refiner to rewrite: ``sentence[start:end]``, with the text around the sentence."""

    left: str
    sentence: str
    start: int
    end: int
    right: str


@dataclass(frozen=True)
class RewriteSettings:
    """How the refiner rewrites: step budget, commit threshold, sampled rounds, seed, context,
    factor rule (None: the model's calibrated value)."""

    steps: int
    threshold: float | None
    attempts: int
    seed: int | None
    window: Window
    factor: float | None = None


def refiner_rewrites(refiner: TextRefiner, sites: Sequence[RewriteSite],
                     settings: RewriteSettings) -> tuple[list[list[str]], int]:
    """Rewritten sentences for each site, and the forward passes they took.

    Each site gives the refiner two spans, the phrase's tokens and those with a token more on
    each side (within the sentence), each at lengths around its own; every span of every site
    is one row of a batch, denoised greedily and then ``attempts - 1`` times sampled.
    """
    rows: list[tuple[int, list[int], SpanEdit, int, int]] = []  # site, ids, edit, chars replaced
    for i, site in enumerate(sites):
        rows += [(i, ids, edit, a, b) for ids, edit, a, b in _rows(refiner, site)]
    out: list[list[str]] = [[] for _ in sites]
    nfe = 0
    for attempt in range(settings.attempts if rows else 0):
        cfg = SamplerConfig(steps=settings.steps, threshold=settings.threshold,
                            temperature=0.0 if attempt == 0 else SAMPLE_TEMPERATURE,
                            seed=None if settings.seed is None else settings.seed + attempt,
                            factor=settings.factor)
        res = refiner.fill([r[1] for r in rows], [[r[2]] for r in rows], cfg, settings.window)
        nfe += max(r.nfe for r in res)
        for (i, _, _, a, b), filled in zip(rows, res):
            s = sites[i].sentence
            out[i] += join(s, s[:a], refiner.decode(filled.spans[0].tokens), s[b:])
    return out, nfe


def _rows(refiner: TextRefiner, site: RewriteSite) -> Iterable[tuple[list[int], SpanEdit, int, int]]:
    """(ids, span edit, sentence characters it replaces) for each span and length of one site."""
    base = len(site.left)
    ids, offsets = refiner.encode(site.left + site.sentence + site.right)
    inside = [k for k, (a, b) in enumerate(offsets) if a >= base and b <= base + len(site.sentence)]
    phrase = [k for k in inside if offsets[k][1] > base + site.start and offsets[k][0] < base + site.end]
    if not phrase:
        return
    ts, te = phrase[0], phrase[-1] + 1
    spans = {(ts, te)}
    wide = (ts - 1 if ts - 1 in inside else ts, te + 1 if te in inside else te)
    spans.add(wide)
    for a, b in sorted(spans):
        k = b - a
        for n in sorted({max(1, k - 1), k, k + 1, k + 2}):
            yield ids, SpanEdit(a, b, n), offsets[a][0] - base, offsets[b - 1][1] - base
