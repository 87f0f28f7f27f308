"""Where the training corpus comes from: text and code that every machine already has.

No machine here can download data, so the corpus is gathered from what a Debian 12 system
with CPython 3.11 ships:

- code: the standard library's ``.py`` sources (test suites, build-specific modules and
  very large files left out);
- prose: license texts (``/usr/share/common-licenses``), Debian ``copyright`` files, the
  ``LICENSE``/``COPYING`` files of the standard library and of installed distributions
  (``*.dist-info``), the reference topics of the Python documentation
  (``pydoc_data/topics.py``) and the docstrings of the standard library's modules.

Each collector takes its root as a parameter (tests pass a tiny fake tree) and yields
:class:`Document` objects whose ids are paths relative to that root behind a source prefix,
so an id names the same text on every machine. Files are visited in sorted order.
"""

from __future__ import annotations

import ast
import io
import os
import sysconfig
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CODE = "code"
PROSE = "prose"
KINDS: tuple[str, ...] = (CODE, PROSE)

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
        """The roots of the running interpreter and of a Debian system."""
        paths = sysconfig.get_paths()
        site = tuple(dict.fromkeys(Path(paths[k]) for k in ("purelib", "platlib")))
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
}
# when two sources hold the same text, the steadier source keeps it: the standard library
# and Debian's license folder change less than whatever is installed in site-packages
SOURCE_PRIORITY: tuple[str, ...] = tuple(ROOT_RULES)


def collect_all(roots: SourceRoots) -> Iterator[Document]:
    """Every document of every source, in a fixed source order (duplicates included)."""
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
