"""``remask infill | revise | repair``: the pipelines on files or stdin.

Text goes to stdout by default; ``--json`` prints the whole result (edits, diff, audit).
Input must be UTF-8 text: binary or undecodable input is refused with the byte offset.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

FILL_MARKER = "<FILL>"


def read_input(source: str) -> str:
    """Read a file (or ``-`` for stdin) as UTF-8 text, refusing binary and empty input."""
    if source == "-":
        data = sys.stdin.buffer.read()
        where = "stdin"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"input file {source!r} does not exist")
        data = path.read_bytes()
        where = source
    if b"\x00" in data[:8192]:
        raise ValueError(f"{where} looks binary (it contains NUL bytes); remask edits text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where} is not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise ValueError(f"{where} is empty")
    return text


def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return obj


def _models(p: argparse.ArgumentParser, drafter: bool = True) -> None:
    p.add_argument("input", nargs="?", default="-", help="file to read (default: stdin)")
    p.add_argument("--refiner", type=Path, default=None, help="refiner model directory (default: models/refiner)")
    if drafter:
        p.add_argument("--drafter", type=Path, default=None, help="drafter model directory (default: models/drafter)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed: the same seed gives the same output")
    p.add_argument("--steps", type=int, default=16, help="denoising step budget")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")


def register(sub: Any) -> None:
    p = sub.add_parser("infill", help="fill the gap marked <FILL> in a file")
    _models(p)
    p.add_argument("--marker", default=FILL_MARKER, help="where to fill (default: %(default)s)")
    p.add_argument("--mode", choices=["ar", "diffusion", "hybrid"], default="hybrid")
    p.add_argument("--max-tokens", type=int, default=32)
    p.set_defaults(func=_infill)

    p = sub.add_parser("revise", help="revise a document: selected spans, doubtful spans, or a rule set")
    _models(p)
    p.add_argument("--span", action="append", default=[], metavar="START:END",
                   help="character span to redo (code points; repeatable); none: find doubtful spans")
    p.add_argument("--rules", type=Path, help="compliance rule set (YAML) to apply instead")
    p.add_argument("--detect", choices=["refiner", "drafter", "both"], default="refiner")
    p.add_argument("--max-fraction", type=float, default=0.15, help="most share of tokens re-masked")
    p.add_argument("--language", default=None, help="'prose' or a code language (never proofread); default: guessed")
    p.add_argument("--no-spelling", action="store_true", help="prose: do not correct unknown words")
    p.add_argument("--no-word-order", action="store_true", help="prose: do not swap adjacent words")
    p.add_argument("--rewrite-prose", action="store_true",
                   help="prose: also re-mask and denoise low-confidence spans (code always is)")
    p.set_defaults(func=_revise)

    p = sub.add_parser("repair", help="repair code that does not parse")
    _models(p, drafter=False)
    p.add_argument("--language", default="python")
    p.add_argument("--rounds", type=int, default=3)
    p.set_defaults(func=_repair)


def _emit(args: argparse.Namespace, result: Any, text: str) -> None:
    if args.json:
        print(json.dumps(to_jsonable(result), ensure_ascii=False))
    else:
        sys.stdout.write(text)


def _params(cls: Any, **fields: Any) -> Any:
    try:
        return cls(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"--{'-'.join(str(x) for x in err['loc']).replace('_', '-')}: {err['msg']}") from None


def _infill(args: argparse.Namespace) -> int:
    from workflows.engines import load_drafter, load_refiner
    from workflows.infill import InfillParams, infill

    text = read_input(args.input)
    if text.count(args.marker) != 1:
        raise ValueError(f"the input must contain the marker {args.marker!r} exactly once "
                         f"(found {text.count(args.marker)})")
    prefix, suffix = text.split(args.marker)
    params = _params(InfillParams, mode=args.mode, max_tokens=args.max_tokens, steps=args.steps, seed=args.seed)
    refiner = load_refiner(args.refiner)
    drafter = load_drafter(args.drafter) if args.mode != "diffusion" else None
    res = infill(prefix, suffix, params, refiner, drafter)
    _emit(args, res, prefix + res.text + suffix)
    return 0


def _parse_span(s: str) -> tuple[int, int]:
    try:
        a, b = s.split(":")
        return int(a), int(b)
    except ValueError:
        raise ValueError(f"--span {s!r}: expected START:END, two integers") from None


def _revise(args: argparse.Namespace) -> int:
    from workflows.engines import load_drafter, load_refiner

    text = read_input(args.input)
    refiner = load_refiner(args.refiner)
    if args.rules:
        from workflows.compliance import ComplianceParams, apply_rules
        from workflows.rules import load_rules

        rules = load_rules(args.rules)
        cres = apply_rules(text, rules, refiner, _params(ComplianceParams, steps=args.steps, seed=args.seed))
        _emit(args, cres, cres.text)
        return 0
    from workflows.revise import ReviseParams, revise

    spans = [_parse_span(s) for s in args.span] or None
    params = _params(ReviseParams, spans=spans, detect=args.detect, steps=args.steps, seed=args.seed,
                     max_fraction=args.max_fraction, language=args.language, spelling=not args.no_spelling,
                     word_order=not args.no_word_order, rewrite_prose=args.rewrite_prose)
    drafter = load_drafter(args.drafter) if args.detect != "refiner" and spans is None else None
    res = revise(text, params, refiner, drafter, name=Path(args.input).name if args.input != "-" else "stdin")
    _emit(args, res, res.text)
    return 0


def _repair(args: argparse.Namespace) -> int:
    from workflows.engines import load_refiner
    from workflows.repair import RepairParams, repair

    code = read_input(args.input)
    params = _params(RepairParams, language=args.language, rounds=args.rounds, steps=args.steps, seed=args.seed)
    refiner = load_refiner(args.refiner)
    res = repair(code, params, refiner, name=Path(args.input).name if args.input != "-" else "stdin")
    _emit(args, res, res.text)
    if not res.parses:
        first = res.issues_after[0].message if res.issues_after else "unknown"
        print(f"remask: the code still does not parse after {res.rounds} rounds: {first}", file=sys.stderr)
        return 1
    return 0
