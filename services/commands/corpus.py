"""``remask corpus build``: gather the training corpus from text and code on this machine.

Prints the corpus summary (documents and MB of code and prose per split, the packages read
and every package skipped with its reason) as JSON. The source roots default to the running
interpreter's standard library and site-packages, Debian's dist-packages and Debian's
``/usr/share`` folders; each can be pointed elsewhere.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from training.corpus import DEFAULT_HELD_OUT_FRACTION, build_corpus, publish_manifest, summarize
from training.sources import SourceRoots


def register(sub: Any) -> None:
    """Add ``corpus build`` to the ``remask`` subcommands."""
    p = sub.add_parser("corpus", help="build the training corpus")
    which = p.add_subparsers(dest="corpus_command", metavar="ACTION")
    which.required = True
    b = which.add_parser("build", help="gather, deduplicate and split the corpus into a folder")
    b.add_argument("--out", required=True, type=Path, help="folder to write the corpus to")
    b.add_argument(
        "--held-out-fraction", type=float, default=DEFAULT_HELD_OUT_FRACTION,
        help="share of documents held out, chosen by a hash of their ids (default %(default)s)",
    )
    b.add_argument(
        "--publish", type=Path, default=None,
        help="also write the small manifest copy and held-out list here (e.g. models/corpus)",
    )
    roots = b.add_argument_group("source roots (default: this machine's)")
    roots.add_argument("--stdlib", type=Path, help="Python standard library folder")
    roots.add_argument("--common-licenses", type=Path, help="folder of full license texts")
    roots.add_argument("--doc", type=Path, help="folder of <package>/copyright files")
    roots.add_argument(
        "--site-packages", type=Path, action="append",
        help="a site-packages folder whose permissively licensed distributions (code, "
        "descriptions, licence files) to read (repeatable; default: this interpreter's "
        "site-packages, then /usr/lib/python3/dist-packages)",
    )
    b.set_defaults(func=run_build)


def roots_from_args(args: argparse.Namespace) -> SourceRoots:
    """This machine's roots, with any root given on the command line replacing its default."""
    default = SourceRoots.machine_defaults()
    return SourceRoots(
        stdlib=args.stdlib or default.stdlib,
        common_licenses=args.common_licenses or default.common_licenses,
        doc=args.doc or default.doc,
        site_packages=tuple(args.site_packages) if args.site_packages else default.site_packages,
    )


def run_build(args: argparse.Namespace) -> int:
    """Build the corpus, optionally publish its manifest, print the summary."""
    for name in ("stdlib", "common_licenses", "doc"):
        given = getattr(args, name)
        if given is not None and not given.is_dir():
            raise FileNotFoundError(f"--{name.replace('_', '-')} folder not found: {given}")
    manifest = build_corpus(args.out, roots_from_args(args), args.held_out_fraction)
    if args.publish is not None:
        publish_manifest(args.out, args.publish)
    print(json.dumps(summarize(manifest), indent=2))
    return 0

