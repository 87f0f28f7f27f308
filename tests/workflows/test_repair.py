import pytest
import torch

from refiner.text import TextRefiner
from refiner.tokens import special_ids
from workflows.repair import RepairParams, edit_sites, repair
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
