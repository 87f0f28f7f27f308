import pytest
import torch

from refiner.text import TextRefiner
from refiner.tokens import special_ids
from workflows.compliance import ComplianceParams, apply_rules
from workflows.edits import apply_edits
from workflows.rules import load_rules

RULES = load_rules("""
name: acme
version: "7"
rules:
  - {id: no-guarantee, type: banned_phrase, phrases: [guarantee], preferred: commitment}
  - {id: no-always, type: banned_phrase, phrases: [always]}
  - {id: gdpr, type: required_term, terms: [GDPR], clause: This agreement is subject to the GDPR.}
  - {id: must-sign, type: required_term, terms: [signature]}
  - {id: pii-email, type: redact, kind: email, replacement: "[EMAIL]"}
""")

TEXT = "We guarantee that we always reply. Write to jane.doe@acme.com today."


class Predicts:
    """Predicts fixed text tokens cyclically at masked positions (identity elsewhere)."""

    max_length = 512

    def __init__(self, ids, mask_id, vocab):
        self.ids, self.mask_token_id, self.vocab = ids, mask_id, vocab

    def __call__(self, input_ids, attention_mask):
        out = torch.nn.functional.one_hot(input_ids, self.vocab).float() * 10
        for r in range(input_ids.shape[0]):
            pos = (input_ids[r] == self.mask_token_id).nonzero().flatten().tolist()
            for k, p in enumerate(pos):
                out[r, p] = 0.0
                out[r, p, self.ids[k % len(self.ids)]] = 10.0
        return out


def _refiner(tok, text):
    sp = special_ids(tok)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return TextRefiner(Predicts(ids, sp.mask, len(tok)), tok, special=sp)


def test_every_rule_yields_an_edit_with_its_id(shared_tokenizer):
    res = apply_rules(TEXT, RULES, _refiner(shared_tokenizer, " usually"), ComplianceParams(neighbours=0))
    assert "[EMAIL]" in res.text and "commitment" in res.text and "always" not in res.text
    assert res.text.endswith("This agreement is subject to the GDPR.")
    reasons = {e.reason for e in res.edits}
    assert {"no-guarantee", "no-always", "gdpr", "pii-email"} <= reasons
    assert res.unresolved == ["must-sign"]  # required, missing, and no clause to add
    assert apply_edits(TEXT, res.edits) == res.text
    assert res.audit.parameters["rules"] == "acme" and res.audit.parameters["version"] == "7"


def test_rewrite_that_keeps_the_banned_phrase_is_rejected(shared_tokenizer):
    # a refiner that writes "always" back: every attempt fails, the phrase is dropped
    res = apply_rules(TEXT, RULES, _refiner(shared_tokenizer, " always"), ComplianceParams(neighbours=0, attempts=2))
    assert "always" not in res.text and "no-always" in res.unresolved


def test_pinned_term_survives_neighbour_denoising(shared_tokenizer):
    res = apply_rules("We guarantee it.", RULES, _refiner(shared_tokenizer, " x"), ComplianceParams(neighbours=1))
    assert "commitment" in res.text


def test_bad_input(shared_tokenizer):
    r = _refiner(shared_tokenizer, " x")
    with pytest.raises(ValueError, match="empty"):
        apply_rules("", RULES, r)
    with pytest.raises(ValueError, match="over the limit"):
        apply_rules("abc" * 10, RULES, r, ComplianceParams(max_chars=5))
