"""``remask bench <what>``: benchmarks that print JSON figures.

Each benchmark lives in ``bench/<what>.py`` with ``add_arguments(parser)`` and ``run(args) -> dict``.
"""

from __future__ import annotations

import argparse
import importlib
import json
from typing import Any

# name -> module in bench/
BENCHMARKS: dict[str, str] = {
    "sampler": "bench.sampler",
    "drafter": "bench.drafter",
    "onnx_refiner": "bench.onnx_refiner",
    "quality": "bench.quality",
    "models": "bench.models",
    "queue": "bench.queue",
    "serve": "bench.serve",
    "shutdown": "bench.shutdown",
    "fuzz": "bench.fuzz",
}


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="run a benchmark and print its figures")
    which = p.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    which.required = True
    for name, module in BENCHMARKS.items():
        mod = importlib.import_module(module)
        bp = which.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0])
        bp.add_argument("--json", action="store_true", help="print one JSON object (the default output)")
        mod.add_arguments(bp)
        bp.set_defaults(func=_runner(mod))
    report = importlib.import_module("bench.report")  # not a benchmark: renders their stored figures
    rp = which.add_parser("report", help="re-run benchmarks (--run) and rebuild bench/REPORT.md from their stored "
                          "figures")
    report.add_arguments(rp)
    rp.set_defaults(func=lambda args: report.main(args, BENCHMARKS))


def _runner(mod: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        figures: dict[str, Any] = mod.run(args)
        print(json.dumps(figures, indent=None if args.json else 2))
        return 0

    return run
