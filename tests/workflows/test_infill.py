import pytest

from workflows.infill import MASK_GLYPH, InfillParams, infill

PREFIX = "def add(a, b):\n    return "
SUFFIX = "\n\nprint(add(1, 2))\n"


@pytest.mark.parametrize("mode", ["ar", "diffusion", "hybrid"])
def test_every_mode_returns_an_insertion_with_token_confidences(mode, tiny_drafter, tiny_refiner):
    res = infill(PREFIX, SUFFIX, InfillParams(mode=mode, max_tokens=8, seed=0, candidates=False),
                 tiny_refiner, tiny_drafter)
    assert res.mode == mode
    assert (res.start, res.end) == (len(PREFIX), len(PREFIX))
    assert all(0.0 <= t.confidence <= 1.0 for t in res.tokens)
    assert res.audit is not None and res.audit.pipeline == "infill"
    if mode == "ar":
        assert not res.changed and res.draft == res.text


def test_hybrid_without_weak_tokens_is_the_draft(tiny_drafter, tiny_refiner):
    ar = infill(PREFIX, SUFFIX, InfillParams(mode="ar", max_tokens=8, candidates=False), tiny_refiner, tiny_drafter)
    hy = infill(PREFIX, SUFFIX, InfillParams(mode="hybrid", max_tokens=8, remask_below=1e-9, candidates=False),
                tiny_refiner, tiny_drafter)
    assert hy.text == ar.text and hy.changed == [] and hy.nfe == 0


def test_hybrid_remasks_weak_tokens_and_streams_snapshots(tiny_drafter, tiny_refiner):
    snaps: list[str] = []
    res = infill(PREFIX, SUFFIX, InfillParams(mode="hybrid", max_tokens=8, remask_below=1.0, remask_cap=0.5,
                                              threshold=None, steps=4, candidates=False),
                 tiny_refiner, tiny_drafter, on_snapshot=snaps.append)
    assert res.nfe >= 1 and res.draft is not None
    assert any(MASK_GLYPH in s for s in snaps[:1])  # the first step still shows masks
    assert MASK_GLYPH not in snaps[-1] and snaps[-1] == res.text
    # the refiner changed only re-masked positions: unchanged tokens keep the drafter's confidence


def test_errors(tiny_refiner):
    with pytest.raises(ValueError, match="no context"):
        infill("", "", InfillParams(mode="diffusion"), tiny_refiner)
    with pytest.raises(ValueError, match="needs a drafter"):
        infill("a", "b", InfillParams(mode="hybrid"), tiny_refiner, None)


def test_long_context_is_trimmed_to_fit_the_drafter(tiny_drafter, tiny_refiner):
    from workflows.infill import fit_context

    tok = tiny_drafter.tokenizer
    prefix, suffix = "x = 1\n" * 400, "y = 2\n" * 400
    p, s = fit_context(prefix, suffix, tok, 100)
    n = len(tok(p, add_special_tokens=False)["input_ids"]) + len(tok(s, add_special_tokens=False)["input_ids"])
    assert n <= 100 and prefix.endswith(p) and suffix.startswith(s) and len(p) > len(s)
    res = infill(prefix, suffix, InfillParams(mode="hybrid", max_tokens=8), tiny_refiner, tiny_drafter)
    assert res.start == len(prefix)


def test_diffusion_mode_reports_forward_passes(tiny_refiner):
    res = infill(PREFIX, SUFFIX, InfillParams(mode="diffusion", max_tokens=8, steps=4, candidates=False), tiny_refiner)
    assert 1 <= res.nfe <= 4


def test_batched_draft_and_refine_equal_one_request_at_a_time(tiny_drafter, tiny_refiner) -> None:
    """What a serving replica does with concurrent requests: one batched drafter run, one
    batched refiner run; each answer equals the single-request pipeline's."""
    from workflows.infill import draft_many, refine_drafts

    holes = [("def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"),
             ("The licensee shall ", " within thirty days."),
             ("x = [1, 2, ", "]\n")]
    params = [InfillParams(mode="hybrid", max_tokens=n, remask_below=1.0, remask_cap=0.5, steps=4, candidates=False)
              for n in (6, 9, 4)]
    drafts = draft_many([(p, s, pr) for (p, s), pr in zip(holes, params)], tiny_drafter)
    batched = refine_drafts([(p, s, d, pr) for (p, s), d, pr in zip(holes, drafts, params)], tiny_refiner)
    assert len(batched) == len(holes)
    for (prefix, suffix), pr, got in zip(holes, params, batched):
        alone = infill(prefix, suffix, pr, tiny_refiner, tiny_drafter)
        assert got.draft == alone.draft
        assert got.text == alone.text
        assert [t.changed for t in got.tokens] == [t.changed for t in alone.tokens]
        assert any(t.changed for t in got.tokens) or got.nfe > 0  # the refiner really ran on it
