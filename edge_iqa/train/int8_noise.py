"""Training with simulated INT8 rounding noise, so an INT8 build scores single photos as the float
model does (issue 16; docs/training.md, "Training against INT8 noise").

Post-training INT8 rounds the input of every quantized convolution and linear layer to one of 256
levels spread over the tensor's range. The default model amplifies that noise: rounding only the
tensors of backbone blocks 2-6 moves single photos by up to 2.9 MOS points in a PyTorch
simulation, because an IQA network is built to notice fine-grained noise. No export setting
removes this at the same speed; a network trained to ignore the noise does.

``--int8-noise W`` adds ``W * mean |f(x, noisy) - f(x)|`` to the training loss: a second forward
pass in which the input of each layer the target profile quantizes (every Conv2d / Linear outside
its ``keep_fp`` module paths) gets uniform noise of one rounding step, the expected error of
rounding to the tensor's 8-bit grid. Random noise rather than rounding: the deployed build rounds
with other ranges and kernels (a different realisation of the same noise), so the network should
be flat in every such direction, not in one.

The stem-cache recipe never runs the frozen stem (blocks 0-6) during training, so the noise its
quantized layers add is measured once (``propagated_stem_noise``: the stem run with and without
the noise on a few training images) and drawn at the stem output as per-channel Gaussian noise of
that spread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

LEVELS = 255  # steps of an 8-bit grid


def quantized_layers(model: nn.Module, keeps_fp: Callable[[list[str]], bool]) -> dict[str, nn.Module]:
    """{module path: layer} of the Conv2d / Linear modules an INT8 build of ``model`` quantizes: those
    whose path (or an ancestor's) ``keeps_fp`` (a ``TargetProfile.keeps_fp``) does not keep in float."""
    layers = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            parts = name.split(".")
            if not keeps_fp([".".join(parts[:i]) for i in range(1, len(parts) + 1)]):
                layers[name] = module
    return layers


def rounding_noise(x: torch.Tensor) -> torch.Tensor:
    """``x`` plus uniform noise of one step of an 8-bit grid over its range (which includes 0, as
    an asymmetric INT8 range does); the step is a constant for autograd."""
    with torch.no_grad():
        step = (x.amax().clamp_min(0) - x.amin().clamp_max(0)) / LEVELS
    return x + (torch.rand_like(x) - 0.5) * step


@contextmanager
def noisy_inputs(layers: Sequence[nn.Module]) -> Iterator[None]:
    """Within the block, every layer of ``layers`` reads its input with INT8 rounding noise."""
    handles = [layer.register_forward_pre_hook(lambda _layer, args: (rounding_noise(args[0]), *args[1:]))
               for layer in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def propagated_stem_noise(stem: nn.Module, layers: Sequence[nn.Module], images: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per output channel of ``stem``, the spread (std) of what the INT8 noise of its quantized
    ``layers`` does to its output, over ``images`` ((1, 3, H, W) tensors): shape (C, 1, 1)."""
    stem = stem.eval()
    differences = []
    for image in images:
        clean = stem(image)
        with noisy_inputs(layers):
            differences.append((stem(image) - clean).transpose(0, 1).flatten(1))
    return torch.cat(differences, dim=1).std(dim=1).reshape(-1, 1, 1)


def consistency_loss(noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Mean |score with INT8 noise - score without| over the batch (normalised MOS scale)."""
    return (noisy.float() - clean.float()).abs().mean()
