"""Code repair: code that does not parse comes back parsing, with the fewest edits found.

Each round looks at the first syntax issue of every text on a small beam and tries, first,
minimal edits near it: one structural token inserted or deleted (a bracket, ':', ',', a
quote, a keyword that opens a statement), one bracket changed for another, two adjacent
brackets swapped, one line re-indented to a neighbour's level. The parser's own hints
("expected ':'", "'(' was never closed", tree-sitter's MISSING nodes) go first, then the
other edits nearest the error, up to a bounded number of parser checks. Candidates that
parse, or failing that whose first error moved past this one, are scored by the refiner
(pseudo-likelihood of the changed region against the same region before the change, one
batch), and ranked by number of edits, then score. Where no minimal edit helps, the
refiner re-masks spans around the error and denoises candidates in one batch, as a
fallback. Rounds are bounded. The code is only ever parsed, never run.
"""

from workflows.options import RepairParams
from workflows.repair.fallback import edit_sites
from workflows.repair.fixes import Fix, minimal_fixes
from workflows.repair.search import RepairResult, repair

__all__ = ["Fix", "RepairParams", "RepairResult", "edit_sites", "minimal_fixes", "repair"]
