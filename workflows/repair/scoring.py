"""How much a fix raises the refiner's pseudo-likelihood of the code around it."""

from __future__ import annotations

from refiner.scoring import ScoreRow
from refiner.text import TextRefiner
from workflows.repair.fixes import Fix

_SCORE_CONTEXT = 32  # context tokens either side of a scored region


def score_fixes(refiner: TextRefiner, fixes: list[tuple[str, Fix]]) -> list[float]:
    """The refiner's score change of each ``(text, fix)``.

    The region is the tokens the fix touches and one token either side, before and after
    the fix; each region is scored in two rows (alternate tokens masked), so no token vouches
    for itself. The score is the region's log-probability after minus before: comparable
    across fixes at different places. All rows go through the refiner together.
    """
    rows: list[ScoreRow] = []
    owner: list[tuple[int, int]] = []  # per row: (fix index, +1 after / -1 before)
    for i, (text, fix) in enumerate(fixes):
        after = fix.apply(text)
        for sign, t, s, e in ((-1, text, fix.start, fix.end), (1, after, fix.start, fix.start + len(fix.after))):
            for row in _region_rows(refiner, t, s, e):
                rows.append(row)
                owner.append((i, sign))
    out = [0.0] * len(fixes)
    for (i, sign), logp in zip(owner, refiner.score(rows)):
        out[i] += sign * logp
    return out


def _region_rows(refiner: TextRefiner, text: str, start: int, end: int) -> list[ScoreRow]:
    """Two rows scoring the tokens over text[start:end] and one token either side."""
    lo, hi = max(0, start - 400), min(len(text), end + 400)
    ids, offs = refiner.encode(text[lo:hi])
    if not ids:
        return []
    a, b = start - lo, max(end - lo, start - lo + 1)
    touched = [k for k, (s, e) in enumerate(offs) if e > a and s < b] or \
        [min(range(len(offs)), key=lambda k: abs(offs[k][0] - a))]
    r0, r1 = max(0, touched[0] - 1), min(len(ids), touched[-1] + 2)
    c0, c1 = max(0, r0 - _SCORE_CONTEXT), min(len(ids), r1 + _SCORE_CONTEXT)
    rows = []
    for parity in (0, 1):
        pos = [k - c0 for k in range(r0, r1) if (k - r0) % 2 == parity]
        if pos:
            rows.append(ScoreRow(ids[c0:c1], masked=pos, scored=pos))
    return rows
