"""The drafter: any transformers causal LM plus its tokenizer, behind one small class.

:class:`Drafter` loads a checkpoint from a local directory, owns the tokenizer rules (plain-text
encoding, the tokens a prompt starts with, end tokens) and exposes the network through a single
method, :meth:`Drafter.forward`. Generation, FIM and scoring are free functions in their own
modules that only call that method, so another backend (ONNX Runtime) can stand in by providing
a ``forward`` with the same contract.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

from backends.weights import check_weights
from drafter import generate as gen
from drafter.fim import FimOrder, FimPrompt, FimTokens, build_fim_prompt, fim_format_for
from drafter.network import Prompt
from drafter.outputs import Draft, Score
from drafter.params import GenerationParams
from drafter.score import score_continuations, score_ids, score_many
from drafter.text import encode_text, leading_special_ids

# config attributes that hold the longest sequence a model was built for, by model family
_CONTEXT_ATTRS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


class Drafter:
    """An autoregressive model that drafts text, with per-token log-probs and entropies."""

    def __init__(self, model: PreTrainedModel, tokenizer: Any, name: str | None = None) -> None:
        """Wrap a loaded causal LM and its tokenizer. ``name`` shows up in error messages."""
        self.model = model
        self.model.train(False)  # inference only: no dropout
        self.tokenizer = tokenizer
        self.name: str = name or getattr(model, "name_or_path", "") or str(model.config.model_type)
        self.context_length: int | None = context_length(model.config)
        self.eos_ids: frozenset[int] = _eos_ids(model, tokenizer)
        pad = getattr(tokenizer, "pad_token_id", None)
        # padding is masked out, so any id will do when the tokenizer has no pad token
        self.pad_id: int = int(pad) if pad is not None else min(self.eos_ids, default=0)
        self.leading_ids: list[int] = leading_special_ids(tokenizer)
        params = inspect.signature(model.forward).parameters
        self._keeps_logits = "logits_to_keep" in params
        self._fim: dict[str | None, FimTokens] = {}

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        trust_remote_code: bool = False,
        name: str | None = None,
    ) -> Drafter:
        """Load a causal LM and its tokenizer from a local directory (``save_pretrained`` output).

        Weights may be stored in any dtype (remask saves bfloat16) and split into shards; they
        are cast to ``dtype``, float32 by default: the CPU computes in float32, and bfloat16
        matmuls there are slower and lose precision in the log-probs the pipelines compare.

        Raises ``FileNotFoundError`` if ``path``, its weights or a shard its index lists do not
        exist, :class:`~backends.weights.WeightsError` (a ``ValueError``) naming the file when
        a weight file is corrupt or cut short, and ``ValueError`` if it is not a transformers
        model directory or holds a model that is not a causal LM.
        """
        root = Path(path)
        if not root.exists():
            raise FileNotFoundError(f"drafter checkpoint not found: {str(root)!r} does not exist")
        if not (root / "config.json").is_file():
            raise ValueError(
                f"{str(root)!r} is not a transformers model directory: it has no config.json"
            )
        try:
            config = AutoConfig.from_pretrained(root, trust_remote_code=trust_remote_code)
        except (KeyError, ValueError) as err:
            raise ValueError(f"cannot read the model config in {str(root)!r}: {err}") from err
        _check_causal_lm(config, root, trust_remote_code)
        check_weights(root)  # a broken file is named here, not deep inside safetensors
        model = AutoModelForCausalLM.from_pretrained(
            root, dtype=dtype, trust_remote_code=trust_remote_code
        )
        tokenizer = AutoTokenizer.from_pretrained(root, trust_remote_code=trust_remote_code)
        model = model.to(device)  # type: ignore[arg-type]  # transformers' decorated .to()
        return cls(model, tokenizer, name=name or str(root))

    @property
    def device(self) -> torch.device:
        device: torch.device = next(self.model.parameters()).device
        return device

    # --- the network seam -------------------------------------------------------------------

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        past: Any | None,
        *,
        last_only: bool = False,
        cache: bool = True,
    ) -> tuple[torch.Tensor, Any | None]:
        """One call of the network; the only place the drafter touches the model.

        input_ids, position_ids: (B, T) int64; attention_mask: (B, P + T), 1 for real tokens,
        covering the ``P`` cached positions too; past: the KV cache a previous call returned, or
        ``None`` to start. Returns logits (B, T, V) in float32 (``(B, 1, V)`` with
        ``last_only``: at a 150k vocabulary, a long prompt's full logits cost gigabytes) and the
        updated cache (``None`` without ``cache``). A backend that replaces this keeps the cache
        object opaque: callers only hand it back.
        """
        self.check_positions(position_ids)
        extra: dict[str, Any] = {"logits_to_keep": 1} if last_only and self._keeps_logits else {}
        with torch.inference_mode():
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=past,
                use_cache=cache,
                **extra,
            )
        logits = out.logits[:, -1:] if last_only else out.logits
        return logits.float(), (out.past_key_values if cache else None)

    def repeat_cache(self, past: Any, n: int) -> Any:
        """A cache of one row (what :meth:`forward` returned) repeated for ``n`` rows, so that
        several continuations of one prompt share its forward pass."""
        past.batch_repeat_interleave(n)  # transformers' Cache: in place
        return past

    # --- prompts ----------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` as plain text: no BOS/EOS, special-token strings stay text."""
        return encode_text(self.tokenizer, text)

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """Ids to feed for a prompt: the tokenizer's leading tokens + plain text, or ids as given.

        An empty prompt starts from the document boundary (BOS, else EOS), as in training.
        """
        ids = (
            [int(t) for t in prompt]
            if not isinstance(prompt, str)
            else (self.leading_ids + self.encode(prompt))
        )
        if not ids:
            start = self.leading_ids or sorted(self.eos_ids)[:1]
            if not start:
                raise ValueError("empty prompt and the tokenizer has no BOS or EOS to start from")
            ids = list(start)
        return ids

    def check_length(self, n_tokens: int, what: str = "prompt") -> None:
        """Raise ``ValueError`` if ``n_tokens`` do not fit the model's context."""
        ctx = self.context_length
        if ctx is not None and n_tokens > ctx:
            raise ValueError(
                f"{what} of {n_tokens} tokens is longer than the context of {self.name!r}: "
                f"{ctx} tokens"
            )

    def check_positions(self, position_ids: torch.Tensor) -> None:
        """Raise ``ValueError`` if a position lies past the context the model was trained on.

        The last line of defence behind the callers' own fitting (prompt check, token budget,
        windowed scoring): rotary models would run there, on positions they never saw, and
        models with a position table would index past its end.
        """
        ctx = self.context_length
        if ctx is not None and position_ids.numel() and int(position_ids.max()) >= ctx:
            raise ValueError(
                f"position {int(position_ids.max())} is past the context of {self.name!r}: "
                f"{ctx} tokens (positions 0 to {ctx - 1})"
            )

    # --- what callers use ------------------------------------------------------------------

    def generate(
        self,
        prompt: Prompt,
        params: GenerationParams | None = None,
        *,
        stop_ids: frozenset[int] | None = None,
    ) -> Draft:
        """Draft a continuation of ``prompt``. ``stop_ids``: extra end tokens besides EOS."""
        return gen.generate_batch(self, [prompt], params, stop_ids=stop_ids)[0]

    def generate_batch(
        self,
        prompts: Sequence[Prompt],
        params: GenerationParams | Sequence[GenerationParams] | None = None,
        *,
        stop_ids: frozenset[int] | None = None,
    ) -> list[Draft]:
        """Draft several prompts in one batch; ``params`` is shared or one per prompt."""
        return gen.generate_batch(self, prompts, params, stop_ids=stop_ids)

    def stream(
        self,
        prompt: Prompt,
        params: GenerationParams | None = None,
        *,
        stop_ids: frozenset[int] | None = None,
    ) -> gen.DraftStream:
        """Iterate over the tokens of a draft as they are produced (see :class:`DraftStream`)."""
        return gen.stream(self, prompt, params, stop_ids=stop_ids)

    def fim_format(self, format: str | None = None) -> FimTokens:
        """This model's FIM format: by name, or detected from the tokenizer (cached)."""
        if format not in self._fim:
            self._fim[format] = fim_format_for(self.tokenizer, format, model_name=self.name)
        return self._fim[format]

    def fim_prompt(
        self, prefix: str, suffix: str, *, format: str | None = None, order: FimOrder = "psm"
    ) -> FimPrompt:
        """The FIM prompt for a hole between ``prefix`` and ``suffix``, and its end tokens."""
        return build_fim_prompt(
            self.tokenizer, prefix, suffix, format=self.fim_format(format), order=order
        )

    def fim(
        self,
        prefix: str,
        suffix: str,
        params: GenerationParams | None = None,
        *,
        format: str | None = None,
        order: FimOrder = "psm",
    ) -> Draft:
        """Generate the middle between ``prefix`` and ``suffix``; it ends at EOS or at the
        format's end-of-middle tokens (finish reason ``"eos"``)."""
        prompt = self.fim_prompt(prefix, suffix, format=format, order=order)
        return self.generate(prompt.ids, params, stop_ids=prompt.stop_ids)

    def score(self, text: Prompt) -> Score:
        """Log-probs and entropies of every token of an existing text.

        Text is encoded as plain text and scored after the tokenizer's document start (BOS,
        else EOS) so its first token is scored too; ids are scored as given, with that start
        token put before them as well. A text that fits the context takes one forward pass,
        a longer one overlapping windows of the context's length (:mod:`drafter.score`).
        """
        ids = self.encode(text) if isinstance(text, str) else [int(t) for t in text]
        return score_ids(self, ids, self._document_start())

    def score_many(self, texts: Sequence[Prompt]) -> list[Score]:
        """:meth:`score` of several texts, batched into shared forward passes (right-padded
        rows: each text scores as it does alone). The search ranks its candidates this way."""
        rows = [self.encode(t) if isinstance(t, str) else [int(i) for i in t] for t in texts]
        return score_many(self, rows, self._document_start())

    def score_continuations(self, prompt: Sequence[int], continuations: Sequence[Sequence[int]]) -> list[list[float]]:
        """Log-prob of every token of each continuation (ids) right after the ids of
        ``prompt``, as generation would have produced it: the prompt runs once, the
        continuations in one batch after it (:func:`drafter.score.score_continuations`)."""
        return score_continuations(self, prompt, continuations)

    def _document_start(self) -> list[int]:
        """What a scored text follows: the tokenizer's leading tokens (BOS), else EOS."""
        return self.leading_ids or sorted(self.eos_ids)[:1]


def context_length(config: Any) -> int | None:
    """The longest sequence the model was built for, or ``None`` where the config has none."""
    if hasattr(config, "get_text_config"):
        config = config.get_text_config(decoder=True)
    for attr in _CONTEXT_ATTRS:
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _eos_ids(model: PreTrainedModel, tokenizer: Any) -> frozenset[int]:
    """Every id declared as end of sequence by the tokenizer, the config or generation config."""
    found: set[int] = set()
    sources = (
        getattr(tokenizer, "eos_token_id", None),
        getattr(model.config, "eos_token_id", None),
        getattr(getattr(model, "generation_config", None), "eos_token_id", None),
    )
    for value in sources:
        if isinstance(value, int):
            found.add(value)
        elif isinstance(value, (list, tuple)):
            found.update(int(v) for v in value)
    return frozenset(found)


def _check_causal_lm(config: Any, root: Path, trust_remote_code: bool) -> None:
    """Refuse checkpoints that are not causal LMs before loading any weights."""
    model_type = getattr(config, "model_type", None) or type(config).__name__
    auto_map = getattr(config, "auto_map", None) or {}
    if trust_remote_code and "AutoModelForCausalLM" in auto_map:
        return
    try:
        causal_cls: Any = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    except KeyError:
        raise ValueError(
            f"{str(root)!r} holds a {model_type!r} model, which is not a causal language model: "
            "the drafter needs one (e.g. llama, qwen2, gpt2)"
        ) from None
    # some types (bert) have a causal head class but the checkpoint was trained as something else
    archs = list(getattr(config, "architectures", None) or [])
    causal_names = (causal_cls.__name__, "ForCausalLM", "LMHeadModel")
    if archs and not any(a.endswith(causal_names) for a in archs):
        raise ValueError(
            f"{str(root)!r} holds a {model_type!r} model saved as {archs}, not a causal "
            f"language model ({causal_cls.__name__})"
        )
