"""Per-request generation parameters of the drafter (the user-facing knobs, validated).

These are what a request carries. The batched tensors the decode loop works on are built from
them in :mod:`drafter.generate`; nothing downstream reads a request's fields directly.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class GenerationParams(BaseModel):
    """How to draft one continuation. The defaults give a deterministic greedy draft."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(default=64, ge=1)
    """Most tokens to generate. Fewer are generated when the model's context fills up first
    (finish reason ``"length"`` in both cases)."""

    temperature: float = Field(default=0.0, ge=0.0)
    """0 picks the most likely token at every step (greedy: the same output every time).
    Above 0 the logits are divided by it before sampling: < 1 sharper, > 1 flatter."""

    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    """Nucleus sampling: sample only among the most likely tokens whose probabilities sum to at
    least ``top_p``. 1 turns it off. Ignored when greedy."""

    top_k: int = Field(default=0, ge=0)
    """Sample only among the ``top_k`` most likely tokens; 0 turns it off. Ignored when greedy."""

    stop: list[str] = Field(default_factory=list)
    """Strings that end the draft. They are matched on the decoded text, so a stop string may
    span several tokens; the returned text ends just before the first match."""

    seed: int | None = None
    """Seeds a ``torch.Generator`` private to this request, so a sampled draft is reproducible
    and does not depend on the other requests it is batched with. ``None``: the global RNG."""

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, stop: list[str]) -> list[str]:
        # an empty stop string would match before the first token and end every draft at once
        if any(s == "" for s in stop):
            raise ValueError("stop strings must not be empty")
        return stop

    @property
    def greedy(self) -> bool:
        """Whether tokens are chosen by argmax (temperature 0)."""
        return self.temperature == 0.0
