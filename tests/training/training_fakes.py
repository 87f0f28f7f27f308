"""A tiny fake machine for the training tests: a standard library, license folders and a
site-packages, written under a temporary directory."""

from __future__ import annotations

from pathlib import Path

from training.sources import SourceRoots

GPL = "GNU GENERAL PUBLIC LICENSE\nVersion 3, 29 June 2007\n\nEveryone is permitted to copy.\n"
PSF = "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2\n\n1. This LICENSE AGREEMENT is between...\n"

ALPHA = '''"""Alpha: helpers for counting words."""


def count(text: str) -> int:
    """Return how many words ``text`` holds."""
    return len(text.split())
'''

WORDS = ("parse", "render", "token", "buffer", "stream", "mask", "span", "draft", "offset", "merge")
PHRASES = (
    "The licensee may copy and distribute verbatim copies of the program's source code.",
    "Permission is hereby granted, free of charge, to any person obtaining a copy.",
    "Les données sont copiées à l'identique; naïve café résumé, 日本語のテキスト.",
    "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED.",
)


def module_text(i: int) -> str:
    """A small, distinct Python module with docstrings, tabs in a string and non-ASCII."""
    a, b = WORDS[i % len(WORDS)], WORDS[(3 * i + 1) % len(WORDS)]
    return (
        f'"""Module {i}: {a} and {b} utilities (ü {i})."""\n\n'
        f"import os\n\n\nclass {a.title()}{i}:\n"
        f'    """Hold a {a} for the {b} step."""\n\n'
        f"    def __init__(self, value: int = {i}) -> None:\n"
        f"        self.value = value\n\n"
        f"    def {b}_{a}(self, items: list[str]) -> list[str]:\n"
        f'        """Return the items joined by tabs: ``\\t``."""\n'
        f"        return [x + '\\t' + str(self.value) for x in items if x]\n\n\n"
        f"def {a}_{i}(path: str) -> str:\n"
        f"    return os.path.join(path, '{b}-{i}.txt')\n"
    )


def prose_text(i: int) -> str:
    """A distinct license-like text."""
    lines = [PHRASES[(i + k) % len(PHRASES)] for k in range(3 + i % 4)]
    return f"Package number {i}\n\n" + "\n".join(lines) + f"\n\nCopyright (C) {2000 + i} Someone\n"


def make_fake_roots(base: Path, modules: int = 24, packages: int = 24) -> SourceRoots:
    """Write the fake tree under ``base`` and return roots that point into it."""
    stdlib, common, doc, site = base / "stdlib", base / "common", base / "doc", base / "site"
    files: dict[Path, str | bytes] = {
        stdlib / "alpha.py": ALPHA,
        stdlib / "pkg" / "__init__.py": "",  # empty: skipped
        stdlib / "pkg" / "copy_of_alpha.py": ALPHA,  # duplicate of alpha.py: dropped
        stdlib / "latin.py": "# -*- coding: latin-1 -*-\nNAME = 'caf\xe9'\n".encode("latin-1"),
        stdlib / "broken.py": "def broken(:\n    '''never parsed'''\n",
        stdlib / "test" / "test_alpha.py": "def test_it(): pass\n",
        stdlib / "lib2to3" / "tests" / "data.py": "x = 1\n",
        stdlib / "idlelib" / "idle_test" / "htest.py": "y = 2\n",
        stdlib / "site-packages" / "thirdparty" / "mod.py": "z = 3\n",
        stdlib / "_sysconfigdata__linux.py": "build_time_vars = {'prefix': '/somewhere'}\n",
        stdlib / "big.py": "# filler\n" * 30_000,  # over 200 KB: skipped
        stdlib / "pydoc_data" / "topics.py": (
            "topics = {'assert': 'The \"assert\" statement\\n*****\\n\\nAssert statements.\\n',\n"
            "          'if': 'The \"if\" statement\\n****\\n\\nConditional execution.\\n'}\n"
        ),
        stdlib / "LICENSE.txt": PSF,
        common / "GPL-3": GPL,
        common / "GPL": GPL,  # a second name for the same text: dropped
        common / "Apache-2.0": "Apache License\nVersion 2.0, January 2004\n",
        doc / "pkga" / "copyright": "Format: debian copyright\nFiles: *\nLicense: GPL-3\n",
        doc / "pkgb" / "copyright": "Format: debian copyright\nFiles: *\nLicense: GPL-3\n",
        doc / "pkgc" / "copyright": "Copyright 1999 Ren\xe9 M\xfcller\n".encode("latin-1"),
        doc / "pkgd" / "changelog.gz": b"\x1f\x8b\x00\x00",  # no copyright file
        site / "foo-1.0.dist-info" / "LICENSE": PSF,  # same as the stdlib's: stdlib keeps it
        site / "foo-1.0.dist-info" / "METADATA": "Name: foo\n",
        site / "bar_baz-2.0.dist-info" / "licenses" / "COPYING.txt": "BSD 3-Clause\n",
        site / "foo" / "LICENSE": "not inside a dist-info: ignored\n",
    }
    files.update(fake_distributions(site))
    for i in range(modules):
        files[stdlib / "gen" / f"mod{i:02d}.py"] = module_text(i)
    for i in range(packages):
        files[doc / f"lib{i:02d}" / "copyright"] = prose_text(i)
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return SourceRoots(stdlib=stdlib, common_licenses=common, doc=doc, site_packages=(site,))


DESCRIPTION = (
    "Goodpkg turns lists of words into tidy tables.\n\n"
    "It reads text from files or standard input, splits it into words, counts them and "
    "prints a table sorted by frequency. Install it with pip and run goodpkg on a file.\n"
)


def metadata(name: str, version: str, licence_lines: str, description: str = "") -> str:
    body = f"\n{description}" if description else ""
    return f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n{licence_lines}{body}"


def record(*paths: str) -> str:
    return "".join(f"{p},sha256=x,1\n" for p in paths)


def fake_distributions(site: Path) -> dict[Path, str | bytes]:
    """Installed distributions: permissive ones, a held-out one, a GPL one, one with no
    licence, remask itself and an egg-info; with tests, vendored and generated files."""
    good = site / "goodpkg-1.2.dist-info"
    click = site / "click-8.1.dist-info"
    return {
        good / "METADATA": metadata("goodpkg", "1.2", "License-Expression: MIT OR GPL-3.0\n",
                                    DESCRIPTION),
        good / "RECORD": record(
            "goodpkg/__init__.py", "goodpkg/core.py", "goodpkg/tests/test_core.py",
            "goodpkg/_vendor/six.py", "goodpkg/generated.py", "goodpkg/table.py",
            "goodpkg-1.2.dist-info/METADATA", "../../bin/goodpkg",
        ),
        site / "goodpkg" / "__init__.py": '"""Goodpkg."""\nfrom goodpkg.core import count_words\n',
        site / "goodpkg" / "core.py": module_text(101),
        site / "goodpkg" / "table.py": module_text(102) + "\nWIDE = 1\n",
        site / "goodpkg" / "tests" / "test_core.py": "def test_count():\n    assert True\n",
        site / "goodpkg" / "_vendor" / "six.py": "PY3 = True\n",
        site / "goodpkg" / "generated.py": "# Generated by the protocol buffer compiler.  DO NOT EDIT!\nX = 1\n",
        click / "METADATA": metadata("click", "8.1", "Classifier: License :: OSI Approved :: BSD License\n"),
        click / "RECORD": record("click/__init__.py", "click/core.py"),
        site / "click" / "__init__.py": '"""Click: command lines."""\nfrom click.core import command\n',
        site / "click" / "core.py": module_text(103),
        site / "gplpkg-1.0.dist-info" / "METADATA": metadata("gplpkg", "1.0", "License: GPLv3\n"),
        site / "gplpkg-1.0.dist-info" / "RECORD": record("gplpkg.py"),
        site / "gplpkg.py": module_text(104),
        site / "nolicence-0.3.dist-info" / "METADATA": metadata("nolicence", "0.3", ""),
        site / "nolicence-0.3.dist-info" / "RECORD": record("nolicence.py"),
        site / "nolicence.py": module_text(105),
        site / "remask-0.1.0.dist-info" / "METADATA": metadata("remask", "0.1.0", "License: MIT\n"),
        site / "remask-0.1.0.dist-info" / "RECORD": record("remask_self.py"),
        site / "remask_self.py": module_text(106),
        site / "eggy-1.0.egg-info" / "PKG-INFO": metadata(
            "eggy", "1.0", "Classifier: License :: OSI Approved :: MIT License\n"),
        site / "eggy-1.0.egg-info" / "top_level.txt": "eggy\n",
        site / "eggy" / "__init__.py": module_text(107),
    }
