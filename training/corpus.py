"""Build, describe and read remask's training corpus.

``build_corpus(out_dir)`` gathers documents (see :mod:`training.sources`), drops exact
duplicates, splits them three ways and writes::

    out_dir/train.jsonl              one {"id", "kind", "source", "group", "package",
                                     "text"} per line, by id
    out_dir/held_out.jsonl           file-level held-out documents (a hash of the split key)
    out_dir/held_out_packages.jsonl  every document of the held-out packages
    out_dir/held_out.txt             the ids of both held-out splits, one per line
    out_dir/manifest.json            sources, packages (version, licence, files, bytes),
                                     skipped packages and why, counts, per-document sha256,
                                     the split rule

Two held-out splits answer two questions. ``held_out`` holds files whose siblings were
trained on (the standard library's other modules, other files of a training package):
the figures old models were measured on. ``held_out_packages`` holds whole projects the
models never saw (:data:`training.packages.HELD_OUT_PACKAGES`): code written by other
hands, in other styles, which is what users bring.

Nothing depends on file-system order or on the machine beyond the files themselves, so two
builds from the same files write byte-identical outputs. The corpus text is never
committed: any machine rebuilds it; :func:`publish_manifest` copies the manifest (held-out
entries only) and the held-out list to a small folder that is.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from training import files
from training.packages import HELD_OUT_PACKAGES as HELD_OUT_PACKAGE_NAMES
from training.sources import (
    KINDS,
    ROOT_RULES,
    SOURCE_PRIORITY,
    Document,
    PackageReport,
    SourceRoots,
    collect_all,
)

TRAIN = "train"
HELD_OUT = "held_out"
HELD_OUT_PACKAGES = "held_out_packages"
SPLITS: tuple[str, ...] = (TRAIN, HELD_OUT, HELD_OUT_PACKAGES)
HELD_OUT_SPLITS: tuple[str, ...] = (HELD_OUT, HELD_OUT_PACKAGES)

FORMAT = "remask-corpus/2"
SPLIT_SALT = "remask-corpus-split/v1"  # changing it reshuffles the split: bump the version
SPLIT_BUCKETS = 10_000
DEFAULT_HELD_OUT_FRACTION = 0.05


def split_of(key: str, held_out_fraction: float = DEFAULT_HELD_OUT_FRACTION) -> str:
    """``"held_out"`` or ``"train"`` for a split key, from its salted sha256 alone.

    A document's side depends only on its key, never on which other documents exist or on
    the order they were read, so adding a package to a machine moves no other document.
    """
    digest = hashlib.sha256(f"{SPLIT_SALT}:{key}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % SPLIT_BUCKETS
    return HELD_OUT if bucket < round(held_out_fraction * SPLIT_BUCKETS) else TRAIN


def split_of_document(doc: Document, held_out_fraction: float = DEFAULT_HELD_OUT_FRACTION) -> str:
    """A document's split: its package's if that package is held out, else by its key."""
    if doc.package and doc.package in HELD_OUT_PACKAGE_NAMES:
        return HELD_OUT_PACKAGES
    return split_of(doc.split_key, held_out_fraction)


def text_sha256(text: str) -> str:
    """Hex sha256 of a text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def deduplicate(documents: Iterable[Document]) -> tuple[list[Document], int]:
    """Keep one document per distinct text: the steadiest source's, then the smallest id.

    Returns the kept documents sorted by id and how many were dropped. Choosing by source
    priority and id (not by arrival) keeps the result independent of reading order.
    """
    best: dict[str, Document] = {}
    total = 0
    for doc in documents:
        total += 1
        digest = text_sha256(doc.text)
        kept = best.get(digest)
        if kept is None or _dedup_rank(doc) < _dedup_rank(kept):
            best[digest] = doc
    kept_docs = sorted(best.values(), key=lambda d: d.id)
    ids = [d.id for d in kept_docs]
    if len(set(ids)) != len(ids):
        raise ValueError("two different texts share one document id; ids must be unique")
    return kept_docs, total - len(kept_docs)


def _dedup_rank(doc: Document) -> tuple[int, str]:
    known = doc.source in SOURCE_PRIORITY
    return (SOURCE_PRIORITY.index(doc.source) if known else len(SOURCE_PRIORITY)), doc.id


def build_corpus(
    out_dir: str | Path,
    roots: SourceRoots | None = None,
    held_out_fraction: float = DEFAULT_HELD_OUT_FRACTION,
) -> dict[str, Any]:
    """Gather, deduplicate, split and write the corpus to ``out_dir``; return the manifest.

    ``roots`` defaults to this machine's (:meth:`SourceRoots.machine_defaults`). Raises
    ``ValueError`` if the sources hold no document or the fraction is outside [0, 1).
    """
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    roots = roots if roots is not None else SourceRoots.machine_defaults()
    report = PackageReport()
    documents, dropped = deduplicate(collect_all(roots, report))
    if not documents:
        raise ValueError("no documents found in any corpus source; nothing to build")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    entries: list[dict[str, Any]] = []
    file_hashes: dict[str, str] = {}
    for split in SPLITS:
        name = f"{split}.jsonl"
        digest = hashlib.sha256()
        with files.atomic_open(out / name) as handle:
            for doc in documents:
                if split_of_document(doc, held_out_fraction) != split:
                    continue
                line = json.dumps(
                    {"id": doc.id, "kind": doc.kind, "source": doc.source,
                     "group": doc.split_key, "package": doc.package, "text": doc.text},
                    ensure_ascii=False,
                ) + "\n"
                handle.write(line)
                digest.update(line.encode("utf-8"))
                entries.append({
                    "id": doc.id, "kind": doc.kind, "source": doc.source, "split": split,
                    "package": doc.package,
                    "bytes": len(doc.text.encode("utf-8")), "chars": len(doc.text),
                    "sha256": text_sha256(doc.text),
                })
        file_hashes[name] = digest.hexdigest()
    entries.sort(key=lambda e: e["id"])

    manifest = _manifest(entries, dropped, held_out_fraction, file_hashes, report)
    held_out_ids = [e["id"] for e in entries if e["split"] in HELD_OUT_SPLITS]
    files.write_text(out / "held_out.txt", "".join(f"{i}\n" for i in held_out_ids))
    files.write_json(out / "manifest.json", manifest)
    return manifest


def _manifest(
    entries: list[dict[str, Any]], dropped: int, fraction: float, file_hashes: dict[str, str],
    report: PackageReport,
) -> dict[str, Any]:
    totals: dict[str, dict[str, dict[str, int]]] = {
        split: {kind: {"documents": 0, "bytes": 0, "chars": 0} for kind in KINDS}
        for split in SPLITS
    }
    sources: dict[str, dict[str, Any]] = {}
    for e in entries:
        cell = totals[e["split"]][e["kind"]]
        cell["documents"] += 1
        cell["bytes"] += e["bytes"]
        cell["chars"] += e["chars"]
        src = sources.setdefault(
            e["source"], {"kind": e["kind"], "root": ROOT_RULES.get(e["source"], ""),
                          "documents": 0, "bytes": 0}
        )
        src["documents"] += 1
        src["bytes"] += e["bytes"]
    whole = hashlib.sha256("".join(f"{e['id']}\t{e['sha256']}\n" for e in entries).encode())
    return {
        "format": FORMAT,
        "python": {"implementation": platform.python_implementation(),
                   "version": platform.python_version()},
        "split_rule": {
            "description": (
                "held_out if int(sha256(salt + ':' + key)[:8 bytes], big-endian) % buckets "
                "< held_out_buckets; key is the document id, except that a module's "
                "docstrings use the id of its code; every document of a held-out package "
                "goes to held_out_packages"
            ),
            "held_out_packages": list(HELD_OUT_PACKAGE_NAMES),
            "salt": SPLIT_SALT,
            "buckets": SPLIT_BUCKETS,
            "held_out_buckets": round(fraction * SPLIT_BUCKETS),
            "held_out_fraction": fraction,
        },
        "dedup": (
            "exact text (sha256 of UTF-8); of equal texts the first source in "
            f"{list(SOURCE_PRIORITY)} keeps it, then the smallest id"
        ),
        "duplicates_dropped": dropped,
        "packages": _package_rows(report, entries),
        "skipped_packages": sorted(report.skipped, key=lambda r: r["package"]),
        "sources": dict(sorted(sources.items())),
        "totals": totals,
        "files": file_hashes,
        "corpus_sha256": whole.hexdigest(),
        "documents": entries,
    }


def _package_rows(report: PackageReport, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per distribution read: version, licence, files and bytes kept after dedup."""
    kept: dict[str, list[int]] = {}
    for e in entries:
        if e["source"] == "package-code":
            cell = kept.setdefault(e["package"], [0, 0])
            cell[0] += 1
            cell[1] += e["bytes"]
    rows = []
    for row in sorted(report.packages, key=lambda r: r["package"]):
        files_kept, bytes_kept = kept.get(row["package"], [0, 0])
        split = HELD_OUT_PACKAGES if row["package"] in HELD_OUT_PACKAGE_NAMES else "train+held_out"
        rows.append(row | {"files": files_kept, "bytes": bytes_kept, "split": split})
    return rows


def load_manifest(corpus_dir: str | Path) -> dict[str, Any]:
    """Read ``manifest.json``; a missing directory or manifest is a clear error."""
    root = Path(corpus_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"corpus directory not found: {root}")
    path = root / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"not a corpus directory (no manifest.json): {root}; run `remask corpus build`"
        )
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise ValueError(
            f"{path}: corpus format {manifest.get('format')!r} is not {FORMAT!r}; rebuild it "
            "with `remask corpus build`"
        )
    return manifest


def iter_documents(
    corpus_dir: str | Path, split: str, kind: str | None = None
) -> Iterator[Document]:
    """Yield the documents of one split (``"train"`` or ``"held_out"``), by id.

    ``kind`` (``"code"`` or ``"prose"``) keeps only that kind.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS} or None, got {kind!r}")
    load_manifest(corpus_dir)  # checks the directory before any reading
    with open(Path(corpus_dir) / f"{split}.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if kind is None or row["kind"] == kind:
                yield Document(row["kind"], row["id"], row["text"], row["source"], row["group"],
                               row.get("package", ""))


def publish_manifest(corpus_dir: str | Path, dest_dir: str | Path) -> dict[str, Any]:
    """Write a small, committable copy of a corpus's manifest and held-out id list.

    The copy keeps every figure and hash but lists only the held-out documents (with their
    sha256), which is what a benchmark needs to check it evaluates on held-out text.
    """
    manifest = load_manifest(corpus_dir)
    small = dict(manifest)
    small["documents"] = [d for d in manifest["documents"] if d["split"] in HELD_OUT_SPLITS]
    small["documents_note"] = "held-out documents only; the corpus's own manifest lists all"
    dest = Path(dest_dir)
    files.write_json(dest / "manifest.json", small)
    ids = "".join(f"{d['id']}\n" for d in small["documents"])
    files.write_text(dest / "held_out.txt", ids)
    return small


def summarize(manifest: dict[str, Any]) -> dict[str, Any]:
    """Sizes in MB (10**6 bytes) and document counts per split and kind, for printing."""
    out: dict[str, Any] = {"corpus_sha256": manifest["corpus_sha256"],
                           "duplicates_dropped": manifest["duplicates_dropped"]}
    for split in SPLITS:
        for kind in KINDS:
            cell = manifest["totals"][split][kind]
            out[f"{split}_{kind}_documents"] = cell["documents"]
            out[f"{split}_{kind}_mb"] = round(cell["bytes"] / 1e6, 3)
    for kind in KINDS:
        out[f"{kind}_mb"] = round(
            sum(manifest["totals"][s][kind]["bytes"] for s in SPLITS) / 1e6, 3
        )
    out["sources"] = {
        name: {"documents": s["documents"], "mb": round(s["bytes"] / 1e6, 3)}
        for name, s in manifest["sources"].items()
    }
    packages = manifest.get("packages", [])
    out["packages_read"] = len(packages)
    out["held_out_packages"] = sorted(
        p["package"] for p in packages if p["split"] == HELD_OUT_PACKAGES
    )
    out["packages_skipped"] = [
        f"{p['package']} {p['version']}: {p['reason']}".replace(" :", ":")
        for p in manifest.get("skipped_packages", [])
    ]
    return out
