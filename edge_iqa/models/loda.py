"""LoDa: local-distortion-aware adaptation of a frozen ViT for NR-IQA (Xu et al., CVPR 2024).

A frozen ViT-B/16 (timm ``vit_base_patch16_224`` names) and a frozen ResNet-50 (timm
``features_only``, stages 1-4) see the same 224x224 crop. The only trainable part is the
``learner``:

* ``conv[i]`` turns ResNet stage ``i`` (256/512/1024/2048 ch) into a 7x7 grid of 64-d tokens
  (1x1 conv -> GELU -> 3x3 conv -> adaptive average pool); the four grids are concatenated into
  4 x 49 = 196 "local distortion" tokens.
* Before every one of the 12 ViT blocks, the token sequence is injected with distortion
  information: ``down_proj[i]`` (768 -> 64 MLP), a residual cross-attention from those 64-d
  tokens to the CNN tokens (``cross_attn[i]``, 4 heads, no q/kv bias), ``up_proj[i]`` (64 -> 768
  MLP), scaled per channel by ``scale_factor[i]`` and added to the sequence.
* The final CLS token (after ``norm``) is scored by a ``NormedLinear`` head: the cosine between the
  feature and one learned direction, so the output is in [-1, 1].

The state_dict layout is exactly the authors' (``NeosXu/LoDa`` ``src/model/loda.py``), so their
checkpoint format converts without renaming (:func:`load_reference_training_state`). Every
attention (the ViT's self-attention and the learner's cross-attention) goes through
:func:`edge_iqa.models.layers.attention.scaled_dot_product`.

Test protocol: the authors average the scores of 15 random 224x224 crops of the image at its
stored resolution (no resize); we register the deterministic equivalent, a 3x5 grid of crops
(see ``docs/models/loda.md``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import timm
import torch
import torch.nn.functional as F
from torch import nn

from edge_iqa.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec
from edge_iqa.errors import CheckpointError
from edge_iqa.models.checkpoint import load_state_dict_file
from edge_iqa.models.layers.attention import MultiHeadAttention
from edge_iqa.models.layers.transformer import Mlp, PatchEmbed, ViTBlock
from edge_iqa.models.registry import register_model

__all__ = ["LoDa", "NormedLinear", "LoDaLearner", "load_reference_training_state"]

# config/model/loda.yaml of the reference
VIT_IMG_SIZE = 224
VIT_PATCH_SIZE = 16
VIT_EMBED_DIM = 768
VIT_DEPTH = 12
VIT_NUM_HEADS = 12
CNN_NAME = "resnet50"
CNN_OUT_INDICES = (1, 2, 3, 4)
CNN_CHANNELS = (256, 512, 1024, 2048)
LATENT_DIM = 64
GRID_SIZE = 7
CROSS_ATTN_HEADS = 4
HEAD_DROPOUT = 0.1


# --- the learner ---------------------------------------------------------------------------------------
class NormedLinear(nn.Module):
    """Cosine classifier: ``normalize(x) @ normalize(weight, dim=0)``.

    The weight is stored (in_features, out_features), the transpose of ``nn.Linear``, as in the
    reference checkpoints.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        with torch.no_grad():  # unit-norm columns, as the reference's uniform_().renorm_().mul_()
            self.weight.uniform_(-1.0, 1.0)
            self.weight.div_(self.weight.norm(dim=0, keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=0)


def _cnn_tokenizer(in_channels: int) -> nn.Sequential:
    """One ResNet stage -> (B, 64, 7, 7). Indices 0 and 2 carry the reference's parameter names."""
    return nn.Sequential(
        nn.Conv2d(in_channels, LATENT_DIM, kernel_size=1, bias=True),
        nn.GELU(),
        nn.Conv2d(LATENT_DIM, LATENT_DIM, kernel_size=3, padding=1, bias=False),
        nn.AdaptiveAvgPool2d(GRID_SIZE),
    )


class LoDaLearner(nn.Module):
    """The trainable part: CNN tokenizers, per-block injectors, scale factors and the cosine head."""

    def __init__(self, embed_dim: int = VIT_EMBED_DIM, depth: int = VIT_DEPTH, num_outputs: int = 1) -> None:
        super().__init__()
        self.conv = nn.ModuleList(_cnn_tokenizer(c) for c in CNN_CHANNELS)
        self.down_proj = nn.ModuleList(Mlp(embed_dim, LATENT_DIM, LATENT_DIM) for _ in range(depth))
        self.cross_attn = nn.ModuleList(
            MultiHeadAttention(LATENT_DIM, CROSS_ATTN_HEADS, layout="q_kv", qkv_bias=False, proj_bias=True)
            for _ in range(depth)
        )
        self.up_proj = nn.ModuleList(Mlp(LATENT_DIM, embed_dim, embed_dim) for _ in range(depth))
        self.scale_factor = nn.Parameter(torch.empty(depth, embed_dim))
        nn.init.trunc_normal_(self.scale_factor, std=0.02)
        self.head = NormedLinear(embed_dim, num_outputs)

    def cnn_tokens(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """ResNet stages 1-4 -> (B, 4*49, 64) tokens, stage-major, row-major within a stage."""
        tokens = [conv(f).flatten(2).transpose(1, 2) for conv, f in zip(self.conv, features, strict=True)]
        return torch.cat(tokens, dim=1)

    def inject(self, i: int, x: torch.Tensor, cnn_tokens: torch.Tensor) -> torch.Tensor:
        """The distortion-aware residual added to the ViT sequence before block ``i``."""
        x_down = self.down_proj[i](x)
        x_down = x_down + self.cross_attn[i](x_down, context=cnn_tokens)
        return self.up_proj[i](x_down) * self.scale_factor[i]

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return self.head(feature)


# --- the model ------------------------------------------------------------------------------------------
class LoDa(nn.Module):
    """LoDa with the reference's top-level names (it subclasses timm's VisionTransformer there).

    ``forward(x)``: ImageNet-normalised (B, 3, 224, 224) -> (B, 1) cosine score in [-1, 1].
    Higher is better after training (the reference regresses MOS normalised to [0, 1]).
    """

    def __init__(
        self,
        vit_weights: str | os.PathLike | None = None,
        cnn_weights: str | os.PathLike | None = None,
        freeze_backbones: bool = True,
    ) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(3, VIT_EMBED_DIM, VIT_PATCH_SIZE)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, VIT_EMBED_DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, (VIT_IMG_SIZE // VIT_PATCH_SIZE) ** 2 + 1, VIT_EMBED_DIM))
        self.blocks = nn.ModuleList(ViTBlock(VIT_EMBED_DIM, VIT_NUM_HEADS) for _ in range(VIT_DEPTH))
        self.norm = nn.LayerNorm(VIT_EMBED_DIM, eps=1e-6)
        self.learner = LoDaLearner(VIT_EMBED_DIM, VIT_DEPTH)
        self.dropout = nn.Dropout(HEAD_DROPOUT)
        self.feature_model = timm.create_model(
            CNN_NAME, pretrained=False, features_only=True, out_indices=CNN_OUT_INDICES
        )
        self._init_vit()
        if vit_weights is not None:
            self.load_vit_weights(vit_weights)
        if cnn_weights is not None:
            self.load_cnn_weights(cnn_weights)
        if freeze_backbones:
            self.freeze_backbones()

    def _init_vit(self) -> None:
        # timm's ViT init; irrelevant once ImageNet weights are loaded, but keeps random builds sane.
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    # --- backbones ----------------------------------------------------------------------------------
    def freeze_backbones(self) -> None:
        """As the reference's ``freeze()``: only the learner trains. The ResNet's BatchNorm running
        statistics still update in ``train()`` mode, which is why the reference saves them."""
        for param in self.parameters():
            param.requires_grad = False
        for param in self.learner.parameters():
            param.requires_grad = True

    def vit_state_dict_keys(self) -> list[str]:
        return [k for k in self.state_dict() if not k.startswith(("learner.", "feature_model."))]

    def load_vit_weights(self, path: str | os.PathLike) -> None:
        """ImageNet ViT-B/16 weights with timm names (the reference uses
        ``vit_base_patch16_224.augreg2_in21k_ft_in1k``); the classifier head is dropped."""
        state = {k: v for k, v in load_state_dict_file(path).items() if not k.startswith("head.")}
        own = set(self.vit_state_dict_keys())
        missing, unexpected = sorted(own - set(state)), sorted(set(state) - own)
        if missing or unexpected:
            raise CheckpointError(
                f"{path}: not a timm vit_base_patch16_224 state dict "
                f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
            )
        self.load_state_dict(state, strict=False)

    def load_cnn_weights(self, path: str | os.PathLike) -> None:
        """ImageNet ResNet-50 weights (timm or torchvision names); ``fc`` is dropped."""
        state = {k: v for k, v in load_state_dict_file(path).items() if not k.startswith("fc.")}
        try:
            self.feature_model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: not a ResNet-50 state dict ({str(exc).splitlines()[0]})") from exc

    # --- forward --------------------------------------------------------------------------------------
    def distortion_tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.learner.cnn_tokens(self.feature_model(x))

    def forward_features(self, x: torch.Tensor, cnn_tokens: torch.Tensor) -> torch.Tensor:
        """Final CLS token (B, 768) of the ViT with the learner's injections."""
        if x.shape[-2:] != (VIT_IMG_SIZE, VIT_IMG_SIZE):
            raise ValueError(f"LoDa takes {VIT_IMG_SIZE}x{VIT_IMG_SIZE} crops, got {tuple(x.shape[-2:])}")
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        for i, block in enumerate(self.blocks):
            x = block(x + self.learner.inject(i, x, cnn_tokens))
        return self.norm(x)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cnn_tokens = self.distortion_tokens(x)
        feature = self.forward_features(x, cnn_tokens)
        return self.learner(self.dropout(feature))


def load_reference_training_state(
    model: LoDa, state: Mapping[str, Mapping[str, torch.Tensor]] | str | os.PathLike
) -> None:
    """Load a checkpoint saved by the reference's ``obtain_state_to_save()``:
    ``{"learner": learner.state_dict(), "bn_buffer": ResNet BatchNorm buffers}``.

    The frozen backbones are not in such a file: load ImageNet weights first
    (``LoDa(vit_weights=..., cnn_weights=...)``).
    """
    if not isinstance(state, Mapping):
        try:
            state = torch.load(state, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - unpickling errors of any kind mean "refused"
            raise CheckpointError(f"{state}: refused or unreadable as a LoDa checkpoint ({exc})") from exc
    if not isinstance(state, Mapping) or "learner" not in state or "bn_buffer" not in state:
        raise CheckpointError("a LoDa reference checkpoint is a dict with 'learner' and 'bn_buffer' entries")
    learner = {k.removeprefix("module."): v for k, v in state["learner"].items()}
    try:
        model.learner.load_state_dict(learner, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"LoDa learner weights do not fit: {str(exc).splitlines()[0]}") from exc
    own_buffers = dict(model.feature_model.named_buffers())
    extra = sorted(set(state["bn_buffer"]) - set(own_buffers))
    if extra:
        raise CheckpointError(f"LoDa bn_buffer has entries the ResNet-50 lacks: {extra[:5]}")
    with torch.no_grad():
        for name, value in state["bn_buffer"].items():
            own_buffers[name].copy_(value)


@register_model(
    "loda",
    preprocess=PreprocessSpec(
        input_size=(224, 224),
        resize="none",
        crop="grid",
        grid=(3, 5),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    ),
    description="LoDa (CVPR 2024): frozen ViT-B/16 + ResNet-50 with local distortion injection; 15 crops",
    output_range=(-1.0, 1.0),
    family="seed",
    paper="Xu et al., Boosting Image Quality Assessment through Efficient Transformer Adaptation "
    "with Local Feature Enhancement, CVPR 2024 (https://github.com/NeosXu/LoDa)",
)
def loda(
    vit_weights: str | os.PathLike | None = None,
    cnn_weights: str | os.PathLike | None = None,
    freeze_backbones: bool = True,
) -> LoDa:
    return LoDa(vit_weights=vit_weights, cnn_weights=cnn_weights, freeze_backbones=freeze_backbones)
