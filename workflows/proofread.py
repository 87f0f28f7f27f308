"""Proofreading of prose: misspelled, swapped and missing words, each fix checked by both models.

A free-form rewrite by a small refiner replaces right words with words the model likes
better, and its own score then approves the change. Proofreading asks narrower questions
instead, and keeps an answer only when both models agree it clearly helps:

- candidates: a word the English dictionary (see :mod:`refiner.lexicon`) does not know,
  against the dictionary words nearest to it (spelling); two adjacent words against the same
  two swapped (word order); a gap between two words against the refiner's likeliest words
  for one masked token there (a missing word);
- the check: every candidate is applied alone to its sentence, and the sentence is scored
  before and after by the drafter (log-probability, left to right) and by the refiner
  (pseudo-log-likelihood per token, each token masked in one of ``stride`` passes). A
  candidate is kept only when *both* models prefer it by their margins: one model's
  preference alone is what made the old proofreader replace rare right words. A spelling fix
  or an inserted word must raise the drafter's log-probability of the sentence in total (a
  mean per token rewards a word split into likelier pieces); a swap, which keeps the tokens,
  its mean per token (see ``ORDER_MARGINS`` and its neighbours);
- rounds: the kept candidates whose judged words do not overlap are applied together, and the
  sentences that changed are proofread again (a sentence with a swap and a missing word needs
  two rounds). Hard-wrapped prose is read as one line of words; its line breaks stay where
  they were.

Only prose is touched: code spans and blocks, lines that read as code, URLs, e-mail
addresses, link targets, and words with digits, underscores, inner dots or mixed case
(identifiers, versions, numbers) are never edited, though they stay in the sentences the
models score. Offsets are code points into the text given.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from refiner.lexicon import Lexicon, case_like, document_words, english, nearest
from refiner.scoring import ScoreRow
from refiner.text import TextRefiner
from workflows.edits import Edit, apply_edits, compute_edits, nearest_mark, relabel, trim
from workflows.fluency import DrafterFluency, Fluency, Reading, RefinerFluency

# space-free chunks; an editable one is a plain word, maybe with punctuation around
_CHUNK = re.compile(r"\S+")
_PLAIN = re.compile(r"[(\"'\[*_]{0,2}[^\W\d_]+(?:['-][^\W\d_]+)*[.,;:!?)\"'\]*_]{0,3}")
_LETTERS = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
# spans that are not prose, whatever words they hold
_NOT_PROSE = re.compile(
    r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)"  # fenced code blocks
    r"|`[^`\n]*`"  # inline code
    r"|<?(?:https?|ftp)://[^\s>)]*>?|\bwww\.[^\s)]+"  # URLs
    r"|\]\([^)\n]*\)"  # markdown link targets
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail addresses
    r"|^[ \t]*(?:>>>|\.\.\.|\$|%)[ \t][^\n]*",  # interactive sessions and shell prompts
    re.DOTALL | re.MULTILINE,
)
# lines only code has: a statement keyword first, a block opener or terminator last, an
# assignment, a closing bracket first; prose that mentions calls, like "sorted()", has none
_CODE_LINE = re.compile(r"^\s*(?:def|class|import|return|elif|else:|try:|while|function|var|let|const|#include)\b"
                        r"|^\s*from\s+[\w.]+\s+import\b|^\s*(?:if|for)\b.*:\s*$|\)\s*:\s*$|[;{]\s*$"
                        r"|^\s*[}\])]|^\s*[\w.\[\]]+\s*[-+*/]?=[^=]")
# where a sentence ends: after . ! ? and space, at a blank line, before a list item or heading
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n[ \t]*\n\s*|\n(?=[ \t]*(?:[-*+#>|]|\d+[.)]|#\.)\s)")


class Bar(NamedTuple):
    """What a fix must gain under one model: ``nats`` per token, or over the judged words in all."""

    nats: float
    per_token: bool


class Margins(NamedTuple):
    """The bars of a kind of fix under each model."""

    drafter: Bar  # the drafter's log-probability
    refiner: Bar  # the refiner's pseudo-log-likelihood


ORDER_MARGINS = Margins(Bar(0.15, True), Bar(0.1, True))  # two words swapped back
SPELLING_MARGINS = Margins(Bar(10.0, False), Bar(0.05, True))  # a word spelled as a known word is
MISSING_MARGINS = Margins(Bar(3.0, False), Bar(0.05, True))  # a word inserted


@dataclass(frozen=True)
class ProofreadConfig:
    """How proofreading proposes and checks fixes. The margins and the missing-word floor were
    chosen on a development set (held-out standard-library docstrings, corrupted as the
    benchmark corrupts: in neither benchmark set): higher let too few right fixes through,
    lower let wrong ones through faster than right ones.

    A swap keeps the tokens the models read, and its gain per token makes a short window and a
    long one alike. A misspelling or a missing word changes how many tokens there are, and
    the drafter's mean per token would reward splitting a word into likelier pieces: there the
    drafter's log-probability must rise in all, the log-odds a noisy-channel corrector weighs
    against how rare the error is, and the refiner's per token must rise too.
    """

    order_margins: Margins = ORDER_MARGINS
    spelling_margins: Margins = SPELLING_MARGINS
    missing_margins: Margins = MISSING_MARGINS
    stride: int = 4  # the refiner's pseudo-likelihood masks every stride-th token, in stride passes
    max_distance: int = 2  # spelling: dictionary words at most this many edits away are candidates
    suggestions: int = 5  # spelling: most candidates per unknown word (nearest, most frequent first)
    min_letters: int = 3  # shorter unknown words are left alone: abbreviations, too many neighbours
    missing_top_k: int = 1  # missing words: the refiner's likeliest tokens tried at each gap
    missing_min_p: float = 0.3  # missing words: a token the refiner gives less than this at the gap is not tried
    rounds: int = 3  # sentences that changed are proofread again, this many times in all
    max_sentence_tokens: int = 200  # longer "sentences" (tables, lists without stops) are left alone
    context_chars: int = 80  # a fix is judged on its sentence's words up to this far on each side
    batch_rows: int = 256  # refiner rows per forward pass

    def margins(self, reason: str) -> Margins:
        """The margins a fix of this kind ("spelling", "word_order", "missing_word") must clear."""
        return {"spelling": self.spelling_margins, "missing_word": self.missing_margins}.get(reason, self.order_margins)


class SentenceScorer(Protocol):
    """What proofreading needs of the drafter: per-token log-probabilities of any text."""

    def score(self, text: str) -> _Scored: ...


class _Scored(Protocol):
    logprobs: list[float]


@dataclass(frozen=True)
class _Chunk:
    start: int
    end: int
    editable: bool  # a plain word outside every non-prose span


@dataclass
class _Candidate:
    edit: Edit  # offsets into the text of this round
    unit: tuple[int, int]  # the words it is judged on: its sentence's, up to ``context_chars`` each side
    drafter_gain: float = 0.0  # mean log-prob per token, after minus before
    refiner_gain: float = 0.0

    @property
    def gain(self) -> float:
        return min(self.drafter_gain, self.refiner_gain)


@dataclass
class _Judge:
    """Both models' readers of one proofreading run (each text read once, see :mod:`workflows.fluency`)."""

    refiner: RefinerFluency
    drafter: DrafterFluency | None
    cfg: ProofreadConfig


def looks_like_code(text: str) -> bool:
    """A cheap guess: a third of the non-empty lines carry code punctuation or keywords."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return False
    hits = sum(1 for ln in lines if _CODE_LINE.search(ln))
    return hits >= max(1, len(lines) / 3) and hits >= min(2, len(lines))


def not_prose(text: str) -> list[tuple[int, int]]:
    """Character ranges proofreading never edits: code, URLs, addresses, link targets, code lines."""
    spans = [(m.start(), m.end()) for m in _NOT_PROSE.finditer(text)]
    pos = 0
    for line in text.splitlines(keepends=True):
        if _CODE_LINE.search(line):
            spans.append((pos, pos + len(line)))
        pos += len(line)
    return sorted(spans)


def sentences(text: str) -> list[tuple[int, int]]:
    """The sentences of ``text`` as (start, end) ranges without the space around them."""
    out = []
    pos = 0
    for m in [*_SENTENCE_BREAK.finditer(text), None]:
        end = len(text) if m is None else m.start()
        piece = text[pos:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            out.append((pos + lead, pos + len(piece.rstrip())))
        if m is not None:
            pos = m.end()
    return out


def _chunks(text: str, protected: list[tuple[int, int]]) -> list[_Chunk]:
    starts = [s for s, _ in protected]
    out = []
    for m in _CHUNK.finditer(text):
        i = bisect.bisect_left(starts, m.end())
        inside = any(s < m.end() and m.start() < e for s, e in protected[max(0, i - 8) : i])
        word = m.group()
        core = _LETTERS.search(word)
        mixed = core is not None and _mixed_case(core.group())
        out.append(_Chunk(m.start(), m.end(), not inside and not mixed and bool(_PLAIN.fullmatch(word))))
    return out


def _mixed_case(word: str) -> bool:
    """iPhone, McKay, camelCase: a name, not a typo (Title and UPPER case are plain)."""
    return word != word.lower() and word != word.upper() and word[1:] != word[1:].lower()


def _unit_of(units: list[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """The range of the sentences [start, end) touches (an insertion touches the one it is in)."""
    hit = [u for u in units if u[0] <= max(start, end - 1) and start <= u[1] and (u[0] < end or start == end)]
    return (hit[0][0], hit[-1][1]) if hit else None


def spelling_candidates(text: str, chunks: list[_Chunk], lexicon: Lexicon, cfg: ProofreadConfig) -> list[Edit]:
    """Unknown words against the words nearest to them, reason "spelling".

    The document's own words count: a word it uses twice (or once more in code, a name, an
    identifier) is known, however rare in English ("Magnocavallo", "iniconfig"), and its
    words are candidates beside the dictionary's, nearest first ("Rcih" -> "Rich" in a
    README about Rich).
    """
    seen = document_words(text)
    own = [w for w, n in seen.items() if len(w) >= cfg.min_letters]
    out = []
    for c in chunks:
        if not c.editable:
            continue
        for m in _LETTERS.finditer(text, c.start, c.end):
            w = m.group()
            if len(w) < cfg.min_letters or w in lexicon or seen[w.lower()] > 1:
                continue
            near = nearest(w, own, 1) + lexicon.candidates(w, cfg.max_distance, cfg.suggestions)
            for cand in list(dict.fromkeys(near))[: cfg.suggestions]:
                out.append(Edit(m.start(), m.end(), w, case_like(cand, w), "spelling", 0.0))
    return out


def _word_gap(text: str, a: _Chunk, b: _Chunk) -> bool:
    """Whether ``a`` and ``b`` are neighbours in a line of words: one space apart, or a line
    break apart in hard-wrapped prose (a newline, maybe indentation, no blank line)."""
    sep = text[a.end : b.start]
    return sep == " " or (sep.count("\n") == 1 and not sep.strip(" \t\n"))


def order_candidates(text: str, chunks: list[_Chunk]) -> list[Edit]:
    """Two adjacent plain words against the same two swapped, reason "word_order".

    Hard-wrapped prose reads as one line of words: two words either side of a line break
    swap too, and the break stays where it was, between the first and the second word.
    """
    out = []
    for a, b in itertools.pairwise(chunks):
        if not (a.editable and b.editable and _word_gap(text, a, b)):
            continue
        first, second, sep = text[a.start : a.end], text[b.start : b.end], text[a.end : b.start]
        if first.lower() != second.lower():
            out.append(Edit(a.start, b.end, f"{first}{sep}{second}", f"{second}{sep}{first}", "word_order", 0.0))
    return out


def missing_candidates(text: str, chunks: list[_Chunk], units: list[tuple[int, int]], refiner: TextRefiner,
                       cfg: ProofreadConfig) -> list[Edit]:
    """A word inserted between two words of a sentence, reason "missing_word".

    The refiner proposes its likeliest tokens for one masked position in the gap; a
    proposal is tried only when it is a whole word (a space, then letters) and the refiner
    gives it at least ``missing_min_p`` there. A gap where the refiner's first choice is its
    filler token (nothing belongs here) gets no candidates.
    """
    gaps = []
    for a, b in itertools.pairwise(chunks):
        unit = next((u for u in units if u[0] <= a.start and b.end <= u[1]), None)  # one sentence holds both
        if a.editable and b.editable and _word_gap(text, a, b) and unit is not None:
            gaps.append((a.end, unit))
    if not gaps:
        return []
    reach = cfg.context_chars
    sides = [(refiner.encode(text[max(u0, at - reach) : at])[0], refiner.encode(text[at : min(u1, at + reach)])[0])
             for at, (u0, u1) in gaps]
    proposals = refiner.top_k_between(sides, cfg.missing_top_k)
    filler = refiner.special.filler
    tried: list[tuple[int, str]] = []
    rows: list[ScoreRow] = []
    for (at, _), (left, right), toks in zip(gaps, sides, proposals):
        if filler is not None and toks and toks[0] == filler:
            continue
        for t in toks:
            word = refiner.decode([t])
            if word.startswith(" ") and _LETTERS.fullmatch(word[1:]):
                tried.append((at, word))
                rows.append(ScoreRow([*left, t, *right], [len(left)], [len(left)]))
    floor = math.log(cfg.missing_min_p)
    scores = refiner.score(rows, cfg.batch_rows)
    return [Edit(at, at, "", word, "missing_word", 0.0) for (at, word), lp in zip(tried, scores) if lp >= floor]


def _judge(text: str, cands: list[_Candidate], judge: _Judge) -> list[_Candidate]:
    """The candidates both models score above the sentence as written, by their margins
    (the drafter first: the cheaper model rules most candidates out)."""
    if judge.drafter is not None and cands:
        kept = []
        for c, (before, now) in zip(cands, _readings(judge.drafter, text, cands)):
            c.drafter_gain = now.mean - before.mean
            if _clears(judge.cfg.margins(c.edit.reason).drafter, before, now):
                kept.append(c)
        cands = kept
    out = []
    for c, (before, now) in zip(cands, _readings(judge.refiner, text, cands)):
        c.refiner_gain = now.mean - before.mean
        if judge.drafter is None:
            c.drafter_gain = c.refiner_gain  # one model's say is all there is
        if _clears(judge.cfg.margins(c.edit.reason).refiner, before, now):
            out.append(c)
    return out


def _readings(reader: Fluency, text: str, cands: list[_Candidate]) -> list[tuple[Reading, Reading]]:
    """Each candidate's judged words as written and with the candidate applied, as ``reader`` reads them."""
    if not cands:
        return []
    before = reader([text[c.unit[0] : c.unit[1]] for c in cands])
    now = reader([text[c.unit[0] : c.edit.start] + c.edit.after + text[c.edit.end : c.unit[1]] for c in cands])
    return list(zip(before, now))


def _clears(bar: Bar, before: Reading, now: Reading) -> bool:
    """Whether a reading rose by more than ``bar``: per token, or in all."""
    gain = now.mean - before.mean if bar.per_token else now.total - before.total
    return gain > bar.nats


def _best_apart(kept: list[_Candidate]) -> list[_Candidate]:
    """The best-scored kept candidates whose judged words do not overlap, best first: each
    was judged with the words around it as written, so no two chosen fixes see each other
    (a long hard-wrapped sentence with errors far apart gets them all fixed in one round)."""
    out: list[_Candidate] = []
    for c in sorted(kept, key=lambda c: -c.gain):
        if all(c.unit[1] < o.unit[0] or o.unit[1] < c.unit[0] for o in out):
            out.append(c)
    return sorted(out, key=lambda c: c.edit.start)


def _candidates(text: str, dirty: list[tuple[int, int]], refiner: TextRefiner, lexicon: Lexicon | None,
                cfg: ProofreadConfig, kinds: set[str]) -> list[_Candidate]:
    # a sentence must fit the refiner's trained context with a token to spare (a missing word's row)
    limit = min(cfg.max_sentence_tokens, (refiner.max_length or cfg.max_sentence_tokens + 1) - 1)
    units = [u for u in sentences(text) if len(refiner.encode(text[u[0] : u[1]])[0]) <= limit]
    chunks = [c for c in _chunks(text, not_prose(text))
              if any(s <= c.start < e for s, e in dirty) and any(s <= c.start < e for s, e in units)]
    edits: list[Edit] = []
    if "spelling" in kinds and lexicon is not None:
        edits += spelling_candidates(text, chunks, lexicon, cfg)
    if "word_order" in kinds:
        edits += order_candidates(text, chunks)
    if "missing_word" in kinds:
        edits += missing_candidates(text, chunks, units, refiner, cfg)
    out = []
    for e in edits:
        sentence = _unit_of(units, e.start, e.end)
        if sentence is not None:
            out.append(_Candidate(e, _window(text, sentence, e, cfg.context_chars)))
    return out


def _window(text: str, sentence: tuple[int, int], e: Edit, reach: int) -> tuple[int, int]:
    """The words of ``sentence`` within ``reach`` characters of the edit.

    Both models judge a fix on a window of about the same size wherever it falls: a mean
    per token over a whole long sentence would dilute a fix near its start (for the drafter,
    every token before a fix scores the same either way) and cost time in the sentence's
    length for each candidate.
    """
    lo, hi = max(sentence[0], e.start - reach), min(sentence[1], e.end + reach)
    if lo > sentence[0]:
        cut = text.find(" ", lo, e.start)
        lo = cut + 1 if cut >= 0 else lo
    if hi < sentence[1]:
        cut = text.rfind(" ", e.end, hi)
        hi = cut if cut >= 0 else hi
    return lo, hi


def _moved(edits: list[Edit], text: str) -> list[tuple[int, int]]:
    """Where each of ``edits`` (sorted, into ``text``) lands in ``apply_edits(text, edits)``."""
    out, shift = [], 0
    for e in edits:
        out.append((e.start + shift, e.start + shift + len(e.after)))
        shift += len(e.after) - (e.end - e.start)
    return out


def proofread(text: str, refiner: TextRefiner, drafter: SentenceScorer | None, cfg: ProofreadConfig,
              spelling: bool = True, word_order: bool = True, missing_words: bool = True,
              lexicon: Lexicon | None = None) -> tuple[str, list[Edit]]:
    """Fix misspelled, swapped and missing words that both models clearly prefer fixed.

    ``drafter`` None: the refiner alone checks each fix (a service process without the
    drafter's weights). ``lexicon``: the spelling dictionary (default: symspellpy's English).
    Returns the new text and word-level edits into ``text``.
    """
    kinds = {k for k, on in (("spelling", spelling), ("word_order", word_order), ("missing_word", missing_words))
             if on}
    if not kinds or not text.strip():
        return text, []
    lexicon = lexicon or (english() if spelling else None)
    judge = _Judge(RefinerFluency(refiner, cfg.stride, cfg.batch_rows),
                   DrafterFluency(drafter) if drafter is not None else None, cfg)
    current, marks = text, []  # marks: each applied fix as an edit into ``text``, for the reasons
    dirty = [(0, len(text))]
    for _ in range(cfg.rounds):
        cands = _candidates(current, dirty, refiner, lexicon, cfg, kinds)
        chosen = _best_apart(_judge(current, cands, judge))
        if not chosen:
            break
        applied = [c.edit for c in chosen]
        so_far = compute_edits(text, current)
        marks += [Edit(to_original(e.start, so_far), to_original(e.end, so_far, right=True), "", "", e.reason,
                       _confidence(c)) for c, e in zip(chosen, applied)]
        dirty = _moved(applied, current)
        current = apply_edits(current, applied)
        dirty = [u for u in sentences(current) if any(u[0] <= e and s <= u[1] for s, e in dirty)]
    if current == text:
        return text, []
    return current, by_fix(text, compute_edits(text, current), marks)


def by_fix(text: str, edits: list[Edit], marks: list[Edit]) -> list[Edit]:
    """Word-level edits into ``text`` labelled with the fix that made them (its reason and
    confidence); the pieces of one fix join into one edit: a swap shows as a word deleted in
    one place and inserted in another, which a reader takes in as "these two words swapped"."""
    groups: dict[int, list[Edit]] = {}
    for e in edits:
        k = nearest_mark(e, marks)
        groups.setdefault(-1 - len(groups) if k is None else k, []).append(e)
    out: list[Edit] = []
    for k, group in groups.items():
        s, t = min(e.start for e in group), max(e.end for e in group)
        others = [e for e in edits if e not in group and e.start < t and s < e.end]
        if k < 0 or len(group) == 1 or others:
            out += relabel(group, marks)
            continue
        local = [Edit(e.start - s, e.end - s, e.before, e.after, e.reason, e.confidence) for e in group]
        out.append(trim(Edit(s, t, text[s:t], apply_edits(text[s:t], local), marks[k].reason, marks[k].confidence)))
    return sorted(out, key=lambda e: (e.start, e.end))


def _confidence(c: _Candidate) -> float:
    """The logistic of the smaller gain (nats per token, scaled to a 20-token sentence)."""
    return round(1 / (1 + math.exp(-20 * c.gain)), 4)


def to_original(pos: int, edits: list[Edit], right: bool = False) -> int:
    """Map an offset in ``apply_edits(text, edits)`` back to ``text``; inside an edit, to its start or end."""
    shift = 0
    for e in sorted(edits, key=lambda e: e.start):
        ns, ne = e.start + shift, e.start + shift + len(e.after)
        if pos <= ns:
            break
        if pos < ne or (right and pos == ne):
            return e.end if right else e.start
        shift += len(e.after) - (e.end - e.start)
    return pos - shift
