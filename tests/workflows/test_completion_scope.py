"""The scope a completion may cover, read from the suffix's syntax: brackets the completion
must open, block headers whose body follows, and the statement shapes the check tries."""

from workflows.completion.lookup import lookup_continuations
from workflows.completion.scope import cut, scope_at, shape_of

SIGNATURE_REST = "\n        self, path: str, strict: bool = True,\n    ) -> None:\n        self.path = path\n"


def test_brackets_the_suffix_closes_are_left_open() -> None:
    scope = scope_at("class Theme:\n    ", SIGNATURE_REST)
    assert (scope.opens, scope.inside) == ("(", "")
    assert cut("def read(self, path):\n        pass", scope) == "def read("
    assert cut("def read", scope) == "def read"  # never reaches the need: left for the check to judge


def test_a_list_the_suffix_closes_is_opened_by_its_first_bracket() -> None:
    scope = scope_at("from .a import *\n\n", '\n    "A",\n    "B",\n]\n')
    assert scope.opens == "["
    assert cut('__all__ = ["A", "B"]', scope) == "__all__ = ["
    assert cut("x = f(a)[1, 2]", scope) == "x = f(a)["  # brackets opened and closed on the way do not count


def test_brackets_the_prefix_opened_are_not_the_completions() -> None:
    scope = scope_at("total = add(\n    a,\n    ", "\n    b,\n)\n")
    assert (scope.inside, scope.opens) == ("(", "")
    assert cut("c, d)", scope) == "c, d"
    assert "x," in shape_of(scope)


def test_a_deeper_next_line_makes_the_hole_a_block_header() -> None:
    scope = scope_at("def f(xs):\n    ", "\n        print(x)\n    return xs\n")
    assert scope.header and not scope.opens
    assert cut("for x in xs:\n        print(x)\n        log(x)", scope) == "for x in xs:"
    assert "if x:" in shape_of(scope)


def test_a_statement_hole_keeps_its_block_and_shapes_as_a_statement() -> None:
    scope = scope_at("def f(xs):\n    ", "\n    return xs\n")
    assert not scope.header and shape_of(scope)[0] == "pass"
    assert cut("for x in xs:\n        print(x)\n    return xs", scope) == "for x in xs:\n        print(x)"


def test_brackets_in_strings_and_comments_do_not_count() -> None:
    scope = scope_at('x = 1  # (\n', '\ny = ")"\n')
    assert (scope.opens, scope.inside) == ("", "")


def test_an_except_at_the_cursors_level_implies_try() -> None:
    prefix = "def load(s):\n    "
    suffix = "\n        return parse(s)\n    except ValueError:\n        return None\n"
    assert lookup_continuations(prefix, suffix)[0] == "try:"
    assert "try:" not in lookup_continuations(prefix, "\n        return parse(s)\n    return None\n")
    assert "try:" not in lookup_continuations("def load(s):\n    x = ", suffix)  # mid-line: not a header
