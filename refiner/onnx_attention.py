"""The refiner's attention as one fused ONNX Runtime node in exported graphs.

The TorchScript exporter writes ``scaled_dot_product_attention`` at opset 17 as MatMul, Mul,
Add, Softmax and MatMul over the whole (B, nh, L, L) score matrix, plus an IsNaN/Where pair
that guards fully masked rows. At 2,048 tokens ONNX Runtime spent more time in that Where
than in all the linear layers together, and every op streams the score matrix through
memory once more. ONNX Runtime's ``com.microsoft.MultiHeadAttention`` does the same
computation in one kernel (scores, key padding, softmax and the weighted sum per head):
the ONNX refiner forward at 2,048 tokens took 1.4x less time with it, 1.1x at 512, the same
at 128 (2 cores). The CPU provider is the one tested; the CUDA provider has the op too.

:class:`FusedAttention` is an autograd function whose ``forward`` is the eager computation
and whose ``symbolic`` is that node, so the tracer records the fused node and eager numerics
stay exactly as they are. The refiner's attention calls it (through :func:`fused_attention`)
only while an export is being traced (see ``Attention.attend``). Opset 23's own ``Attention``
op would be the standard alternative, but the TorchScript exporter stops at opset 20.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

ORT_DOMAIN = "com.microsoft"
_INT32 = 6  # onnx.TensorProto.INT32: MultiHeadAttention's key padding mask type


class FusedAttention(torch.autograd.Function):
    """q (B, nh, Tq, hd) over k, v (B, nh, Tk, hd), key_mask (B, 1, 1, Tk) bool or None
    -> (B, Tq, nh * hd); exported as one ``com.microsoft.MultiHeadAttention`` node."""

    @staticmethod
    def forward(
        ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None, n_head: int
    ) -> torch.Tensor:
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, is_causal=False)
        b, _, tq, _ = q.shape
        return y.transpose(1, 2).reshape(b, tq, -1)  # (B, Tq, C)

    @staticmethod
    def symbolic(g: Any, q: Any, k: Any, v: Any, key_mask: Any, n_head: int) -> Any:
        """The graph for ``forward``; ``g`` and the values are TorchScript's (untyped) IR."""
        # the query goes in as (B, Tq, C); keys and values stay (B, nh, Tk, hd), a layout
        # the op takes as it is
        query = g.op("Transpose", q, perm_i=[0, 2, 1, 3])
        query = g.op("Reshape", query, g.op("Constant", value_t=torch.tensor([0, 0, -1])))
        inputs = [query, k, v]
        if key_mask is not None and not key_mask.node().mustBeNone():  # None: no padding anywhere
            # (B, 1, 1, Tk) bool -> (B, Tk) int32, 1 for a real key
            mask = g.op("Reshape", key_mask, g.op("Constant", value_t=torch.tensor([0, -1])))
            inputs += [_absent(g), g.op("Cast", mask, to_i=_INT32)]  # no projection bias
        out = g.op(
            f"{ORT_DOMAIN}::MultiHeadAttention",
            *inputs,
            num_heads_i=n_head,
            # added to the scores of padding keys: their weight is exactly zero, as under
            # eager's boolean mask, and unlike -inf it can never make a NaN
            mask_filter_value_f=float(torch.finfo(torch.float32).min),
        )
        out.setType(q.type().with_sizes(_output_sizes(q.type().varyingSizes())))
        return out


def fused_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None, n_head: int
) -> torch.Tensor:
    """:class:`FusedAttention` applied: (B, nh, Tq, hd) queries -> (B, Tq, C)."""
    out: torch.Tensor = FusedAttention.apply(q, k, v, key_mask, n_head)  # type: ignore[no-untyped-call]  # torch: untyped
    return out


def _absent(g: Any) -> Any:
    """An omitted optional input (an empty name in the ONNX node)."""
    none = g.op("prim::Constant")
    none.setType(torch._C.OptionalType.ofTensor())
    return none


def _output_sizes(q_sizes: list[int | None]) -> list[int | None]:
    """(B, nh, Tq, hd) -> (B, Tq, nh * hd), unknown where the query's sizes are."""
    b, n, t, h = q_sizes
    return [b, t, None if n is None or h is None else n * h]
