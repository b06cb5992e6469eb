"""TOPIQ-NR (CFANet, ResNet-50 backbone): top-down cross-scale attention for no-reference IQA.

Chen et al., "TOPIQ: A Top-down Approach from Semantics to Distortions for Image Quality
Assessment", IEEE TIP 2024 (arXiv:2308.03060). Reference code: pyiqa ``pyiqa/archs/topiq_arch.py``
(class ``CFANet`` with ``use_ref=False``); the state_dict names here are pyiqa's, so its published
``cfanet_nr_*_res50`` checkpoints load unchanged (``create_model("topiq_nr", checkpoint=PATH)``).

Architecture, per forward pass (tokens are batch-first ``(B, L, C)`` here; pyiqa is seq-first):

1. ``(x - mean) / std`` inside the model: forward takes the raw ``[0, 1]`` image.
2. A timm ResNet-50 (``features_only``) gives five feature maps (strides 2..32).
3. Each level: gated local pooling (:class:`GatedConv`), then, if it is larger than the last
   level, adaptive average pooling to the last level's grid; a 1x1 conv to ``inter_dim``; a
   learned 2-D position embedding (``h_emb``/``w_emb``, a 32x32 grid bicubically resized to the
   level's grid) is added; one pre-norm self-attention block.
4. Top-down: the semantic (stride-32) tokens query each finer level in turn (cross-attention).
5. Attention pooling (one more self-attention block), mean over tokens, a 3-layer MLP -> score.

Export: the reference resizes the position embedding and pools with shape-dependent ops.
:meth:`TOPIQNR.freeze_input_size` replaces both, for one input size, by exact linear maps (fixed
averaging windows or averaging matrices, and bicubic interpolation matrices), so the graph traced
at that size holds only MatMul/AveragePool. Equality with the dynamic path is tested.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import timm
import torch
import torch.nn.functional as F
from torch import nn

from edge_iqa.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec
from edge_iqa.errors import CheckpointError
from edge_iqa.models.layers.attention import MultiHeadAttention
from edge_iqa.models.registry import register_model

POS_GRID = 32  # the learned position embedding is a POS_GRID x POS_GRID grid (pyiqa's constant)
PAPER = "Chen et al., TOPIQ, IEEE TIP 2024, arXiv:2308.03060"


# --- transformer blocks (pyiqa's pre-norm encoder / decoder layers) -----------------------------
class SelfAttentionBlock(nn.Module):
    """Pre-norm self-attention + MLP block (pyiqa ``TransformerEncoderLayer``)."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(dim, num_heads, layout="in_proj")
        self.linear1 = nn.Linear(dim, mlp_dim)
        self.linear2 = nn.Linear(mlp_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout1(self.self_attn(self.norm1(x)))
        hidden = self.dropout(F.gelu(self.linear1(self.norm2(x))))
        return x + self.dropout2(self.linear2(hidden))


class CrossScaleAttentionBlock(nn.Module):
    """Pre-norm cross-attention + MLP block (pyiqa ``TransformerDecoderLayer``).

    ``self_attn`` exists only so that pyiqa checkpoints load: the reference builds it but its
    forward never calls it, so neither do we (its weights cannot change the output).
    """

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(dim, num_heads, layout="in_proj")  # unused, see above
        self.multihead_attn = MultiHeadAttention(dim, num_heads, layout="in_proj")
        self.linear1 = nn.Linear(dim, mlp_dim)
        self.linear2 = nn.Linear(mlp_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        memory = self.norm2(memory)
        query = query + self.dropout2(self.multihead_attn(self.norm1(query), context=memory))
        hidden = self.dropout(F.gelu(self.linear1(self.norm3(query))))
        return query + self.dropout3(self.linear2(hidden))


class SelfAttentionStack(nn.Module):
    """``layers.N`` naming of pyiqa's ``TransformerEncoder``."""

    def __init__(self, num_layers: int, **block_kwargs: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(SelfAttentionBlock(**block_kwargs) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class CrossScaleAttentionStack(nn.Module):
    """``layers.N`` naming of pyiqa's ``TransformerDecoder``."""

    def __init__(self, num_layers: int, **block_kwargs: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CrossScaleAttentionBlock(**block_kwargs) for _ in range(num_layers))

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            query = layer(query, memory)
        return query


class GatedConv(nn.Module):
    """Gated local pooling of one NR level: GELU(x1) * sigmoid-gate(x2), split from a 1x1 conv."""

    def __init__(self, dim: int, hidden: int = 64, kernel_size: int = 3) -> None:
        super().__init__()
        self.splitconv = nn.Conv2d(dim, dim * 2, 1)
        self.act = nn.GELU()
        self.weight_blk = nn.Sequential(
            nn.Conv2d(dim, hidden, 1),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, kernel_size, padding=kernel_size // 2),
            nn.GELU(),
            nn.Conv2d(hidden, 1, kernel_size, padding=kernel_size // 2),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, gate_input = self.splitconv(x).chunk(2, dim=1)
        return self.act(features) * self.weight_blk(gate_input)


# --- fixed-size replacements of the shape-dependent ops -----------------------------------------
def adaptive_pool_matrix(in_size: int, out_size: int) -> torch.Tensor:
    """(out, in) matrix M with ``M @ v`` == ``adaptive_avg_pool1d(v, out)`` (PyTorch's bins:
    ``[floor(i*in/out), ceil((i+1)*in/out))``)."""
    matrix = torch.zeros(out_size, in_size)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -((-(i + 1) * in_size) // out_size)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def bicubic_matrix(in_size: int, out_size: int) -> torch.Tensor:
    """(out, in) matrix of PyTorch's bicubic resize along one axis (align_corners=False).

    Obtained by resizing the identity with ``F.interpolate`` itself, so the cubic coefficients,
    the border clamping and the scale are PyTorch's own. A width-1 axis resized to width 1 is the
    identity exactly (cubic weights (0, 1, 0, 0)), so the columns carry only the H weights.
    """
    basis = torch.eye(in_size).reshape(1, in_size, in_size, 1)
    resized = F.interpolate(basis, size=(out_size, 1), mode="bicubic", align_corners=False)
    return resized[0, :, :, 0].T.contiguous()


class FrozenLevel(nn.Module):
    """Precomputed, export-friendly ops of one pyramid level for one input size.

    Buffers are non-persistent: freezing never changes the state_dict.
    """

    def __init__(self, in_hw: tuple[int, int], target_hw: tuple[int, int], pos_grid: int) -> None:
        super().__init__()
        (h, w), (th, tw) = in_hw, target_hw
        self.in_hw = in_hw
        self.pool_kernel: tuple[int, int] | None = None
        self.use_pool_matrices = False
        if h > th and w > tw:  # the reference's condition for pooling a level
            if h % th == 0 and w % tw == 0:
                # adaptive pooling with an integral ratio has equal, disjoint bins: a plain avg-pool
                self.pool_kernel = (h // th, w // tw)
            else:
                self.use_pool_matrices = True
                self.register_buffer("pool_h", adaptive_pool_matrix(h, th), persistent=False)
                self.register_buffer("pool_w", adaptive_pool_matrix(w, tw), persistent=False)
            h, w = th, tw
        self.out_hw = (h, w)
        self.register_buffer("interp_h", bicubic_matrix(pos_grid, h), persistent=False)
        self.register_buffer("interp_w", bicubic_matrix(pos_grid, w), persistent=False)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_kernel is not None:
            return F.avg_pool2d(x, self.pool_kernel, self.pool_kernel)
        if self.use_pool_matrices:
            return self.pool_h @ x @ self.pool_w.T
        return x

    def position_embedding(self, pos_grid: torch.Tensor) -> torch.Tensor:
        """(1, C, G, G) grid -> (1, C, h, w), the same bilinear map as the bicubic resize."""
        return self.interp_h @ pos_grid @ self.interp_w.T


# --- the network ---------------------------------------------------------------------------------
class TOPIQNR(nn.Module):
    """TOPIQ no-reference network (pyiqa ``CFANet(use_ref=False)``), ResNet-50 semantics.

    ``forward(x)``: raw ``[0, 1]`` RGB ``(B, 3, H, W)`` of any size -> ``(B, 1)`` quality score.

    Args:
        inter_dim: token width (pyiqa default 256).
        num_heads: attention heads (4).
        num_attn_layers: blocks per self-/cross-attention stack (1).
        dropout: dropout probability used in training (0.1); eval mode disables it. The attention
            weights' dropout of ``nn.MultiheadAttention`` is not reproduced (shared attention
            layer has none), so training differs slightly from pyiqa; inference is identical.
        backbone_weights: optional path to an ImageNet ResNet-50 state dict (timm/torchvision
            names; ``fc.*`` ignored) to initialise the backbone before training.
    """

    def __init__(
        self,
        inter_dim: int = 256,
        num_heads: int = 4,
        num_attn_layers: int = 1,
        dropout: float = 0.1,
        backbone_weights: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        self.semantic_model = timm.create_model("resnet50", pretrained=False, features_only=True)
        if backbone_weights is not None:
            self._load_backbone(backbone_weights)
        feature_dims: Sequence[int] = self.semantic_model.feature_info.channels()
        self._freeze_backbone_batchnorm()

        block_kwargs = {"dim": inter_dim, "num_heads": num_heads,
                        "mlp_dim": min(4 * inter_dim, 2048), "dropout": dropout}
        self.weight_pool = nn.ModuleList(GatedConv(dim) for dim in feature_dims)
        self.dim_reduce = nn.ModuleList(
            nn.Sequential(nn.Conv2d(dim, inter_dim, 1), nn.GELU()) for dim in feature_dims
        )
        self.sa_attn_blks = nn.ModuleList(
            SelfAttentionStack(num_attn_layers, **block_kwargs) for _ in feature_dims
        )
        self.attn_blks = nn.ModuleList(
            CrossScaleAttentionStack(num_attn_layers, **block_kwargs) for _ in feature_dims[1:]
        )
        self.attn_pool = SelfAttentionBlock(**block_kwargs)
        self.score_linear = nn.Sequential(
            nn.LayerNorm(inter_dim), nn.Linear(inter_dim, inter_dim), nn.GELU(),
            nn.LayerNorm(inter_dim), nn.Linear(inter_dim, inter_dim), nn.GELU(),
            nn.Linear(inter_dim, 1),
        )
        self.h_emb = nn.Parameter(torch.empty(1, inter_dim // 2, POS_GRID, 1))
        self.w_emb = nn.Parameter(torch.empty(1, inter_dim // 2, 1, POS_GRID))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.frozen_levels: nn.ModuleList | None = None
        self.frozen_size: tuple[int, int] | None = None
        self._init_weights()

    # --- construction helpers ------------------------------------------------------------------
    def _init_weights(self) -> None:
        """pyiqa's initialisation (matters only when training from scratch)."""
        nn.init.trunc_normal_(self.h_emb, std=0.02)
        nn.init.trunc_normal_(self.w_emb, std=0.02)
        for part in (self.dim_reduce, self.sa_attn_blks, self.attn_blks, self.attn_pool):
            for module in part.modules():
                if isinstance(module, nn.Linear):
                    nn.init.kaiming_normal_(module.weight)
                    nn.init.zeros_(module.bias)

    def _load_backbone(self, path: str | os.PathLike) -> None:
        from edge_iqa.models.pretrained import load_backbone_state_dict

        state = load_backbone_state_dict("resnet50.pth", user_path=path)
        own = self.semantic_model.state_dict()
        missing = sorted(set(own) - set(state))
        if missing:
            raise CheckpointError(
                f"{path}: not an ImageNet ResNet-50 state dict (missing {len(missing)} keys, e.g. "
                f"{missing[:3]}); pass a timm or torchvision resnet50 file"
            )
        self.semantic_model.load_state_dict({k: state[k] for k in own}, strict=True)

    def _freeze_backbone_batchnorm(self) -> None:
        """pyiqa's ``fix_bn``: backbone BatchNorm keeps its ImageNet statistics and affine terms."""
        for module in self.semantic_model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True) -> TOPIQNR:
        super().train(mode)
        self._freeze_backbone_batchnorm()
        return self

    # --- fixed input size (export) ---------------------------------------------------------------
    @torch.no_grad()
    def feature_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Spatial sizes of the backbone's five levels for an input of that size."""
        probe = torch.zeros(1, 3, height, width, device=self.h_emb.device, dtype=self.h_emb.dtype)
        return [tuple(f.shape[-2:]) for f in self.semantic_model(probe)]

    def freeze_input_size(self, height: int, width: int) -> TOPIQNR:
        """Precompute the shape-dependent ops for ``height x width`` inputs (call before export).

        Replaces, per level, ``adaptive_avg_pool2d`` by an avg-pool with a fixed kernel (integral
        ratio) or by exact averaging matrices, and the bicubic resize of the position embedding by
        its interpolation matrices (applied to the live ``h_emb``/``w_emb``, so loading weights
        afterwards is fine). The state_dict is unchanged. Afterwards ``forward`` accepts only that
        size; :meth:`unfreeze_input_size` restores the any-size reference path.
        """
        sizes = self.feature_sizes(height, width)
        target = sizes[-1]
        levels = [FrozenLevel(size, target, POS_GRID) for size in sizes]
        self.frozen_levels = nn.ModuleList(levels).to(device=self.h_emb.device, dtype=self.h_emb.dtype)
        self.frozen_size = (int(height), int(width))
        return self

    def unfreeze_input_size(self) -> TOPIQNR:
        self.frozen_levels, self.frozen_size = None, None
        return self

    # --- forward ---------------------------------------------------------------------------------
    def position_grid(self) -> torch.Tensor:
        """(1, inter_dim, 32, 32): h_emb tiled along W stacked on w_emb tiled along H."""
        return torch.cat(
            (self.h_emb.expand(-1, -1, -1, self.w_emb.shape[3]), self.w_emb.expand(-1, -1, self.h_emb.shape[2], -1)),
            dim=1,
        )

    def _pool_and_embed(
        self, level: int, feat: torch.Tensor, target_hw: tuple[int, int], pos_grid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool a level to the last level's grid if larger; its position embedding (1, C, h, w)."""
        if self.frozen_levels is not None:
            frozen = self.frozen_levels[level]
            return frozen.pool(feat), frozen.position_embedding(pos_grid)
        if feat.shape[2] > target_hw[0] and feat.shape[3] > target_hw[1]:
            feat = F.adaptive_avg_pool2d(feat, target_hw)
        pos = F.interpolate(pos_grid, size=feat.shape[2:], mode="bicubic", align_corners=False)
        return feat, pos

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen_size is not None and tuple(x.shape[-2:]) != self.frozen_size:
            raise ValueError(
                f"this TOPIQ model was frozen for {self.frozen_size[0]}x{self.frozen_size[1]} inputs, got "
                f"{x.shape[-2]}x{x.shape[-1]}; call unfreeze_input_size() to score other sizes"
            )
        features = self.semantic_model((x - self.mean) / self.std)
        target_hw = tuple(features[-1].shape[-2:])
        pos_grid = self.position_grid()

        tokens = []  # coarse (semantic) level first
        for level in reversed(range(len(features))):
            feat = self.weight_pool[level](features[level])
            feat, pos = self._pool_and_embed(level, feat, target_hw, pos_grid)
            feat = self.dim_reduce[level](feat)
            level_tokens = (feat + pos).flatten(2).transpose(1, 2)  # (B, h*w, C)
            tokens.append(self.sa_attn_blks[level](level_tokens))

        query = tokens[0]
        for stack, memory in zip(self.attn_blks, tokens[1:], strict=True):
            query = stack(query, memory)
        pooled = self.attn_pool(query).mean(dim=1)
        return self.score_linear(pooled)


# --- registry ------------------------------------------------------------------------------------
def _spec(size: tuple[int, int]) -> PreprocessSpec:
    # TOPIQ normalises inside forward: the spec only resizes, crops and scales to [0, 1].
    return PreprocessSpec(input_size=size, resize="shorter_side", crop="center",
                          mean=IMAGENET_MEAN, std=IMAGENET_STD, normalize=False, interpolation="bilinear")


# ``extra["fixed_size_hook"]``: the method export calls as ``model.<hook>(height, width)`` before tracing
# at a fixed input size, so the graph has no shape-dependent Resize / adaptive pooling.
_COMMON = {"family": "seed", "output_range": (0.0, 1.0), "paper": PAPER,
           "extra": {"fixed_size_hook": "freeze_input_size"}}


# One architecture, three deployment sizes: the builder is the class itself.
_VARIANTS = {
    "topiq_nr": ((384, 512), "TOPIQ-NR (CFANet, ResNet-50), 384x512 (KonIQ 512x384 landscape); pyiqa "
                             "cfanet_nr_*_res50 checkpoints via checkpoint="),
    "topiq_nr_384": ((384, 384), "TOPIQ-NR (CFANet, ResNet-50), shorter side 384 + centre crop (pyiqa "
                                 "test_img_size=384, FLIVE)"),
    "topiq_nr_224": ((224, 224), "TOPIQ-NR (CFANet, ResNet-50), 224x224 edge deployment size"),
}
for _name, (_size, _description) in _VARIANTS.items():
    register_model(_name, preprocess=_spec(_size), description=_description, **_COMMON)(TOPIQNR)
