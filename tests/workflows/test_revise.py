import itertools

import pytest

from workflows.edits import apply_edits
from workflows.revise import ReviseParams, paragraph_chunks, refiner_scores, revise

DOC = ("The licensee shall not disclose confidential information to third parties.\n\n"
       "Permission is hereby granted, free of charge, to any person obtaining a copy.\n")


def test_user_spans_only_touch_their_tokens(tiny_refiner):
    res = revise(DOC, ReviseParams(spans=[(4, 12)], seed=0), tiny_refiner)
    assert apply_edits(DOC, res.edits) == res.text
    for e in res.edits:
        assert e.reason == "user_span" and e.start <= 12 and e.end >= 4 - 1
    assert res.text.endswith(DOC[20:])
    assert res.audit.pipeline == "revise" and "refine" in res.audit.timings_ms


def test_auto_detection_is_capped_and_edits_are_consistent(tiny_refiner):
    snaps = []
    p = ReviseParams(remask_below=1.0, max_fraction=0.1, dilation=0, merge_gap=0, seed=0, rewrite_prose=True)
    res = revise(DOC, p, tiny_refiner, on_snapshot=snaps.append)
    n_tokens = len(tiny_refiner.encode(DOC)[0])
    masked_chars = sum(e - s for s, e in res.spans)
    assert res.spans and len(res.spans) <= int(0.1 * n_tokens)
    assert masked_chars < len(DOC) / 2
    assert apply_edits(DOC, res.edits) == res.text
    assert snaps[-1] == res.text
    if res.edits:
        assert res.diff.startswith("--- a/text") and res.matches[0]["offset"] == res.edits[0].start


def test_nothing_doubtful_returns_text_unchanged(tiny_refiner):
    res = revise(DOC, ReviseParams(remask_below=1e-12), tiny_refiner)
    assert res.text == DOC and res.edits == [] and res.diff == ""


def test_long_document_chunks_at_paragraphs_and_scores_every_token(tiny_refiner):
    long = DOC * 40  # ~6k characters, well over the tiny model's 256-token limit
    ids, offsets = tiny_refiner.encode(long)
    chunks = paragraph_chunks(long, offsets, 100)
    assert chunks[0][0] == 0 and chunks[-1][1] == len(ids)
    assert all(b - a <= 100 for a, b in chunks)
    assert all(b == c for (_, b), (c, _) in itertools.pairwise(chunks))
    # most cuts fall on paragraph starts
    para_starts = {i for i, (s, _) in enumerate(offsets) if s > 1 and long[s - 2 : s] == "\n\n"}
    assert sum(b in para_starts for _, b in chunks[:-1]) >= len(chunks) - 2
    probs = refiner_scores(ids, chunks, tiny_refiner, context=20)
    assert len(probs) == len(ids) and all(0 < p <= 1 for p in probs)
    res = revise(long, ReviseParams(remask_below=1.0, max_fraction=0.02, seed=0, rewrite_prose=True), tiny_refiner)
    assert apply_edits(long, res.edits) == res.text


def test_bad_input(tiny_refiner):
    with pytest.raises(ValueError, match="empty"):
        revise("", ReviseParams(), tiny_refiner)
    with pytest.raises(ValueError, match="over the limit"):
        revise("x" * 50, ReviseParams(max_chars=10), tiny_refiner)
    with pytest.raises(ValueError, match="outside the text"):
        revise("abc", ReviseParams(spans=[(0, 10)]), tiny_refiner)
    with pytest.raises(ValueError, match="needs a drafter"):
        revise("abc", ReviseParams(detect="drafter"), tiny_refiner)


def test_drafter_detection(tiny_refiner, tiny_drafter):
    params = ReviseParams(detect="both", remask_below=0.5, seed=0, rewrite_prose=True)
    res = revise(DOC, params, tiny_refiner, tiny_drafter)
    assert apply_edits(DOC, res.edits) == res.text


def test_hundred_thousand_characters_are_revised_with_offsets_into_the_original(tiny_refiner):
    paragraph = ("Section {i}. The licensee shall not disclose confidential information to third "
                 "parties without prior written consent of the licensor.\n\n")
    doc = "".join(paragraph.format(i=i) for i in range(800))
    assert len(doc) > 100_000
    params = ReviseParams(remask_below=1.0, max_fraction=0.002, dilation=0, seed=0, rewrite_prose=True)
    res = revise(doc, params, tiny_refiner)
    assert res.spans and apply_edits(doc, res.edits) == res.text
    for e in res.edits:
        assert doc[e.start : e.end] == e.before


def test_only_rewrites_the_model_prefers_are_kept(shared_tokenizer):
    import torch

    from backends.tokens import special_ids
    from refiner.text import TextRefiner

    class AlwaysX:
        max_length = 512

        def __init__(self, tid, mask_id, vocab):
            self.tid, self.mask_token_id, self.vocab = tid, mask_id, vocab

        def __call__(self, input_ids, attention_mask):
            out = torch.zeros(*input_ids.shape, self.vocab)
            out[..., self.tid] = 12.0
            return out

    sp = special_ids(shared_tokenizer)
    x = shared_tokenizer.convert_tokens_to_ids("x")
    r = TextRefiner(AlwaysX(x, sp.mask, len(shared_tokenizer)), shared_tokenizer, special=sp)
    p = dict(remask_below=1.0, max_fraction=0.1, dilation=0, merge_gap=0, seed=0, rewrite_prose=True)
    preferred = revise(DOC, ReviseParams(**p), r)
    assert preferred.edits and all("x" in e.after for e in preferred.edits)
    refused = revise(DOC, ReviseParams(**p, margin=100.0), r)
    assert refused.text == DOC and refused.edits == []
