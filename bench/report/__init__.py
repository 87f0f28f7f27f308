"""The benchmark report: stored results, targets, plots and ``bench/REPORT.md``.

Not a benchmark itself: ``remask bench report`` runs the registered benchmarks (each as
``remask bench <name> --json`` in its own process), stores their figures under
``bench/results/`` and renders them.
"""

from bench.report.build import add_arguments, build_report, main

__all__ = ["add_arguments", "build_report", "main"]
