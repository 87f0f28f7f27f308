"""The syntax check read from the code's tokens: holes inside triple-quoted strings, contexts
trimmed inside a docstring, and holes that break the code when left empty."""

from workflows.completion.check import judge, strings_around

DOCSTRING_TAIL = (
    "    Return the parsed graph, or raise when the input\n"
    "    cannot be parsed; the graph is built lazily.\n"
    '    """\n'
    "    return build(lines)\n"
)


def test_a_hole_inside_a_docstring_takes_text_that_does_not_end_it() -> None:
    prefix = 'def parse(lines):\n    """Parse the lines.\n\n    Raises\n    ------\n    ValueError\n        '
    syntax = judge(prefix, "\n\n" + DOCSTRING_TAIL, None)
    assert syntax.checked and syntax.in_string == '"""'
    assert syntax.accepts("If the input cannot be parsed (it is not a graph.")
    assert not syntax.accepts('done."""') and not syntax.accepts("trailing \\")


def test_a_context_trimmed_inside_a_docstring_is_read_as_prose() -> None:
    # the editor sent the text from the middle of a docstring: its closing quotes come first
    prefix = "the list of nodes in the order they were visited, and the\n    depth of each one.\n    " \
             '"""\n    seen = set()\n    '
    suffix = "\n    for node in graph:\n        seen.add(node)\n    return seen\n"
    strings = strings_around(prefix, suffix)
    assert strings.at_hole is None and strings.inside(5)  # the prose before the quotes is string content
    syntax = judge(prefix, suffix, None)
    assert syntax.in_string is None
    assert syntax.accepts("order = []") and not syntax.accepts("order = [")


def test_a_header_whose_handler_follows_must_be_try() -> None:
    prefix = "def load(text):\n    if not text:\n        return None\n\n    "
    suffix = "\n        return json.loads(text)\n    except ValueError:\n        return None\n"
    syntax = judge(prefix, suffix, "python")
    assert syntax.accepts("try:")
    assert not syntax.accepts("if text:") and not syntax.accepts("x = 1")
    assert not syntax.accepts("# no cover")  # a comment leaves the hole as empty as it was


def test_an_opener_whose_rest_is_in_the_suffix() -> None:
    prefix = "class Theme:\n    @classmethod\n    "
    suffix = "\n        cls, path: str, inherit: bool = True,\n    ) -> 'Theme':\n        return cls(path)\n"
    syntax = judge(prefix, suffix, None)
    assert syntax.language == "python"
    assert syntax.accepts("def read(") and not syntax.accepts("def read(self):") and not syntax.accepts("read")


def test_a_blocks_only_statement() -> None:
    prefix = "class Box:\n    def __enter__(self):\n        "
    suffix = "\n\n    def __exit__(self, *exc):\n        return None\n"
    syntax = judge(prefix, suffix, None)
    assert syntax.accepts("return self") and not syntax.accepts('"""') and not syntax.accepts("# todo")


def test_a_block_running_into_a_suffix_cut_mid_statement_ends_before_it() -> None:
    # the editor sent the suffix up to a limit that falls mid-call: the block is judged without that statement
    prefix = "class Theme:\n    @classmethod\n    "
    suffix = ('\n        cls, path: str,\n    ) -> "Theme":\n        """Read a theme."""\n'
              "        with open(path) as f:\n            return cls.parse(f, inherit=inhe")
    syntax = judge(prefix, suffix, None)
    assert syntax.accepts("def read(") and not syntax.accepts("read = 1")
