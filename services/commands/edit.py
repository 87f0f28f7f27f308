"""``remask infill | revise | repair``: the pipelines on files or stdin.

Text goes to stdout by default; ``--json`` prints the whole result (edits, diff, audit).
Input must be UTF-8 text: binary or undecodable input is refused with the byte offset.

Every pipeline option is a flag generated from its options model (:mod:`workflows.options`):
name, type, choices, default and help are the field's, so the CLI cannot drift from the HTTP
API, and a flag left out takes the very default that a request leaving the field out takes.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from collections.abc import Callable, Collection
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from workflows.options import ComplianceParams, InfillParams, RepairParams, ReviseParams

FILL_MARKER = "<FILL>"
NULL_WORDS = ("none", "null")  # what a flag of an optional value takes for "no value"
Options = TypeVar("Options", bound=BaseModel)


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


def add_options(p: argparse.ArgumentParser, model: type[BaseModel], skip: Collection[str] = (),
                title: str | None = None) -> None:
    """One flag per field of ``model`` but ``skip``: ``--max-tokens`` sets ``max_tokens``.

    A flag left out is absent from the parsed arguments (``argparse.SUPPRESS``), so the
    model's own default applies; ``title`` puts the flags in a group of their own in ``--help``.
    """
    target = p.add_argument_group(title) if title else p
    for name, info in model.model_fields.items():
        if name not in skip:
            target.add_argument("--" + name.replace("_", "-"), dest=name, default=argparse.SUPPRESS,
                                help=_help(info), **flag_kind(info.annotation))


def flag_kind(annotation: Any) -> dict[str, Any]:
    """argparse's settings for a field of this type: a switch, choices, a repeatable text or a value."""
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if get_origin(annotation) is Literal:
        return {"choices": get_args(annotation)}
    if get_origin(annotation) is list and get_args(annotation) == (str,):
        return {"action": "append", "metavar": "TEXT"}
    if annotation in (int, float, str):
        return {"type": annotation}
    if get_origin(annotation) is types.UnionType:
        present = [a for a in get_args(annotation) if a is not type(None)]
        if len(present) == 1 and present[0] in (int, float, str):
            return {"type": _or_null(present[0]), "metavar": f"{present[0].__name__.upper()}|none"}
    raise TypeError(f"no flag for an option of type {annotation}: skip it and write its flag by hand")


def _or_null(kind: type) -> Callable[[str], Any]:
    """A flag's parser for an optional value: ``none`` (or ``null``, as in JSON) is no value."""
    def parse(text: str) -> Any:
        return None if text.lower() in NULL_WORDS else kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its error message
    return parse


def _help(info: FieldInfo) -> str:
    default = None if info.default_factory is not None else info.default
    shown = "none" if default is None or default == [] else default
    return f"{info.description or ''} (default: {shown})".replace("%", "%%")


def parsed_options(model: type[Options], args: argparse.Namespace, **given: Any) -> Options:
    """``model`` from the flags that were given (and ``given``), or ValueError naming the flag."""
    fields = {k: v for k, v in vars(args).items() if k in model.model_fields}
    try:
        return model(**fields, **given)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"--{'-'.join(str(x) for x in err['loc']).replace('_', '-')}: {err['msg']}") from None


def _models(p: argparse.ArgumentParser, drafter: bool = True) -> None:
    p.add_argument("input", nargs="?", default="-", help="file to read (default: stdin)")
    p.add_argument("--refiner", type=Path, default=None, help="refiner model directory (default: models/refiner)")
    if drafter:
        p.add_argument("--drafter", type=Path, default=None, help="drafter model directory (default: models/drafter)")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")


def register(sub: Any) -> None:
    p = sub.add_parser("infill", help="fill the gap marked <FILL> in a file")
    _models(p)
    p.add_argument("--marker", default=FILL_MARKER, help="where to fill (default: %(default)s)")
    add_options(p, InfillParams)
    p.set_defaults(func=_infill)

    p = sub.add_parser("revise", help="revise a document: selected spans, doubtful spans, or a rule set")
    _models(p)
    p.add_argument("--span", action="append", default=[], metavar="START:END",
                   help="character span to redo (code points; repeatable); none: find doubtful spans")
    p.add_argument("--rules", type=Path, help="compliance rule set (YAML) to apply instead")
    add_options(p, ReviseParams, skip={"spans"})
    add_options(p, ComplianceParams, skip=ReviseParams.model_fields.keys(), title="with --rules")
    p.set_defaults(func=_revise)

    p = sub.add_parser("repair", help="repair code that does not parse")
    _models(p, drafter=False)
    add_options(p, RepairParams)
    p.set_defaults(func=_repair)


def _emit(args: argparse.Namespace, result: Any, text: str) -> None:
    if args.json:
        print(json.dumps(asdict(result), ensure_ascii=False))
    else:
        sys.stdout.write(text)


def _infill(args: argparse.Namespace) -> int:
    from workflows.engines import load_drafter, load_refiner
    from workflows.infill import infill

    text = read_input(args.input)
    if text.count(args.marker) != 1:
        raise ValueError(f"the input must contain the marker {args.marker!r} exactly once "
                         f"(found {text.count(args.marker)})")
    prefix, suffix = text.split(args.marker)
    params = parsed_options(InfillParams, args)
    refiner = load_refiner(args.refiner)
    drafter = load_drafter(args.drafter) if params.mode != "diffusion" else None
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
        from workflows.compliance import apply_rules
        from workflows.rules import load_rules

        rules = load_rules(args.rules)
        drafter = load_drafter(args.drafter)  # judges how the rewrites read
        cres = apply_rules(text, rules, refiner, parsed_options(ComplianceParams, args), drafter=drafter)
        _emit(args, cres, cres.text)
        return 0
    from workflows.engine.pipelines import DRAFTER, revise_needs
    from workflows.revise import revise

    params = parsed_options(ReviseParams, args, spans=[_parse_span(s) for s in args.span] or None)
    # the drafter scores the text (detect) and checks proofreading's fixes of prose
    drafter = load_drafter(args.drafter) if DRAFTER in revise_needs(params) else None
    res = revise(text, params, refiner, drafter, name=Path(args.input).name if args.input != "-" else "stdin")
    _emit(args, res, res.text)
    return 0


def _repair(args: argparse.Namespace) -> int:
    from workflows.engines import load_refiner
    from workflows.repair import repair

    code = read_input(args.input)
    params = parsed_options(RepairParams, args)
    refiner = load_refiner(args.refiner)
    res = repair(code, params, refiner, name=Path(args.input).name if args.input != "-" else "stdin")
    _emit(args, res, res.text)
    if not res.parses:
        first = res.issues_after[0].message if res.issues_after else "unknown"
        print(f"remask: the code still does not parse after {res.rounds} rounds: {first}", file=sys.stderr)
        return 1
    return 0
