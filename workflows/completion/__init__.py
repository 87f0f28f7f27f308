"""Completions an editor can insert: scope, candidates, syntax check and joint ranking.

:func:`complete` is the search behind :func:`workflows.infill.infill` when candidates are on.
"""

from workflows.completion.search import complete

__all__ = ["complete"]
