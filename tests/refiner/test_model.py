import json
import textwrap

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModelForMaskedLM

from refiner.model import RefinerModel, refiner_config
from refiner.predictor import detect_kind, load_predictor, native_predictor


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return RefinerModel(refiner_config("tiny")).eval()


def test_forward_shapes_and_bidirectional(tiny):
    ids = torch.randint(0, 60, (2, 10))
    logits = tiny(input_ids=ids).logits
    assert logits.shape == (2, 10, 64) and logits.dtype == torch.float32
    # changing the last token changes the logits of the first: no causal mask
    ids2 = ids.clone()
    ids2[:, -1] = (ids2[:, -1] + 1) % 60
    assert not torch.allclose(tiny(input_ids=ids2).logits[:, 0], logits[:, 0])


def test_logits_at_selects_positions_of_the_full_pass(tiny):
    ids = torch.randint(0, 60, (2, 12), generator=torch.Generator().manual_seed(0))
    at = torch.rand(2, 12, generator=torch.Generator().manual_seed(1)) < 0.4
    full = tiny(ids).logits
    some = tiny(ids, logits_at=at).logits
    assert some.shape == (int(at.sum()), full.shape[-1])
    assert torch.allclose(some, full[at], atol=1e-6)


def test_padding_does_not_leak(tiny):
    ids = torch.randint(0, 60, (1, 6))
    short = tiny(input_ids=ids).logits
    padded = torch.cat([ids, torch.full((1, 3), 62)], dim=1)
    attn = torch.tensor([[1] * 6 + [0] * 3])
    long = tiny(input_ids=padded, attention_mask=attn).logits
    assert torch.allclose(short, long[:, :6], atol=1e-5)


def test_save_load_roundtrip_through_transformers(tiny, tmp_path):
    tiny.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    again = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert isinstance(again, RefinerModel)
    ids = torch.randint(0, 60, (2, 7))
    assert torch.allclose(tiny(input_ids=ids).logits, again(input_ids=ids).logits, atol=1e-6)
    assert again.config.mask_token_id == 63
    pred, tok = load_predictor(tmp_path)
    assert tok is None and pred.mask_token_id == 63 and pred.max_length == 256
    assert detect_kind(tmp_path) == "native"


def test_too_long_input_is_refused(tiny):
    pred = native_predictor(tiny)
    with pytest.raises(ValueError, match="maximum length"):
        pred(torch.zeros(1, 300, dtype=torch.long), torch.ones(1, 300, dtype=torch.long))


def test_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_predictor(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="config.json"):
        detect_kind(tmp_path)


def test_bad_head_count():
    with pytest.raises(ValueError, match="divisible"):
        refiner_config("tiny", num_attention_heads=5)
    with pytest.raises(KeyError, match="unknown refiner preset"):
        refiner_config("huge")


REMOTE_CONFIG = textwrap.dedent('''
    from transformers import PretrainedConfig

    class FakeConfig(PretrainedConfig):
        model_type = "{model_type}"

        def __init__(self, vocab_size=40, mask_token_id=None, **kw):
            self.vocab_size = vocab_size
            self.mask_token_id = mask_token_id
            super().__init__(**kw)
''')

REMOTE_MODEL = textwrap.dedent('''
    import torch
    from transformers import PreTrainedModel
    from transformers.modeling_outputs import CausalLMOutput
    from .configuration_fake import FakeConfig

    class FakeModel(PreTrainedModel):
        """Identity predictor (LLaDA-like) or next-token predictor (Dream-like, shift=True)."""
        config_class = FakeConfig

        def __init__(self, config):
            super().__init__(config)
            self.scale = torch.nn.Parameter(torch.tensor(10.0))
            self.post_init()

        def _init_weights(self, module):
            pass

        def forward(self, input_ids, attention_mask=None, **kw):
            target = torch.roll(input_ids, -1, dims=1) if {shift} else input_ids
            logits = torch.nn.functional.one_hot(target, self.config.vocab_size).float() * self.scale
            return CausalLMOutput(logits=logits)
''')


def _remote_checkpoint(path, model_type, shift, mask_token_id):
    path.mkdir()
    (path / "configuration_fake.py").write_text(REMOTE_CONFIG.format(model_type=model_type))
    (path / "modeling_fake.py").write_text(REMOTE_MODEL.format(shift=shift))
    cfg = {
        "model_type": model_type,
        "architectures": ["FakeModel"],
        "vocab_size": 40,
        "mask_token_id": mask_token_id,
        "auto_map": {"AutoConfig": "configuration_fake.FakeConfig", "AutoModel": "modeling_fake.FakeModel"},
    }
    (path / "config.json").write_text(json.dumps(cfg))
    save_file({"scale": torch.tensor(10.0)}, str(path / "model.safetensors"))


def test_llada_style_checkpoint_mask_id_from_config(tmp_path):
    path = tmp_path / "llada"
    _remote_checkpoint(path, "llada", False, 37)
    pred, _ = load_predictor(path)
    assert pred.mask_token_id == 37 and not pred.shift
    ids = torch.tensor([[1, 2, 3, 4]])
    assert pred(ids, torch.ones_like(ids)).argmax(-1).tolist() == [[1, 2, 3, 4]]


def test_dream_style_checkpoint_logits_are_shifted(tmp_path):
    path = tmp_path / "dream"
    _remote_checkpoint(path, "Dream", True, 39)
    pred, _ = load_predictor(path)
    assert pred.mask_token_id == 39 and pred.shift
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    # the raw model predicts the next token; after the shift position i predicts token i
    assert pred(ids, torch.ones_like(ids)).argmax(-1)[0, 1:].tolist() == [2, 3, 4, 5]


def test_checkpoint_without_mask_token_is_an_error(tmp_path):
    path = tmp_path / "nomask"
    _remote_checkpoint(path, "llada", False, None)
    with pytest.raises(ValueError, match="no mask token"):
        load_predictor(path)


def test_predict_at_matches_the_full_pass_and_the_cache_reproduces_it(tiny):
    ids = torch.randint(0, 60, (2, 12))
    attn = torch.ones_like(ids)
    attn[1, 10:] = 0
    pos = torch.tensor([[3, 4, 5], [2, 3, 3]])
    full = tiny(input_ids=ids, attention_mask=attn).logits
    at, cache = tiny.predict_at(ids, attn, pos, build_cache=True)
    assert torch.allclose(at, full.gather(1, pos[..., None].expand(-1, -1, 64)), atol=1e-5)
    again, _ = tiny.predict_at(ids, attn, pos, cache=cache)
    assert torch.allclose(again, at, atol=1e-5)
    # a changed active token changes only what the active positions see
    ids2 = ids.clone()
    ids2[0, 4] = (ids2[0, 4] + 1) % 60
    changed, _ = tiny.predict_at(ids2, attn, pos, cache=cache)
    assert not torch.allclose(changed[0], at[0])
