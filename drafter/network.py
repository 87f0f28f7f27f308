"""What generation and scoring need of a drafter: the network seam and a few attributes.

:mod:`drafter.generate` and :mod:`drafter.score` work on this protocol, not on
:class:`drafter.model.Drafter` itself, so the model module can use them without either
importing it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch

Prompt = str | Sequence[int]
"""A prompt is text (encoded as plain text after the tokenizer's leading tokens) or token ids
(used exactly as given)."""


class ForwardFn(Protocol):
    """The network seam (see :meth:`drafter.model.Drafter.forward`)."""

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        past: Any | None,
        *,
        last_only: bool = False,
        cache: bool = True,
    ) -> tuple[torch.Tensor, Any | None]: ...


class CausalLM(Protocol):
    """A causal LM with its tokenizer, as :class:`drafter.model.Drafter` presents one."""

    model: Any  # the transformers model (its config sizes batches)
    tokenizer: Any
    context_length: int | None  # longest sequence the model was built for; None: unknown
    eos_ids: frozenset[int]
    pad_id: int

    @property
    def device(self) -> torch.device: ...

    @property
    def forward(self) -> ForwardFn: ...

    def prompt_ids(self, prompt: Prompt) -> list[int]: ...

    def check_length(self, n_tokens: int, what: str = "prompt") -> None: ...


class ContinuationLM(CausalLM, Protocol):
    """A :class:`CausalLM` whose cache can be shared by several rows (scoring continuations of
    one prompt)."""

    def repeat_cache(self, past: Any, n: int) -> Any: ...
