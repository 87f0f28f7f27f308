"""The shipped models on the example contract: the two rewrites the issue quoted never come back."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflows.compliance import apply_rules
from workflows.edits import apply_edits
from workflows.engines import load_drafter, load_refiner
from workflows.findings import banned_spans
from workflows.rules import BannedPhrase, load_rules

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # the shipped models, about 25 s of CPU
@pytest.mark.timeout(600)
def test_the_contract_gets_no_broken_rewrite() -> None:
    text = (ROOT / "examples" / "contract.txt").read_text(encoding="utf-8").split("\n\nPayment")[0]
    rules = load_rules(ROOT / "examples" / "rules.yaml")
    res = apply_rules(text, rules, load_refiner(), drafter=load_drafter())
    # before: "The Provider will be deliver ..." and "... Annex A.\n commitment.\nevery report ..."
    assert "will be deliver" not in res.text and "commitment." not in res.text
    assert not any(line.startswith(" ") for line in res.text.splitlines())
    bans = [r for r in rules.rules if isinstance(r, BannedPhrase)]
    left = banned_spans(res.text, bans)
    assert len(left) == len(res.needs_review)  # every phrase still there is one a person is asked about
    assert res.applied + len(res.needs_review) == 2
    for rw in res.rewrites:
        assert rw.fluency_after >= rw.fluency_before  # nothing applied reads worse
    assert apply_edits(text, res.edits) == res.text
