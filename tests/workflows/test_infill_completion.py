"""Completions: the cursor's scope, the document's own continuations, the syntax check, the
joint ranking, and the search behind infill (tiny models; the ranking also on the real ones)."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from workflows.audit import AuditRecord
from workflows.completion.check import confirmed, judge
from workflows.completion.lookup import lookup_continuations
from workflows.completion.rank import confidence, drafter_scores, joint_scores, refiner_scores
from workflows.completion.scope import cut, scope_at
from workflows.completion.search import search
from workflows.completion.sides import LocalDrafter, LocalRefiner, run_now
from workflows.infill import draft_prompt, infill
from workflows.options import InfillParams

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_mid_line_scope_is_the_rest_of_the_line() -> None:
    scope = scope_at("def f(x):\n    y = ", "\n    return y\n")
    assert scope.kind == "line"
    assert cut("x + 1\n    return y\n", scope) == "x + 1"


def test_a_closing_bracket_of_the_context_is_never_written() -> None:
    scope = scope_at("total = max(a, ", ")\n")
    assert cut("b, c)\nprint(total)", scope) == "b, c"
    assert cut("f(b), \")\"", scope) == "f(b), \")\""  # brackets in strings do not count


def test_line_start_scope_is_one_statement_and_its_block() -> None:
    prefix = "def f(xs):\n    total = 0\n    "
    scope = scope_at(prefix, "\n    return total\n")
    assert (scope.kind, scope.indent) == ("block", 4)
    block = "for x in xs:\n        total += x\n    return total\n"
    assert cut(block, scope) == "for x in xs:\n        total += x"
    # a statement continued inside brackets ends where they close, whatever the indentation
    assert cut("total = sum(\n    xs\n)\n    print(total)", scope) == "total = sum(\n    xs\n)"
    assert cut("  total = 1\n    y = 2", scope) == "total = 1"  # the indentation is the prefix's already


def test_a_completion_stops_before_the_suffix_next_line() -> None:
    scope = scope_at("if ok:\n    ", "\n    done()\n")
    assert cut("run()\n        done()\n", scope) == "run()"


def test_prompt_lookup_copies_what_followed_the_longest_earlier_match() -> None:
    prefix = "self.name = name\nself.size = size\nprint(self.name)\nlog(self.na"
    found = lookup_continuations(prefix, "")
    assert found[0].startswith("me)\n")  # the latest occurrence of "(self.na" first
    assert lookup_continuations("x = 1\ny", "") == []  # too short a match: nothing copied


def test_the_check_refuses_a_candidate_that_breaks_a_parsing_file() -> None:
    syntax = judge("def f(x):\n    y = ", "\n    return y\n", "python")
    assert syntax.checked
    assert syntax.accepts("x + 1") and not syntax.accepts("x +")


def test_a_file_that_does_not_parse_is_judged_around_the_hole() -> None:
    broken_start = "        a, b = (1,\n"  # the context was cut mid-statement: the whole never parses
    prefix = broken_start + "def g(items):\n    for i in items:\n        "
    suffix = "\n    return items\n"
    syntax = judge(prefix, suffix, None)
    assert syntax.language == "python"
    assert syntax.accepts("print(i)") and not syntax.accepts("print(i")
    assert not syntax.accepts("else:")


def test_an_empty_block_in_the_hole_is_not_held_against_a_candidate() -> None:
    syntax = judge("with open(p) as f:\n    ", "\nprint(1)\n", "python")
    assert syntax.accepts("data = f.read()") and not syntax.accepts("data = (")


def test_tree_sitter_languages_are_checked_and_unknown_ones_skipped() -> None:
    syntax = judge("function f(x) {\n  return ", ";\n}\n", "js")
    assert syntax.language == "javascript"
    assert syntax.accepts("x + 1") and not syntax.accepts("x + (")
    skipped = judge("IDENTIFICATION DIVISION.\n", "\n", "cobol")
    assert not skipped.checked and skipped.accepts("anything (")


def test_joint_scores_and_confidence(tiny_drafter, tiny_refiner) -> None:
    prefix, suffix = "def add(a, b):\n    return ", "\n"
    texts = ["a + b", "a + b + a + b"]
    by_refiner = refiner_scores(tiny_refiner, prefix, suffix, texts)
    prompt = draft_prompt(prefix, suffix, InfillParams(), tiny_drafter).prompt
    by_drafter = drafter_scores(tiny_drafter, prompt, texts)
    assert all(s < 0 for s in by_refiner + by_drafter)
    assert joint_scores(by_refiner, by_drafter) == [(r + d) / 2 for r, d in zip(by_refiner, by_drafter)]
    assert joint_scores(by_refiner, None) == by_refiner
    assert 0 < confidence(max(by_refiner)) < 1 and confidence(float("-inf")) == 0.0


@pytest.mark.skipif(not (MODELS / "refiner" / "model.safetensors").exists(), reason="trained models absent")
def test_the_trained_models_rank_the_right_line_above_wrong_ones() -> None:
    from workflows.engines import load_drafter, load_refiner

    refiner, drafter = load_refiner(MODELS / "refiner"), load_drafter(MODELS / "drafter")
    prefix = "def area(width, height):\n    return "
    suffix = "\n\n\nprint(area(2, 3))\n"
    texts = ["width * height", "None", "height", "foo bar baz"]
    prompt = draft_prompt(prefix, suffix, InfillParams(), drafter).prompt
    joint = joint_scores(refiner_scores(refiner, prefix, suffix, texts), drafter_scores(drafter, prompt, texts))
    assert joint[0] == max(joint)


PREFIX = "def add(a, b):\n    total = a + b\n    return "
SUFFIX = "\n\n\nprint(add(1, 2))\n"


@pytest.mark.parametrize("mode", ["ar", "diffusion", "hybrid"])
def test_every_mode_answers_a_scoped_checked_completion(mode, tiny_drafter, tiny_refiner) -> None:
    params = InfillParams(mode=mode, max_tokens=8, seed=0, min_confidence=0.0)
    res = infill(PREFIX, SUFFIX, params, tiny_refiner, tiny_drafter)
    assert res.syntax_check == "checked" and res.confidence is not None and 0.0 <= res.confidence <= 1.0
    assert "\n" not in res.text  # mid-line: the rest of the line at most
    ast.parse(PREFIX + res.text + SUFFIX)
    if res.text:
        assert res.candidates >= 1 and "".join(t.text for t in res.tokens) == res.text


def test_the_document_supplies_a_candidate_the_models_may_miss(tiny_drafter, tiny_refiner) -> None:
    prefix = "def add(a, b):\n    total = a + b\n    return total\n\n\ndef twice(a, b):\n    total = a"
    res = infill(prefix, "\n    return total\n", InfillParams(mode="ar", max_tokens=8, min_confidence=0.0),
                 tiny_refiner, tiny_drafter)
    assert res.candidates >= 1 and res.text  # at worst the copied " + b"
    ast.parse(prefix + res.text + "\n    return total\n")


def test_below_the_floor_the_completion_is_empty(tiny_drafter, tiny_refiner) -> None:
    res = infill(PREFIX, SUFFIX, InfillParams(mode="hybrid", max_tokens=8, seed=0, min_confidence=1.0),
                 tiny_refiner, tiny_drafter)
    assert res.text == "" and res.tokens == [] and res.confidence is not None and res.confidence < 1.0


def test_an_unknown_language_gets_a_completion_without_the_check(tiny_drafter, tiny_refiner) -> None:
    res = infill("MOVE A TO ", " .\n", InfillParams(mode="ar", max_tokens=6, language="cobol", min_confidence=0.0),
                 tiny_refiner, tiny_drafter)
    assert res.syntax_check == "skipped"


def test_the_floor_is_bounded() -> None:
    for bad in (-0.1, 1.5):
        with pytest.raises(ValidationError, match="min_confidence"):
            InfillParams(min_confidence=bad)


def test_python_broken_by_the_hole_itself_is_checked_tentatively() -> None:
    syntax = judge("total = sum(\n    ", "\n", None)
    assert syntax.tentative and syntax.language == "python"
    assert syntax.accepts("xs)") and not syntax.accepts("xs")
    assert confirmed(syntax, 1) is syntax and not confirmed(syntax, 0).checked


def test_a_guessed_language_no_candidate_bears_out_skips_the_check(tiny_drafter, tiny_refiner) -> None:
    ruby = "class Greeter\n  def greet(name)\n    puts "
    res = infill(ruby, "\n  end\nend\n", InfillParams(mode="ar", max_tokens=6, min_confidence=0.0),
                 tiny_refiner, tiny_drafter)
    assert res.syntax_check == "skipped"


# --- the cascade: the first stage answers when a candidate passes; otherwise the search widens ---

LOOKUP_PREFIX = "def add(a, b):\n    total = a + b\n    return total\n\n\ndef twice(a, b):\n    total = a"
LOOKUP_SUFFIX = "\n    return total\n"


class Spy:
    """A search side that records the calls the search makes, answered by the real local side."""

    def __init__(self, side: Any) -> None:
        self.side, self.calls = side, []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.side, name)

        async def call(*args: Any) -> Any:
            self.calls.append(name)
            return await method(*args)
        return call


def searched(params: InfillParams, refiner: Any, drafter: Any) -> tuple[Any, list[str], list[str]]:
    d, r = Spy(LocalDrafter(drafter)), Spy(LocalRefiner(refiner))
    audit = AuditRecord.start("infill", params, refiner, drafter)
    res = run_now(search(LOOKUP_PREFIX, LOOKUP_SUFFIX, params, r, d, audit))
    return res, d.calls, r.calls


@pytest.mark.parametrize("mode", ["ar", "hybrid"])
def test_a_passing_first_stage_answers_without_widening(mode, tiny_drafter, tiny_refiner) -> None:
    """The document's continuation " + b" passes the check, so the first stage answers: one
    draft, no sampled drafts, no alternatives, no refiner scoring."""
    res, d_calls, r_calls = searched(InfillParams(mode=mode, max_tokens=6, seed=0), tiny_refiner, tiny_drafter)
    assert res.text and res.syntax_check == "checked" and 0 <= res.confidence <= 1
    assert d_calls.count("drafts") == 1
    assert "alternatives" not in r_calls and "scores" not in r_calls
    assert r_calls == (["refined"] if mode == "hybrid" else [])
    ast.parse(LOOKUP_PREFIX + res.text + LOOKUP_SUFFIX)
    alone = infill(LOOKUP_PREFIX, LOOKUP_SUFFIX, InfillParams(mode=mode, max_tokens=6, seed=0), tiny_refiner,
                   tiny_drafter)
    assert (alone.text, alone.confidence) == (res.text, res.confidence)  # infill runs this same search


@pytest.mark.parametrize("mode", ["ar", "hybrid"])
def test_below_the_acceptance_bar_the_search_widens(mode, tiny_drafter, tiny_refiner) -> None:
    params = InfillParams(mode=mode, max_tokens=6, seed=0, accept_confidence=1.0)
    res, d_calls, r_calls = searched(params, tiny_refiner, tiny_drafter)
    assert d_calls.count("drafts") == 2  # the greedy draft, then the sampled ones in one batch
    assert "scores" in r_calls  # every candidate ranked by both models
    assert ("alternatives" in r_calls) == (mode == "hybrid")
    assert res.text and res.candidates >= 1
    ast.parse(LOOKUP_PREFIX + res.text + LOOKUP_SUFFIX)


def test_the_acceptance_bar_is_bounded() -> None:
    for bad in (-0.1, 1.5):
        with pytest.raises(ValidationError, match="accept_confidence"):
            InfillParams(accept_confidence=bad)


def test_run_now_refuses_a_search_that_waits() -> None:
    async def waits() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="event loop"):
        run_now(waits())


def test_the_http_requests_carry_the_acceptance_bar() -> None:
    from workflows.requests import CompletionRequest, FimRequest

    assert CompletionRequest(prompt="x = ", accept_confidence=0.3).params().accept_confidence == 0.3
    assert FimRequest(prompt="x = ", accept_confidence=0.3).params().accept_confidence == 0.3
    with pytest.raises(ValidationError, match="accept_confidence"):  # the API answers 422
        FimRequest(prompt="x = ", accept_confidence=1.5)
