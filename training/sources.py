"""Where the training corpus comes from: text and code that every machine already has.

No machine here can download data, so the corpus is gathered from what a Debian 12 system
with CPython 3.11 ships:

- code: the standard library's ``.py`` sources (test suites, build-specific modules and
  very large files left out);
- prose: license texts (``/usr/share/common-licenses``), Debian ``copyright`` files, the
  ``LICENSE``/``COPYING`` files of the standard library and of installed distributions
  (``*.dist-info``), the reference topics of the Python documentation
  (``pydoc_data/topics.py``) and the docstrings of the standard library's modules;
- the installed distributions of site-packages and Debian's dist-packages, permissively
  licensed ones only (:mod:`training.packages`): their code, and their long descriptions
  as prose; and the READMEs and text documents of ``/usr/share/doc`` for Debian packages
  whose ``copyright`` file names only permissive licences.

Each collector takes its root as a parameter (tests pass a tiny fake tree) and yields
:class:`Document` objects whose ids are paths relative to that root behind a source prefix,
so an id names the same text on every machine. Files are visited in sorted order.
"""

from __future__ import annotations

import ast
import gzip
import io
import os
import re
import sysconfig
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training import packages as pkg

CODE = "code"
PROSE = "prose"
KINDS: tuple[str, ...] = (CODE, PROSE)

DEBIAN_DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")
MAX_FILE_BYTES = 200_000  # bigger files are generated tables or data, not typical text
# directories never read for code: test suites, third-party packages, caches
SKIP_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})
# standard-library files that are data or hold the build machine's own paths
SKIP_CODE_PREFIXES: tuple[str, ...] = ("_sysconfigdata", "pydoc_data/topics.py", "config-")
LICENSE_NAMES: tuple[str, ...] = ("LICENSE", "LICENCE", "COPYING", "NOTICE")
PYDOC_TOPICS = "pydoc_data/topics.py"


@dataclass(frozen=True)
class Document:
    """One corpus document.

    ``id`` is stable across machines (source prefix + path relative to the source root).
    ``group`` is the key the train/held-out split hashes; documents derived from the same
    file share it (a module's docstrings follow its code), so held-out text never leaks
    into training through a second view of the same file. Empty means ``id``.
    """

    kind: str  # "code" | "prose"
    id: str
    text: str
    source: str = ""  # collector name, e.g. "stdlib-code"
    group: str = field(default="")
    package: str = ""  # the distribution a package document comes from ("" otherwise)

    @property
    def split_key(self) -> str:
        """The string the split rule hashes."""
        return self.group or self.id


@dataclass(frozen=True)
class SourceRoots:
    """Roots the collectors read; ``None`` (or an empty tuple) switches a source off."""

    stdlib: Path | None = None
    common_licenses: Path | None = None
    doc: Path | None = None  # holds <package>/copyright
    site_packages: tuple[Path, ...] = ()

    @classmethod
    def machine_defaults(cls) -> SourceRoots:
        """The roots of the running interpreter and of a Debian system.

        site-packages first, then Debian's dist-packages: a distribution installed in both
        is read from the first (the one remask runs with).
        """
        paths = sysconfig.get_paths()
        folders = [Path(paths[k]) for k in ("purelib", "platlib")] + [DEBIAN_DIST_PACKAGES]
        site = tuple(dict.fromkeys(f for f in folders if f.is_dir()))
        return cls(
            stdlib=Path(paths["stdlib"]),
            common_licenses=Path("/usr/share/common-licenses"),
            doc=Path("/usr/share/doc"),
            site_packages=site,
        )


# how each source's root is found; recorded in the manifest instead of machine paths
ROOT_RULES: dict[str, str] = {
    "stdlib-code": "sysconfig.get_paths()['stdlib'], *.py",
    "stdlib-docstrings": "sysconfig.get_paths()['stdlib'], ast docstrings of the code files",
    "pydoc-topics": "sysconfig.get_paths()['stdlib']/pydoc_data/topics.py, the topics dict",
    "stdlib-license": "sysconfig.get_paths()['stdlib'], LICENSE/COPYING files",
    "common-licenses": "/usr/share/common-licenses/*",
    "doc-copyright": "/usr/share/doc/*/copyright",
    "dist-info-license": "sysconfig purelib/platlib, *.dist-info LICENSE/COPYING/NOTICE files",
    "package-code": "sysconfig purelib/platlib and /usr/lib/python3/dist-packages: the .py "
                    "files each permissively licensed distribution lists (RECORD, "
                    "installed-files.txt, top_level.txt)",
    "package-description": "the same distributions' long descriptions (METADATA body)",
    "doc-readme": "/usr/share/doc/<package>/README*, *.md, *.txt, *.rst (also .gz) of Debian "
                  "packages whose copyright file names only permissive licences",
}
# when two sources hold the same text, the steadier source keeps it: the standard library
# and Debian's license folder change less than whatever is installed in site-packages
SOURCE_PRIORITY: tuple[str, ...] = tuple(ROOT_RULES)


@dataclass
class PackageReport:
    """What the package collectors read and left out, for the manifest."""

    packages: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


def collect_all(roots: SourceRoots, report: PackageReport | None = None) -> Iterator[Document]:
    """Every document of every source, in a fixed source order (duplicates included).

    ``report`` (if given) is filled with the distributions read and those skipped.
    """
    report = report if report is not None else PackageReport()
    if roots.stdlib is not None:
        yield from stdlib_code_and_docstrings(roots.stdlib)
        yield from pydoc_topics(roots.stdlib)
        yield from license_files(roots.stdlib, "stdlib-license", skip_dirs=SKIP_DIRS)
    if roots.common_licenses is not None:
        yield from common_licenses(roots.common_licenses)
    if roots.doc is not None:
        yield from debian_copyrights(roots.doc)
    for site in roots.site_packages:
        yield from dist_info_licenses(site)
    yield from package_documents(roots.site_packages, report)
    if roots.doc is not None:
        yield from debian_readmes(roots.doc, report)


def stdlib_code_and_docstrings(stdlib: Path) -> Iterator[Document]:
    """The standard library's modules as code, and their docstrings as prose."""
    for path in _walk_files(stdlib, SKIP_DIRS):
        rel = path.relative_to(stdlib).as_posix()
        if not rel.endswith(".py") or rel.startswith(SKIP_CODE_PREFIXES):
            continue
        text = read_source(path)
        if text is None:
            continue
        code_id = f"stdlib/{rel}"
        yield Document(CODE, code_id, text, "stdlib-code")
        docstrings = extract_docstrings(text)
        if docstrings:
            yield Document(PROSE, f"docstrings/{rel}", docstrings, "stdlib-docstrings", code_id)


def extract_docstrings(source: str) -> str:
    """Docstrings of a module, its classes and functions, in source order, blank-line joined.

    Returns ``""`` for a file that does not parse or has no docstrings.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc and doc.strip():
                found.append(doc.strip())
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return "\n\n".join(found) + "\n" if found else ""


def pydoc_topics(stdlib: Path) -> Iterator[Document]:
    """The reference topics of the Python documentation, one document per topic."""
    path = stdlib / PYDOC_TOPICS
    if not path.is_file():
        return
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, ValueError, UnicodeDecodeError):
        return
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == "topics" for t in targets):
            assert isinstance(node, ast.Assign)
            topics = ast.literal_eval(node.value)
            for name in sorted(topics):
                text = topics[name]
                if isinstance(text, str) and text.strip():
                    yield Document(PROSE, f"pydoc-topics/{name}", text, "pydoc-topics")


def common_licenses(root: Path) -> Iterator[Document]:
    """The full license texts Debian keeps in one place (GPL, Apache, BSD, ...)."""
    for path in _walk_files(root, frozenset()):
        text = read_text(path)
        if text is not None:
            rel = path.relative_to(root).as_posix()
            yield Document(PROSE, f"common-licenses/{rel}", text, "common-licenses")


def debian_copyrights(doc_root: Path) -> Iterator[Document]:
    """Each installed package's ``copyright`` file (``<doc_root>/<package>/copyright``)."""
    if not doc_root.is_dir():
        return
    for package in sorted(os.listdir(doc_root)):
        path = doc_root / package / "copyright"
        if path.is_file():
            text = read_text(path)
            if text is not None:
                yield Document(PROSE, f"doc-copyright/{package}", text, "doc-copyright")


def dist_info_licenses(site: Path) -> Iterator[Document]:
    """License files inside the ``*.dist-info`` folders of one site-packages directory.

    The id uses the distribution's name without its version, so upgrading a package keeps
    its id (and its side of the split).
    """
    if not site.is_dir():
        return
    for entry in sorted(os.listdir(site)):
        if not entry.endswith(".dist-info"):
            continue
        dist = entry[: -len(".dist-info")].split("-", 1)[0].lower()
        yield from license_files(site / entry, "dist-info-license", prefix=f"dist-info/{dist}")


def license_files(
    root: Path, source: str, prefix: str | None = None, skip_dirs: frozenset[str] = frozenset()
) -> Iterator[Document]:
    """Files under ``root`` whose name starts with LICENSE, LICENCE, COPYING or NOTICE."""
    if not root.is_dir():
        return
    for path in _walk_files(root, skip_dirs):
        if not path.name.upper().startswith(LICENSE_NAMES):
            continue
        text = read_text(path)
        if text is not None:
            rel = path.relative_to(root).as_posix()
            yield Document(PROSE, f"{prefix or source}/{rel}", text, source)


def read_text(path: Path) -> str | None:
    """A small text file's contents: UTF-8, else Latin-1; ``None`` if binary, empty or big."""
    data = _read_small(path)
    if data is None:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # older Debian copyright files; never fails
    return text if text.strip() else None


def read_source(path: Path) -> str | None:
    """A Python file decoded by its PEP 263 declaration; ``None`` if unreadable or empty."""
    data = _read_small(path)
    if data is None:
        return None
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError):
        return None
    return text if text.strip() else None


def _read_small(path: Path) -> bytes | None:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return None if b"\x00" in data else data


def _walk_files(root: Path, skip_dirs: frozenset[str]) -> Iterator[Path]:
    """Regular files under ``root`` in sorted order, not entering ``skip_dirs`` or symlinks."""
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file():
                yield path


def package_documents(sites: tuple[Path, ...], report: PackageReport) -> Iterator[Document]:
    """Code and descriptions of the permissively licensed distributions in ``sites``.

    A distribution found in two folders is read from the first only. Its code is read in
    a fixed hash order up to :data:`training.packages.MAX_PACKAGE_BYTES`.
    """
    seen: set[str] = set()
    for site in sites:
        for found in pkg.find_distributions(site):
            if isinstance(found, pkg.Skipped):
                if found.name not in seen:
                    report.skipped.append({"package": found.name, "version": found.version,
                                           "reason": found.reason})
                continue
            if found.name in seen:
                continue  # the same distribution in a later folder (Debian's, usually)
            seen.add(found.name)
            yield from _distribution_documents(found, report)


def _distribution_documents(dist: pkg.Distribution, report: PackageReport) -> Iterator[Document]:
    kept: list[tuple[str, str]] = []
    total = 0
    left_out = {"generated": 0, "over_cap": 0, "unreadable": 0}
    for rel in sorted(dist.files, key=lambda r: pkg.sample_order(dist.name, r)):
        text = read_source(dist.site / rel)
        if text is None:
            left_out["unreadable"] += 1
            continue
        if pkg.looks_generated(text):
            left_out["generated"] += 1
            continue
        size = len(text.encode("utf-8"))
        if total + size > pkg.MAX_PACKAGE_BYTES:
            left_out["over_cap"] += 1
            continue
        total += size
        kept.append((rel, text))
    if not kept and not dist.description:
        report.skipped.append({"package": dist.name, "version": dist.version,
                               "reason": "no Python source files or description"})
        return
    report.packages.append({
        "package": dist.name, "version": dist.version, "licence": dist.licence.name,
        "licence_from": dist.licence.source, "files": len(kept), "bytes": total,
        "files_left_out": left_out,
        "split": "held_out_packages" if dist.name in pkg.HELD_OUT_PACKAGES else "train/held_out",
    })
    for rel, text in sorted(kept):
        yield Document(CODE, f"pkg/{dist.name}/{rel}", text, "package-code", package=dist.name)
    if dist.description:
        yield Document(PROSE, f"pkg-description/{dist.name}", dist.description,
                       "package-description", package=dist.name)


# Debian copyright "License:" short names that are permissive (DEP-5 names, lower case)
_DEBIAN_PERMISSIVE = frozenset({
    "mit", "expat", "isc", "bsd-2-clause", "bsd-3-clause", "bsd-4-clause", "apache-2.0",
    "psf-2", "psf-2.0", "python", "python-2.0", "zlib", "public-domain", "cc0-1.0",
    "unlicense", "x11", "boost-1.0", "bsl-1.0", "permissive", "hpnd",
})
_README_NAME = re.compile(r"^(readme[^/]*|[^/]+\.(md|txt|rst))(\.gz)?$", re.IGNORECASE)
_NOT_PROSE = re.compile(
    r"changelog|copyright|news|license|licence|todo|authors|thanks", re.IGNORECASE
)


def debian_licences(copyright_text: str) -> list[str]:
    """The short names of every ``License:`` field of a DEP-5 copyright file."""
    names = []
    for line in copyright_text.splitlines():
        if line.lower().startswith("license:"):
            value = line.split(":", 1)[1].strip().lower()
            if value:
                names.append(value)
    return names


def debian_readmes(doc_root: Path, report: PackageReport) -> Iterator[Document]:
    """READMEs and text documents of Debian packages licensed permissively only.

    A package's licence comes from its machine-readable ``copyright`` file: every
    ``License:`` field must be a permissive one (alternatives joined by "or" need one). A
    package without such a file, or with no ``License:`` field, is skipped and reported.
    """
    if not doc_root.is_dir():
        return
    for package in sorted(os.listdir(doc_root)):
        folder = doc_root / package
        if not folder.is_dir() or folder.is_symlink():
            continue
        candidates = [p for p in _walk_files(folder, frozenset())
                      if _README_NAME.match(p.name) and not _NOT_PROSE.search(p.name)]
        if not candidates:
            continue
        copyright_file = folder / "copyright"
        text = read_text(copyright_file) if copyright_file.is_file() else None
        licences = debian_licences(text or "")
        if not licences:
            report.skipped.append({"package": f"debian:{package}", "version": "",
                                   "reason": "no licence information (no DEP-5 License field)"})
            continue
        if not all(_debian_permissive(name) for name in licences):
            continue  # copyleft or unknown: documented in the manifest's source rule
        for path in candidates:
            text = _read_maybe_gzip(path)
            if text is None or len(text.strip()) < pkg.MIN_DESCRIPTION_CHARS:
                continue
            rel = path.relative_to(doc_root).as_posix().removesuffix(".gz")
            yield Document(PROSE, f"doc/{rel}", text, "doc-readme")


def _debian_permissive(name: str) -> bool:
    choices = [c.strip() for c in re.split(r"\s+or\s+", name)]
    return any(c.removesuffix("+") in _DEBIAN_PERMISSIVE or c.startswith(("bsd-", "mit"))
               for c in choices)


def _read_maybe_gzip(path: Path) -> str | None:
    if path.suffix != ".gz":
        return read_text(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    if len(data) > MAX_FILE_BYTES or b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text if text.strip() else None
