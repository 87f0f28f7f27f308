import pytest
import torch

from backends.tokens import special_ids
from refiner.text import TextRefiner, tiny_text_refiner


class Oracle:
    """Predicts the original text's tokens: revising any span must give the text back."""

    max_length = None

    def __init__(self, ids, mask_id, vocab):
        self.ids, self.mask_token_id, self.vocab = ids, mask_id, vocab

    def __call__(self, input_ids, attention_mask):
        # windows may cut the document; find each row's offset by matching its unmasked head
        out = torch.zeros(*input_ids.shape, self.vocab)
        for r in range(input_ids.shape[0]):
            out[r, torch.arange(input_ids.shape[1]), torch.tensor(self.ids[: input_ids.shape[1]])] = 9.0
        return out


def test_revise_with_oracle_returns_the_same_text(tiny_tokenizer):
    text = "def add(a, b):\n    return a + b\n"
    sp = special_ids(tiny_tokenizer)
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    r = TextRefiner(Oracle(ids, sp.mask, len(tiny_tokenizer)), tiny_tokenizer, window=None)
    out = r.revise(text, [(4, 7), (20, 26)])
    assert out.text == text and out.edits == []


def test_revise_edits_point_into_the_original(tiny_tokenizer):
    r = tiny_text_refiner(tiny_tokenizer, seed=1)
    text = "Zürich, naïve café: non-ASCII text must round-trip."
    out = r.revise(text, [(8, 13)])
    for e in out.edits:
        assert text[e.start : e.end] == e.before
        assert e.start <= 8 and e.end >= 13
    # everything outside the edited range is untouched
    if out.edits:
        e = out.edits[0]
        assert out.text.startswith(text[: e.start]) and out.text.endswith(text[e.end :])


def test_revise_bad_spans(tiny_tokenizer):
    r = tiny_text_refiner(tiny_tokenizer)
    with pytest.raises(ValueError, match="text is empty"):
        r.revise("", [(0, 1)])
    with pytest.raises(ValueError, match="outside the text"):
        r.revise("abc", [(1, 9)])
    with pytest.raises(ValueError, match="overlap"):
        r.revise("abcdef", [(0, 3), (2, 4)])


def test_infill_text_and_empty_context(tiny_tokenizer):
    r = tiny_text_refiner(tiny_tokenizer)
    text, score = r.infill("def add(a, b):\n    return ", "\n", lengths=(2, 4))
    assert isinstance(text, str) and score <= 0.0
    with pytest.raises(ValueError, match="no context"):
        r.infill("", "")


def test_text_refiner_scores_with_its_own_ids(tiny_tokenizer):
    from refiner.scoring import ScoreRow, window_scores

    r = tiny_text_refiner(tiny_tokenizer)
    ids, _ = r.encode("def add(a, b):\n    return a + b\n")
    logp = r.token_logprobs(ids, [(0, len(ids))], context=8, stride=2)
    assert logp == window_scores(r.predictor, ids, [(0, len(ids))], 8, r.pad_id, 2).tolist()
    (whole,) = r.score([ScoreRow(ids, masked=[0, 2], scored=[0, 2])])
    assert whole == sum(r.score([ScoreRow(ids, masked=[0, 2], scored=[0]), ScoreRow(ids, masked=[0, 2], scored=[2])]))
    top = r.top_k_between([(ids[:3], ids[4:])], k=5)[0]
    assert len(top) == 5 and not set(top) & set(r.sampler(None).suppress_ids)  # text tokens only
