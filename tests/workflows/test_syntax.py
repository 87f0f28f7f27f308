import pytest

from workflows.syntax import check, normalize_language, parses


def test_python_errors_are_located():
    issues = check("def f(x)\n    return x\n")
    assert len(issues) == 1 and issues[0].start == 8 and "expected ':'" in issues[0].message
    assert parses("print('ok')\n")


def test_python_is_never_executed(tmp_path):
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x')\n"
    assert parses(code) and not marker.exists()


@pytest.mark.parametrize("lang,good,bad", [
    ("javascript", "function f() { return 1; }", "function f( { return 1; }"),
    ("rust", "fn main() { let x = 1; }", "fn main() { let x = 1 }"),
    ("json", '{"a": 1}', '{"a": 1,}'),
    ("go", "package main\nfunc main() {}\n", "package main\nfunc main() {\n"),
])
def test_tree_sitter_languages(lang, good, bad):
    assert parses(good, lang)
    issues = check(bad, lang)
    assert issues and all(0 <= i.start <= i.end <= len(bad) for i in issues)


def test_non_ascii_offsets_are_code_points():
    code = 'const s = "é"; function f( { }'
    issues = check(code, "js")
    assert issues and issues[0].start <= len(code)


def test_unknown_language():
    with pytest.raises(ValueError, match="unknown language 'cobol'"):
        normalize_language("cobol")
