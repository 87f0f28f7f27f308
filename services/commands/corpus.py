"""``remask corpus build``: gather the training corpus from text and code on this machine.

``remask corpus lexicon``: count the words and word pairs of the corpus's train prose into
the refiner's lexicon file (spelling and word-order checks of ``revise``).

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
    lx = which.add_parser("lexicon", help="write the word lexicon of the train split's prose next to a refiner")
    lx.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="a built corpus (default %(default)s)")
    lx.add_argument("--out", type=Path, default=Path("models/refiner"),
                    help="refiner folder to write lexicon.tsv.gz into (default %(default)s)")
    lx.add_argument("--min-count", type=int, default=2, help="keep words seen this often (default %(default)s)")
    lx.add_argument("--min-pair-count", type=int, default=3,
                    help="keep word pairs seen this often (default %(default)s)")
    lx.set_defaults(func=run_lexicon)


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


def run_lexicon(args: argparse.Namespace) -> int:
    """Build the lexicon from train-split prose only (held-out text never enters it)."""
    from refiner.lexicon import LEXICON_FILE, Lexicon
    from training.corpus import TRAIN, iter_documents

    texts = (d.text for d in iter_documents(args.corpus, TRAIN, kind="prose"))
    lexicon = Lexicon.build(texts, min_count=args.min_count, min_pair_count=args.min_pair_count)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / LEXICON_FILE
    lexicon.save(path)
    print(json.dumps({"path": str(path), "words": len(lexicon), "pairs": len(lexicon.pairs),
                      "bytes": path.stat().st_size}, indent=2))
    return 0
