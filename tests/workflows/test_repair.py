import pytest
import torch

from backends.tokens import special_ids
from refiner.text import TextRefiner
from workflows.edits import apply_edits
from workflows.repair import RepairParams, edit_sites, minimal_fixes, repair
from workflows.syntax import check


class AlwaysToken:
    """Predicts one token everywhere: enough to test the search, not the model."""

    max_length = 512

    def __init__(self, token_id, mask_id, vocab):
        self.token_id, self.mask_token_id, self.vocab = token_id, mask_id, vocab

    def __call__(self, input_ids, attention_mask):
        out = torch.zeros(*input_ids.shape, self.vocab)
        out[..., self.token_id] = 10.0
        return out


@pytest.fixture
def colon_refiner(shared_tokenizer):
    sp = special_ids(shared_tokenizer)
    colon = shared_tokenizer.convert_tokens_to_ids(":")
    return TextRefiner(AlwaysToken(colon, sp.mask, len(shared_tokenizer)), shared_tokenizer, special=sp)


def test_missing_colon_is_inserted_with_one_edit(colon_refiner):
    code = "def f(x)\n    return x\n"
    res = repair(code, RepairParams(samples=0), colon_refiner)
    assert res.parses and res.text == "def f(x):\n    return x\n"
    assert [(e.start, e.end, e.before, e.after) for e in res.edits] == [(8, 8, "", ":")]
    assert res.rounds == 1 and res.candidates > 1 and res.issues_before and not res.issues_after
    assert res.diff.startswith("--- a/code")


def test_two_errors_take_two_rounds(colon_refiner):
    code = "def f(x)\n    return x\n\nclass A\n    pass\n"
    res = repair(code, RepairParams(samples=0), colon_refiner)
    assert res.parses and res.rounds == 2 and res.text.count(":") == 2


def test_code_that_parses_is_unchanged(colon_refiner):
    code = "x = 1\n"
    res = repair(code, RepairParams(), colon_refiner)
    assert res.text == code and res.parses and res.edits == [] and res.rounds == 0


def test_unfixable_reports_not_parsing(tiny_refiner):
    code = "def (((\n"
    res = repair(code, RepairParams(rounds=1, samples=0), tiny_refiner)
    assert res.rounds == 1 and res.parses == (not check(res.text))


def test_edit_sites_cover_insertions_and_replacements(shared_tokenizer):
    code = "if x\n    y = 1\n"
    issue = check(code)[0]
    enc = shared_tokenizer(code, add_special_tokens=False, return_offsets_mapping=True)
    sites = edit_sites(code, issue, enc["offset_mapping"])
    assert any(s == e for s, e, _ in sites) and any(e > s for s, e, _ in sites)
    assert all(min(lengths) >= 1 for _, _, lengths in sites)


def test_bad_input(colon_refiner):
    with pytest.raises(ValueError, match="empty"):
        repair("  \n", RepairParams(), colon_refiner)
    with pytest.raises(ValueError, match="unknown language"):
        repair("x", RepairParams(language="cobol"), colon_refiner)
    with pytest.raises(ValueError, match="over the limit"):
        repair("x = 1\n" * 10, RepairParams(max_chars=5), colon_refiner)


# --- minimal edits: the tiny (untrained) refiner only ranks; the fixes come from the search ---

def _one_edit(code, refiner, **kw):
    res = repair(code, RepairParams(samples=0, **kw), refiner)
    assert res.parses and not check(res.text, kw.get("language", "python"))
    assert len(res.edits) == 1, res.edits
    assert apply_edits(code, res.edits) == res.text  # offsets point into the original
    e = res.edits[0]
    assert e.reason.startswith("syntax: ") and 0.0 < e.confidence <= 1.0
    return res, e


def test_missing_colon_is_one_inserted_colon(tiny_refiner):
    code = "def f(x):\n    if x > 1\n        return x\n    return 0\n"
    res, e = _one_edit(code, tiny_refiner)
    assert (e.start, e.end, e.before, e.after) == (22, 22, "", ":") and e.reason == "syntax: inserted ':'"
    assert res.text == code.replace("1\n", "1:\n", 1)


def test_missing_closing_bracket_is_inserted(tiny_refiner):
    code = "def f(x):\n    y = g(x, 2\n    return y\n"
    res, e = _one_edit(code, tiny_refiner)
    assert e.before == "" and e.after == ")" and e.reason == "syntax: inserted ')'"
    assert "    y = g(x, 2)\n" in res.text


def test_mismatched_bracket_is_replaced(tiny_refiner):
    code = "def f(x):\n    return g(x]\n"
    res, e = _one_edit(code, tiny_refiner)
    assert (e.before, e.after) == ("]", ")") and res.text == "def f(x):\n    return g(x)\n"


def test_swapped_bracket_pair_is_swapped_back(tiny_refiner):
    code = "def f(x):\n    return [g(x])\n"
    res, e = _one_edit(code, tiny_refiner)
    assert res.text == "def f(x):\n    return [g(x)]\n"
    assert (e.start, e.end, e.before, e.after, e.reason) == (25, 27, "])", ")]", "syntax: swapped '])'")


def test_bad_indentation_is_one_reindented_line(tiny_refiner):
    code = "def f(x):\n    y = 1\n      z = 2\n    return y + z\n"
    res, e = _one_edit(code, tiny_refiner)
    assert res.text == "def f(x):\n    y = 1\n    z = 2\n    return y + z\n"
    assert (e.before, e.after) == ("  ", "") and e.reason == "syntax: dedented line 3"


def test_missing_block_indent_is_indented(tiny_refiner):
    code = "def f(x):\n    if x:\n    return 1\n    return 2\n"
    res, e = _one_edit(code, tiny_refiner)
    assert res.text == "def f(x):\n    if x:\n        return 1\n    return 2\n" and e.after == "    "


def test_parsing_code_is_untouched_and_unchecked_beyond_once(tiny_refiner):
    code = "def f(x):\n    return [g(x)]\n"
    res = repair(code, RepairParams(), tiny_refiner)
    assert res.text == code and res.edits == [] and res.rounds == 0 and res.checks == 1 and res.nfe == 0


def test_two_errors_two_rounds_with_offsets_into_the_original(tiny_refiner):
    code = "def f(x)\n    y = g(x\n    return y\n"
    res = repair(code, RepairParams(samples=0), tiny_refiner)
    assert res.parses and res.rounds == 2 and len(res.edits) == 2
    assert apply_edits(code, res.edits) == res.text
    assert [e.after for e in res.edits] == [":", ")"] and res.edits[0].start == 8


def test_javascript_missing_bracket_parses_after_repair(tiny_refiner):
    code = "function f(x) {\n  if (x > 1 {\n    return x;\n  }\n  return 0;\n}\n"
    assert check(code, "javascript")
    res, e = _one_edit(code, tiny_refiner, language="javascript")
    assert e.after == ")" and "if (x > 1) {" in res.text


def test_parser_checks_are_bounded_on_a_long_file(tiny_refiner):
    body = "".join(f"def f{i}(a, b):\n    c = [a, b, (a + b) * {i}]\n    return c\n\n" for i in range(100))
    code = body + "def g(x)\n    return (x + 1\n" + body
    params = RepairParams(samples=0, top_k=0, max_checks=120, rounds=2)
    res = repair(code, params, tiny_refiner)
    # one check of the input, then at most max_checks per round (the refiner path adds none)
    assert res.checks <= 1 + params.max_checks * params.rounds
    assert res.parses and len(res.edits) == 2 and res.text.count("def g(x):\n    return (x + 1)\n") == 1


def test_minimal_fixes_stay_near_the_error_and_put_hints_first():
    code = "a = 1\n" * 50 + "if a == 1\n    b = 2\n" + "a = 1\n" * 50
    issue = check(code)[0]
    fixes = minimal_fixes(code, issue, "python", context_lines=2)
    assert fixes[0].after == ":" and fixes[0].start == issue.start  # the parser said "expected ':'"
    lines = {code.count("\n", 0, f.start) for f in fixes}
    err = code.count("\n", 0, issue.start)
    assert lines and min(lines) >= err - 2 and max(lines) <= err + 2
    assert len({f.apply(code) for f in fixes}) == len(fixes)  # distinct results only
