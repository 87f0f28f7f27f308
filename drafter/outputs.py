"""What the drafter hands back: drafts, streamed tokens and scores of existing text.

Every token comes with the log-probability the model gave it and the entropy of the model's
distribution at that step, both under the *untempered* model, so a later stage can find the
weak tokens of a draft whatever sampling settings produced it. ``offsets`` map each token to the
characters of ``text`` it produced (Python code points, end exclusive).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FinishReason = Literal["stop", "length", "eos"]
"""``"stop"``: a stop string matched; ``"length"``: max_new_tokens or the context ran out;
``"eos"``: the model emitted an end token (EOS, or a FIM format's end-of-middle token)."""


@dataclass(frozen=True)
class DraftToken:
    """One generated token, as streamed.

    ``text`` is the text this token adds. It may be empty (a token holding only part of a
    UTF-8 character: its bytes show up with the token that completes the character) and, for
    the token that runs into a stop string, it is cut where the stop string starts.
    """

    id: int
    text: str
    logprob: float  # log p(token | context) under the untempered model, in nats
    entropy: float  # entropy of the untempered next-token distribution, in nats


@dataclass
class Draft:
    """A generated continuation.

    ``token_ids`` are the tokens that produced ``text``: end tokens are not included, and after
    a stop string only the tokens up to the one in which the stop string starts are kept (that
    last token may reach into the stop string; ``text`` never does).
    """

    text: str
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)
    offsets: list[tuple[int, int]] = field(default_factory=list)
    finish_reason: FinishReason = "length"

    @classmethod
    def from_tokens(cls, tokens: list[DraftToken], finish_reason: FinishReason) -> Draft:
        """Assemble a draft from streamed tokens, in order."""
        offsets: list[tuple[int, int]] = []
        pos = 0
        for tok in tokens:
            offsets.append((pos, pos + len(tok.text)))
            pos += len(tok.text)
        return cls(
            text="".join(t.text for t in tokens),
            token_ids=[t.id for t in tokens],
            logprobs=[t.logprob for t in tokens],
            entropies=[t.entropy for t in tokens],
            offsets=offsets,
            finish_reason=finish_reason,
        )


@dataclass
class Score:
    """Per-token log-probs and entropies of an existing text under the drafter.

    ``offsets`` index into ``text``, the decoded tokens (equal to the input text for lossless
    tokenizers such as byte-level BPE). When the tokenizer has no token to start a text with
    (no BOS and no EOS), the first token has no context: its logprob and entropy are ``nan``.
    """

    text: str
    token_ids: list[int]
    logprobs: list[float]
    entropies: list[float]
    offsets: list[tuple[int, int]]
