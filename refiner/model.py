"""The native mask predictor: a small bidirectional Llama-style transformer (the LLaDA shape).

RMSNorm, rotary positions, SwiGLU MLPs and *no* causal mask: every position sees every
other real position, which is what lets the refiner denoise a span with context from both
sides. It is a transformers ``PreTrainedModel`` so ``save_pretrained`` / ``from_pretrained``
and safetensors work unchanged, and it is registered with ``AutoConfig`` and
``AutoModelForMaskedLM`` so a saved checkpoint loads through the generic adapter too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForMaskedLM, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from backends.tokens import special_ids
from refiner.onnx_attention import fused_attention

MODEL_TYPE = "remask_refiner"


class RefinerConfig(PretrainedConfig):  # type: ignore[no-untyped-call]  # transformers' untyped __init_subclass__
    """Hyper-parameters of the native refiner. Special token ids live here, never inline."""

    model_type = MODEL_TYPE

    def __init__(
        self,
        vocab_size: int = 8192,
        hidden_size: int = 256,
        intermediate_size: int = 688,  # ~8/3 * hidden, rounded: SwiGLU keeps MLP FLOPs ~ 4h^2 * 2
        num_hidden_layers: int = 6,
        num_attention_heads: int = 4,
        max_position_embeddings: int = 1024,  # rotary has no table; this caps inputs
        rope_theta: float = 10000.0,
        rms_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        tie_word_embeddings: bool = True,  # halves embedding params: matters for < 40 MB models
        mask_token_id: int | None = None,
        filler_token_id: int | None = None,
        pad_token_id: int | None = None,
        eos_token_id: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.initializer_range = initializer_range
        self.mask_token_id = mask_token_id
        self.filler_token_id = filler_token_id
        super().__init__(**kwargs)
        self.pad_token_id = pad_token_id
        self.eos_token_id = eos_token_id
        self.tie_word_embeddings = tie_word_embeddings
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size ({hidden_size}) must be divisible by "
                f"num_attention_heads ({num_attention_heads})"
            )


@dataclass(frozen=True)
class Preset:
    """A named model shape. Token ids are filled in from the tokenizer at build time.

    ``max_position_embeddings`` is only the default of a config built outside training:
    the trainer sets it to the sequence length the model is trained on.
    """

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    max_position_embeddings: int


PRESETS: dict[str, Preset] = {
    # tests: a forward pass in well under a millisecond of compute
    "tiny": Preset(64, 32, 64, 2, 4, 256),
    # ~6.8M params with an 8k vocabulary: the shape for a GPU budget
    "default": Preset(8192, 256, 688, 6, 4, 1024),
    # ~3.3M params: 1.7x the tokens/s of "default" on one CPU core, so it learns more in an
    # hour of 2-core CPU (a 7-minute side-by-side run: held-out loss 6.68 against 7.02)
    "cpu": Preset(8192, 192, 512, 4, 3, 1024),
    # ~8.4M params (under 20 MB in bfloat16): the GPU recipe's shape, shared with the
    # drafter's "gpu" preset so a trained drafter can warm-start the refiner
    "gpu": Preset(8192, 256, 688, 8, 4, 512),
}


def refiner_config(name: str = "tiny", **overrides: Any) -> RefinerConfig:
    """Build a :class:`RefinerConfig` from a named preset, with field overrides."""
    if name not in PRESETS:
        raise KeyError(f"unknown refiner preset {name!r}; known: {sorted(PRESETS)}")
    fields = asdict(PRESETS[name]) | overrides
    if name == "tiny":
        # tiny vocabularies reserve their last ids for the special tokens
        v = fields["vocab_size"]
        fields.setdefault("mask_token_id", v - 1)
        fields.setdefault("pad_token_id", v - 2)
        fields.setdefault("eos_token_id", v - 3)
        fields.setdefault("filler_token_id", v - 4)
    return RefinerConfig(**fields)


def tokenizer_config(name: str, tokenizer: Any, **overrides: Any) -> RefinerConfig:
    """A preset sized to ``tokenizer``'s vocabulary, with its special ids, and field overrides."""
    sp = special_ids(tokenizer)
    return refiner_config(name, vocab_size=len(tokenizer), mask_token_id=sp.mask, pad_token_id=sp.pad,
                          eos_token_id=sp.eos, filler_token_id=sp.filler, **overrides)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # normalise in float32: bf16 variance underflows for small activations
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rotary_tables(
    positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables for rotary embeddings. positions: (B, L) -> two (B, 1, L, head_dim)."""
    inv_freq = 1.0 / (
        theta ** (torch.arange(0, head_dim, 2, device=positions.device).float() / head_dim)
    )
    freqs = positions.float()[..., None] * inv_freq  # (B, L, hd/2)
    emb = torch.cat([freqs, freqs], dim=-1)  # (B, L, hd)
    return emb.cos()[:, None].to(dtype), emb.sin()[:, None].to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + _rotate_half(x) * sin


class Attention(nn.Module):
    def __init__(self, cfg: RefinerConfig) -> None:
        super().__init__()
        self.n_head = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=False)
        self.o_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=False)
        self.o_proj.residual_out = True  # type: ignore[assignment]

    def project(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, C) -> q, k, v each (B, nh, T, hd), rotary applied to q and k."""
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=-1)
        q = q.view(b, t, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(b, t, self.n_head, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.n_head, self.head_dim).transpose(1, 2)
        return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """q (B, nh, Tq, hd) over k, v (B, nh, Tk, hd) -> (B, Tq, C)."""
        # bidirectional: the only mask hides padding keys; key_mask is (B, 1, 1, Tk) bool
        if torch.onnx.is_in_onnx_export():
            # traced for ONNX: one fused attention node, not ops over the whole score matrix
            fused: torch.Tensor = self.o_proj(fused_attention(q, k, v, key_mask, self.n_head))
            return fused
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, is_causal=False)
        b, _, tq, _ = q.shape
        out: torch.Tensor = self.o_proj(y.transpose(1, 2).reshape(b, tq, -1))  # (B, Tq, C)
        return out

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        key_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        q, k, v = self.project(x, cos, sin)
        return self.attend(q, k, v, key_mask)


class SwiGLU(nn.Module):
    def __init__(self, cfg: RefinerConfig) -> None:
        super().__init__()
        self.gate_up = nn.Linear(cfg.hidden_size, 2 * cfg.intermediate_size, bias=False)
        self.down = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)
        self.down.residual_out = True  # type: ignore[assignment]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        out: torch.Tensor = self.down(F.silu(gate) * up)
        return out


class Block(nn.Module):
    def __init__(self, cfg: RefinerConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, key_mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, key_mask)
        out: torch.Tensor = x + self.mlp(self.mlp_norm(x))
        return out

    def forward_recording(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, key_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The full pass, also returning this layer's keys and values for a context cache."""
        q, k, v = self.attn.project(self.attn_norm(x), cos, sin)
        x = x + self.attn.attend(q, k, v, key_mask)
        return x + self.mlp(self.mlp_norm(x)), k, v

    def forward_active(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        key_mask: torch.Tensor | None,
        keys: torch.Tensor,
        values: torch.Tensor,
        index: torch.Tensor,
    ) -> torch.Tensor:
        """Run only the active positions; their fresh k/v overwrite the cache at ``index``.

        x: (B, P, C) active hidden states; keys, values: (B, nh, L, hd) cached for all
        positions (updated in place); index: (B, nh, P, hd) scatter index of the positions.
        """
        q, k, v = self.attn.project(self.attn_norm(x), cos, sin)
        keys.scatter_(2, index, k)
        values.scatter_(2, index, v)
        x = x + self.attn.attend(q, keys, values, key_mask)
        out: torch.Tensor = x + self.mlp(self.mlp_norm(x))
        return out


@dataclass
class ContextCache:
    """Per-layer keys and values of a whole window, each (B, nh, L, hd).

    The approximation that makes it pay (Fast-dLLM's "dual cache"): context positions keep
    the keys and values computed when the cache was built, while the positions being denoised
    are recomputed every step. Refreshing at each block bounds the drift.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    def select(self, rows: torch.Tensor) -> ContextCache:
        return ContextCache([k[rows] for k in self.keys], [v[rows] for v in self.values])

    @torch.inference_mode()  # the tensors were made in inference mode: update them there
    def update(self, rows: torch.Tensor, part: ContextCache) -> None:
        for full, new in zip(self.keys + self.values, part.keys + part.values):
            full[rows] = new


class RefinerModel(PreTrainedModel):  # type: ignore[no-untyped-call]  # transformers' untyped __init_subclass__
    """Bidirectional transformer returning logits over the vocabulary at every position."""

    config_class = RefinerConfig
    base_model_prefix = "refiner"
    # transformers declares both as instance attributes: ClassVar would contradict it
    _tied_weights_keys = {"lm_head.weight": "embed_tokens.weight"}  # noqa: RUF012

    _no_split_modules = ["Block"]  # noqa: RUF012

    def __init__(self, config: RefinerConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.lm_head: nn.Module = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()  # type: ignore[no-untyped-call]  # transformers: ties weights, runs _init_weights

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, RMSNorm):
            nn.init.ones_(module.weight)
        if getattr(module, "residual_out", False):
            # residual projections scaled down with depth (GPT-2): keeps early training stable
            depth_std = std / math.sqrt(2 * self.config.num_hidden_layers)
            nn.init.normal_(module.weight, mean=0.0, std=depth_std)  # type: ignore[arg-type]

    def get_input_embeddings(self) -> nn.Module:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embed_tokens = value  # type: ignore[assignment]

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        logits_at: torch.Tensor | None = None,
        **_: Any,
    ) -> MaskedLMOutput:
        """input_ids, attention_mask: (B, L) -> logits (B, L, V) in float32.

        ``logits_at`` (B, L) bool: only those positions' logits, (N, V) in row-major order.
        Training uses it to skip the vocabulary projection where no loss is taken: with an
        8k vocabulary that projection costs as much as the whole body of a small model.
        """
        b, t = input_ids.shape
        self._check_length(t)
        x = self.embed_tokens(input_ids)  # (B, L, C)
        if position_ids is None:
            position_ids = torch.arange(t, device=input_ids.device).expand(b, t)
        head_dim = self.config.hidden_size // self.config.num_attention_heads
        cos, sin = rotary_tables(position_ids, head_dim, self.config.rope_theta, x.dtype)
        key_mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            key_mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, L)
        for layer in self.layers:
            x = layer(x, cos, sin, key_mask)
        if logits_at is not None:
            x = x[logits_at.to(x.device)]  # (N, C)
        logits = self.lm_head(self.norm(x)).float()
        return MaskedLMOutput(logits=logits)

    def _check_length(self, t: int) -> None:
        """Refuse windows longer than the context the model was trained on.

        Rotary positions have no table to overflow, so a longer input would run, but on
        positions the model never saw: its output there is not to be trusted.
        """
        if t > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence of {t} tokens exceeds max_position_embeddings "
                f"({self.config.max_position_embeddings}), the context this model was "
                "trained on"
            )

    def _tables(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        head_dim = self.config.hidden_size // self.config.num_attention_heads
        return rotary_tables(position_ids, head_dim, self.config.rope_theta, dtype)

    @torch.inference_mode()
    def predict_at(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
        cache: ContextCache | None = None,
        build_cache: bool = False,
    ) -> tuple[torch.Tensor, ContextCache | None]:
        """Logits only where they are needed: (B, L) ids, (B, P) positions -> (B, P, V).

        The output layer (an 8k-way projection, a third of the compute) runs only at
        ``positions``. With ``cache``, only those positions go through the layers at all,
        attending to the cached context (see :class:`ContextCache`); ``build_cache`` runs
        the full pass and returns a new cache.
        """
        b, t = input_ids.shape
        self._check_length(t)
        key_mask = None
        if not bool(attention_mask.all()):
            key_mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, L)
        if cache is None:
            x = self.embed_tokens(input_ids)  # (B, L, C)
            cos, sin = self._tables(torch.arange(t, device=input_ids.device).expand(b, t), x.dtype)
            keys: list[torch.Tensor] = []
            values: list[torch.Tensor] = []
            for layer in self.layers:
                if build_cache:
                    x, k, v = layer.forward_recording(x, cos, sin, key_mask)  # type: ignore[operator]
                    keys.append(k)
                    values.append(v)
                else:
                    x = layer(x, cos, sin, key_mask)
            h = x.gather(1, positions[..., None].expand(-1, -1, x.shape[-1]))  # (B, P, C)
            new_cache = ContextCache(keys, values) if build_cache else None
            return self.lm_head(self.norm(h)).float(), new_cache
        x = self.embed_tokens(input_ids.gather(1, positions))  # (B, P, C)
        cos, sin = self._tables(positions, x.dtype)
        n_head = self.config.num_attention_heads
        head_dim = self.config.hidden_size // n_head
        index = positions[:, None, :, None].expand(b, n_head, positions.shape[1], head_dim)
        for layer, k, v in zip(self.layers, cache.keys, cache.values):
            x = layer.forward_active(x, cos, sin, key_mask, k, v, index)  # type: ignore[operator]
        return self.lm_head(self.norm(x)).float(), cache


AutoConfig.register(MODEL_TYPE, RefinerConfig, exist_ok=True)
AutoModelForMaskedLM.register(RefinerConfig, RefinerModel, exist_ok=True)
