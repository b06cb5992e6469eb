"""The one attention module of the zoo.

Every attention in every edge-iqa model, ours and the seed models' (ViT, Swin, TOPIQ's
``nn.MultiheadAttention`` layout, LoDa's cross-attention, GlintIQA's channel attention), calls
:func:`scaled_dot_product`. That single choke point is what lets export pick the attention form a
target needs without touching model code:

- ``"sdpa"`` (default): ``torch.nn.functional.scaled_dot_product_attention``. ``torch.onnx.export
  (dynamo=True, opset_version=23)`` lowers it to one standard ONNX ``Attention`` op per call, which
  ONNX Runtime, OpenVINO and TensorRT >= 10.14 run as a fused kernel.
- ``"matmul_softmax"``: the explicit ``softmax(q k^T * scale + bias) v``; exported as
  MatMul -> (Add) -> Softmax -> MatMul, the pattern TensorRT 10.3 (JetPack 6) fuses itself.

ONNX Runtime's ``com.microsoft.MultiHeadAttention`` is produced from the ``Attention`` form by a
graph rewrite in ``edge_iqa.export``, not here.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

AttentionForm = Literal["sdpa", "matmul_softmax"]
ATTENTION_FORMS: tuple[str, ...] = ("sdpa", "matmul_softmax")

_form: AttentionForm = "sdpa"


def current_attention_form() -> AttentionForm:
    return _form


@contextlib.contextmanager
def attention_form(form: AttentionForm) -> Iterator[None]:
    """Trace or run the models inside with the given attention form (process-wide, not thread-local:
    export traces one model at a time)."""
    global _form
    if form not in ATTENTION_FORMS:
        raise ValueError(f"unknown attention form {form!r}; choose one of {ATTENTION_FORMS}")
    previous, _form = _form, form
    try:
        yield
    finally:
        _form = previous


def scaled_dot_product(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Attention over the last two dims: q (..., Lq, D), k (..., Lk, D), v (..., Lk, Dv).

    ``bias`` is an additive float mask broadcastable to (..., Lq, Lk) (Swin's relative position
    bias and shift mask). ``scale`` defaults to 1/sqrt(D).
    """
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    if _form == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    scores = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        scores = scores + bias
    return scores.softmax(dim=-1) @ v


class MultiHeadAttention(nn.Module):
    """Multi-head attention with the parameter layouts the zoo's checkpoints use.

    ``layout`` fixes the state_dict names, so published checkpoints load unchanged:

    - ``"qkv"``: one ``qkv`` Linear (dim -> 3*dim) and ``proj``: timm ViT / Swin self-attention.
    - ``"q_kv"``: ``q`` (dim -> dim) and ``kv`` (kv_dim -> 2*dim) Linears and ``proj``:
      cross-attention (LoDa's learner, our edge hybrid).
    - ``"in_proj"``: ``in_proj_weight`` (3*dim, dim), ``in_proj_bias`` and ``out_proj``: the
      ``torch.nn.MultiheadAttention`` layout (TOPIQ, DGIQA). Batch-first here; seq-first
      callers transpose.

    ``forward(x, context=None, bias=None)``: ``x`` (B, Lq, dim); ``context`` (B, Lk, kv_dim) for
    cross-attention (defaults to ``x``); returns (B, Lq, dim).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        layout: Literal["qkv", "q_kv", "in_proj"] = "qkv",
        kv_dim: int | None = None,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.layout = dim, num_heads, layout
        self.head_dim = dim // num_heads
        self.scale = scale if scale is not None else self.head_dim**-0.5
        kv_dim = kv_dim or dim
        if layout == "qkv":
            if kv_dim != dim:
                raise ValueError("layout 'qkv' is self-attention: kv_dim must equal dim")
            self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
            self.proj = nn.Linear(dim, dim, bias=proj_bias)
        elif layout == "q_kv":
            self.q = nn.Linear(dim, dim, bias=qkv_bias)
            self.kv = nn.Linear(kv_dim, 2 * dim, bias=qkv_bias)
            self.proj = nn.Linear(dim, dim, bias=proj_bias)
        elif layout == "in_proj":
            if kv_dim != dim:
                raise ValueError("layout 'in_proj' packs q, k, v of the same width")
            self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
            self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim)) if qkv_bias else None
            self.out_proj = nn.Linear(dim, dim, bias=proj_bias)
            nn.init.xavier_uniform_(self.in_proj_weight)
        else:
            raise ValueError(f"unknown layout {layout!r}")

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def project_qkv(
        self, x: torch.Tensor, context: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, C) inputs -> q, k, v as (B, heads, L, head_dim)."""
        if self.layout == "qkv":
            b, n, _ = x.shape
            qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            return qkv[0], qkv[1], qkv[2]
        context = x if context is None else context
        if self.layout == "q_kv":
            b, m, _ = context.shape
            kv = self.kv(context).reshape(b, m, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            return self._split_heads(self.q(x)), kv[0], kv[1]
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None,) * 3
        return (
            self._split_heads(F.linear(x, w_q, b_q)),
            self._split_heads(F.linear(context, w_k, b_k)),
            self._split_heads(F.linear(context, w_v, b_v)),
        )

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        q, k, v = self.project_qkv(x, context)
        out = scaled_dot_product(q, k, v, bias=bias, scale=self.scale)
        out = out.transpose(1, 2).reshape(x.shape[0], x.shape[1], self.dim)
        return self.out_proj(out) if self.layout == "in_proj" else self.proj(out)
