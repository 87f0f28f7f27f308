"""Proofreading of prose: misspelled words and swapped word pairs, with a noisy channel.

A free-form rewrite by a small refiner tends to replace right words with words the model
likes better, and its own pseudo-likelihood then approves the change. Proofreading asks a
narrower question the model can answer: of a few named alternatives for one place in the
text, which reads best? Alternatives come from rules a person would apply, and the
refiner only ranks them:

- spelling: a word the lexicon (see :mod:`refiner.lexicon`) does not know, or knows as
  rare, against the lexicon words one edit away (a letter deleted, inserted, replaced, or
  two adjacent letters transposed). Each alternative scores its log prior (word frequency,
  plus a typo penalty for every word but the one written) plus the refiner's log-probability
  of its tokens with them masked in context. The word is replaced only when a candidate
  beats the word as written by a margin.
- word order: two adjacent words against the same two words swapped, scored by the
  refiner's pseudo-likelihood of the pair and one token on each side (each token masked in
  turn, so the model sees how the words fit each other). A swap is kept only when it wins
  by a margin.

All alternatives of a document are scored in one batch of short windows around them.
Offsets are code points into the text given.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

from refiner.lexicon import CLAUSE, Lexicon, case_like, words
from refiner.scoring import ScoreRow
from refiner.text import TextRefiner
from workflows.edits import Edit, apply_edits

# space-free chunks; a swap moves two that are plain words, maybe with punctuation around
_CHUNK = re.compile(r"\S+")
_PLAIN = re.compile(r"[(\"'\[]?[^\W\d_]+(?:['/-][^\W\d_]+)*[.,;:!?)\"'\]]{0,3}")
# lines only code has: a statement keyword first, a block opener or terminator last, an
# assignment, a closing bracket first; prose that mentions calls, like "sorted()", has none
_CODE_LINE = re.compile(r"^\s*(?:def|class|import|return|elif|else:|try:|while|function|var|let|const|#include)\b"
                        r"|^\s*from\s+[\w.]+\s+import\b|^\s*(?:if|for)\b.*:\s*$|\)\s*:\s*$|[;{]\s*$"
                        r"|^\s*[}\])]|^\s*[\w.\[\]]+\s*[-+*/]?=[^=]")


@dataclass(frozen=True)
class ProofreadConfig:
    """How sure proofreading must be before it changes a word; defaults measured on held-out prose."""

    typo_logp: float = -6.0  # log P(a given word was mistyped): the noisy channel's cost of a correction
    lm_weight: float = 1.0  # weight of the refiner's log-probability beside the frequency prior
    spelling_margin: float = 1.0  # a correction must beat the word as written by this much (nats)
    rare_count: int = 0  # words seen at most this often in training count as doubtful (0: unknown only)
    min_letters: int = 3  # shorter words are left alone: too many neighbours, often abbreviations
    order_margin: float = 5.0  # a swap must raise the words' log-probability by this much (nats)
    order_scorer: str = "lexicon"  # "lexicon": word-pair counts; "refiner": its pseudo-likelihood (slow, weak)
    context_chars: int = 120  # characters of context fed on each side of an alternative
    batch_rows: int = 256  # windows per forward pass


@dataclass(frozen=True)
class _Alt:
    """Replace text[start:end] with ``after``; score its tokens (joint mask or one by one)."""

    start: int
    end: int
    after: str
    pll: bool  # True: pseudo-likelihood (one row per token); False: all tokens masked at once
    extra: int = 0  # neighbour tokens on each side also scored (pll only)


def looks_like_code(text: str) -> bool:
    """A cheap guess: a third of the non-empty lines carry code punctuation or keywords."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return False
    hits = sum(1 for ln in lines if _CODE_LINE.search(ln))
    return hits >= max(1, len(lines) / 3) and hits >= min(2, len(lines))


def score_alternatives(text: str, alts: list[_Alt], refiner: TextRefiner, context_chars: int,
                       batch_rows: int = 256) -> list[float]:
    """Sum of log-probabilities the refiner gives each alternative's tokens in its window."""
    rows: list[ScoreRow] = []
    owner: list[int] = []  # the alternative each row scores
    for k, a in enumerate(alts):
        left = text[max(0, a.start - context_chars) : a.start]
        right = text[a.end : a.end + context_chars]
        ids, offsets = refiner.encode(left + a.after + right)
        lo, hi = len(left), len(left) + len(a.after)
        idx = [i for i, (s, e) in enumerate(offsets) if s < max(hi, lo + 1) and lo < e]
        if not idx:
            continue
        if a.pll:  # one row per token, each masked alone
            first, last = max(0, idx[0] - a.extra), min(len(ids), idx[-1] + 1 + a.extra)
            rows += [ScoreRow(ids, masked=[i], scored=[i]) for i in range(first, last)]
            owner += [k] * (last - first)
        else:
            rows.append(ScoreRow(ids, masked=idx, scored=idx))
            owner.append(k)
    scores = [0.0] * len(alts)
    for k, logp in zip(owner, refiner.score(rows, batch_rows)):
        scores[k] += logp
    return scores


def spelling_edits(text: str, lexicon: Lexicon, refiner: TextRefiner, cfg: ProofreadConfig) -> list[Edit]:
    """Corrections of words the lexicon does not know (or knows as rare), reason "spelling"."""
    places: list[tuple[int, int, str, list[str]]] = []
    for m in words(text):
        w = m.group()
        lower = w.lower()
        if len(w) < cfg.min_letters or lexicon.count(w) > cfg.rare_count:
            continue
        if w != lower and w != w.upper() and w[1:] != lower[1:]:
            continue  # mixed case (iPhone, McKay, camelCase): a name, not a typo
        cands = [case_like(c, w) for c in lexicon.candidates(lower)]
        if cands:
            places.append((m.start(), m.end(), w, cands))
    if not places:
        return []
    alts = [_Alt(s, e, c, pll=False) for s, e, w, cands in places for c in [w, *cands]]
    lm = iter(score_alternatives(text, alts, refiner, cfg.context_chars, cfg.batch_rows))
    out: list[Edit] = []
    for s, e, w, cands in places:
        totals = [lexicon.log_prior(c) + cfg.lm_weight * next(lm) + (0.0 if c == w else cfg.typo_logp)
                  for c in [w, *cands]]
        best = max(range(1, len(totals)), key=totals.__getitem__)
        if totals[best] > totals[0] + cfg.spelling_margin:
            out.append(Edit(s, e, w, cands[best - 1], "spelling", round(_share(totals, best), 4)))
    return out


def order_edits(text: str, lexicon: Lexicon | None, refiner: TextRefiner, cfg: ProofreadConfig) -> list[Edit]:
    """Swaps of adjacent words that read clearly better, reason "word_order".

    The swap of chunks A B (space-free, one space apart) is scored by the lexicon's word
    pairs over [last word before, A's words, B's words, first word after] in both orders;
    with ``cfg.order_scorer == "refiner"``, by the refiner's pseudo-likelihood instead.
    """
    chunks = [m for m in _CHUNK.finditer(text)]
    pairs = []
    for i, (a, b) in enumerate(itertools.pairwise(chunks)):
        if text[a.end() : b.start()] != " " or a.group().lower() == b.group().lower():
            continue
        if not (_PLAIN.fullmatch(a.group()) and _PLAIN.fullmatch(b.group())):
            continue  # code (iter(), x.y) and numbers are not prose words
        pairs.append((i, a.start(), b.end(), f"{b.group()} {a.group()}"))
    if not pairs:
        return []
    if cfg.order_scorer == "refiner" or lexicon is None:
        alts = [_Alt(s, e, t, pll=True, extra=1) for _, s, e, swapped in pairs for t in (text[s:e], swapped)]
        sc = score_alternatives(text, alts, refiner, cfg.context_chars, cfg.batch_rows)
        gains = [sc[2 * k + 1] - sc[2 * k] for k in range(len(pairs))]
    else:
        ws = [[w.group() for w in words(c.group())] for c in chunks]
        gains = []
        for i, *_ in pairs:
            before = ws[i - 1][-1:] if i > 0 and not _ends_clause(chunks[i - 1].group()) else []
            after = ws[i + 2][:1] if i + 2 < len(ws) else []
            kept = lexicon.sequence_logp(before + ws[i] + ws[i + 1] + after)
            swapped = lexicon.sequence_logp(before + ws[i + 1] + ws[i] + after)
            gains.append(swapped - kept)
    out: list[Edit] = []
    taken: list[tuple[int, int]] = []
    for gain, k in sorted(zip(gains, range(len(pairs))), reverse=True):
        _, s, e, after_text = pairs[k]
        if gain <= cfg.order_margin:
            break
        if any(s < te and ts < e for ts, te in taken):
            continue
        taken.append((s, e))
        out.append(Edit(s, e, text[s:e], after_text, "word_order", round(1 / (1 + math.exp(-gain)), 4)))
    return sorted(out, key=lambda x: x.start)


def _ends_clause(chunk: str) -> bool:
    return bool(CLAUSE.search(chunk[-1:]))


def _share(totals: list[float], i: int) -> float:
    """Softmax weight of alternative ``i``: the confidence reported with a correction."""
    top = max(totals)
    z = sum(math.exp(t - top) for t in totals)
    return math.exp(totals[i] - top) / z


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


def proofread(text: str, refiner: TextRefiner, lexicon: Lexicon | None, cfg: ProofreadConfig,
              spelling: bool = True, word_order: bool = True) -> tuple[str, list[Edit]]:
    """Spelling, then word order on the corrected text; edits point into ``text``.

    A swap that covers a corrected word becomes one edit (reason "word_order") from the
    original words to the corrected, swapped ones.
    """
    spell = spelling_edits(text, lexicon, refiner, cfg) if spelling and lexicon is not None else []
    mid = apply_edits(text, spell)
    order = order_edits(mid, lexicon, refiner, cfg) if word_order else []
    out: list[Edit] = []
    for o in order:
        s, e = to_original(o.start, spell), to_original(o.end, spell, right=True)
        out.append(Edit(s, e, text[s:e], o.after, o.reason, o.confidence))
    out += [x for x in spell if not any(x.start < o.end and o.start < x.end for o in out)]
    out.sort(key=lambda e: e.start)
    return apply_edits(text, out), out
