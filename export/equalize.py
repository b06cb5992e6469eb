"""Activation equalization of MobileNetV2's linear bottlenecks, exact in floating point.

INT8 quantizes each activation tensor with one scale (per-tensor), while its channels can span very
different ranges: in the default model the stride-32 residual stream (blocks 14-16, trained by us)
has channels 5x wider than the median one, so the narrow channels get a handful of INT8 levels. The
bottleneck between two inverted residuals is *linear* (projection conv + BatchNorm, then the
residual add and the next block's 1x1 expansion conv, no activation in between), so dividing
channel c of the whole stream by s_c, and multiplying the readers' weights of input channel c by
s_c, computes the same function with channel ranges evened out; with s_c a power of two, bit for
bit. Measured on the default model, issue 16 (docs/quantization.md, "Equalized bottlenecks").

s_c = r_c ** alpha / w_c ** (1 - alpha), rounded to a power of two (or to ``steps_per_octave`` steps
per power of two: finer, no longer bit for bit; below): SmoothQuant's balance between
r_c, the channel's largest |activation| on the calibration photos (over every tensor of the stream),
and w_c, the largest |weight| reading it in the reader convolutions. alpha = 1 evens out the
activations fully and moves their spread into the weights (which INT8 quantizes per output channel,
not per input channel), so a value in between is the better trade (chosen on the validation photos,
not the reporting ones).

A stream is equalized only when every reader can absorb the scale: the next blocks' 1x1 expansion
convs and, where the rest of the model taps the stream, the 1x1 conv that reads the tap (the model
declares it; a tap read by anything else leaves its stream alone).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edge_iqa.errors import ExportError

MAX_LOG2_SCALE = 4


@dataclass(frozen=True)
class Stream:
    """Blocks ``producers`` (the first starts the stream, the others add to it) write the stream;
    the 1x1 convs ``readers`` read it (the next blocks' expansion convs and the taps' readers)."""

    producers: tuple[int, ...]
    readers: tuple[nn.Conv2d, ...]


def _is_inverted_residual(block: nn.Module) -> bool:
    conv = getattr(block, "conv", None)
    return (hasattr(block, "use_res_connect") and isinstance(conv, nn.Sequential) and len(conv) >= 3
            and isinstance(conv[-2], nn.Conv2d) and isinstance(conv[-1], nn.BatchNorm2d))


def _is_pointwise(conv: nn.Module | None) -> bool:
    """A 1x1 conv over all channels: its weight's input-channel axis (dim 1) absorbs the scale."""
    return isinstance(conv, nn.Conv2d) and conv.groups == 1 and conv.kernel_size == (1, 1)


def _expansion_conv(block: nn.Module) -> nn.Conv2d | None:
    """The 1x1 conv that reads the block's input, or None (expand ratio 1: the depthwise conv reads
    it; in MobileNetV2 that is block 1 only, whose input a ReLU6 writes, so it reads no stream)."""
    first = block.conv[0]
    conv = first[0] if isinstance(first, nn.Sequential) else first
    return conv if _is_pointwise(conv) else None


def find_streams(features: nn.Sequential, tap_readers: Mapping[int, nn.Module | None]) -> list[Stream]:
    """The equalizable bottleneck streams of a torchvision-style MobileNetV2 ``features`` sequence.

    ``tap_readers``: for each block whose output the rest of the model reads, the 1x1 conv that reads
    it through per-channel-linear ops only (pooling, nothing else), or None when something else does;
    a stream with such a tap, or with any reader that cannot absorb the scale, is left alone."""
    streams, index = [], 0
    blocks = list(features)
    while index < len(blocks):
        if not _is_inverted_residual(blocks[index]) or blocks[index].use_res_connect:
            index += 1
            continue
        end = index
        while end + 1 < len(blocks) and _is_inverted_residual(blocks[end + 1]) and blocks[end + 1].use_res_connect:
            end += 1
        readers = [_expansion_conv(blocks[i]) if _is_inverted_residual(blocks[i]) else None
                   for i in range(index + 1, min(end + 2, len(blocks)))]
        readers += [tap_readers[i] for i in range(index, end + 1) if i in tap_readers]
        if readers and all(_is_pointwise(reader) for reader in readers):
            streams.append(Stream(tuple(range(index, end + 1)), tuple(readers)))
        index = end + 1
    return streams


def channel_ranges(features: nn.Sequential, streams: list[Stream], batches: Iterable[torch.Tensor],
                   ) -> list[torch.Tensor]:
    """Per stream, each channel's largest |activation| over its tensors and the ``batches``."""
    ranges: dict[int, torch.Tensor] = {}
    owner = {block: i for i, stream in enumerate(streams) for block in stream.producers}

    def record(index: int):
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            peak = output.detach().abs().amax(dim=(0, 2, 3))
            ranges[index] = peak if index not in ranges else torch.maximum(ranges[index], peak)
        return hook

    handles = [features[block].register_forward_hook(record(i)) for block, i in owner.items()]
    try:
        with torch.no_grad():
            for batch in batches:
                features(batch)
    finally:
        for handle in handles:
            handle.remove()
    if len(ranges) != len(streams):
        raise ExportError("activation equalization saw no calibration batch: nothing to measure ranges on")
    return [ranges[i] for i in range(len(streams))]


def equalize_streams(features: nn.Sequential, streams: list[Stream], ranges: list[torch.Tensor],
                     alpha: float, steps_per_octave: int = 1) -> list[dict[str, object]]:
    """Rescale ``features`` in place (see the module docstring); returns one record per stream.

    ``steps_per_octave`` > 1 puts the scales on the finer grid 2^(k / steps_per_octave): the channel
    ranges even out further (powers of two leave each channel up to 2^0.5 from its ideal scale), at
    the price of float rounding (the rescaled network's scores move by float32 last bits, within the
    parity gate's tolerance). A grid still makes the scales, hence the INT8 build, independent of the
    last bits of the measured peaks, except for a peak that sits on a grid boundary."""
    if not 0 < alpha <= 1:
        raise ExportError(f"activation equalization alpha must be in (0, 1], got {alpha}")
    if steps_per_octave < 1:
        raise ExportError(f"activation equalization needs steps_per_octave >= 1, got {steps_per_octave}")
    records = []
    with torch.no_grad():
        for stream, peak in zip(streams, ranges, strict=True):
            readers = stream.readers
            weight_peak = torch.stack([conv.weight.abs().amax(dim=(0, 2, 3)) for conv in readers]).amax(dim=0)
            peak = peak.clamp_min(1e-8)
            ideal = peak ** alpha / weight_peak.clamp_min(1e-8) ** (1 - alpha)
            ideal = ideal / ideal.log().mean().exp()  # geometric mean 1: only the spread matters
            # On a grid: a peak that moves by a rounding error (another thread count) gives the same
            # scales, hence the same INT8 build. With powers of two (steps_per_octave = 1) multiplying a
            # float by 2^k is also exact, so the rescaled network computes bit-identical scores.
            # At most 2^4 either way (the default model uses 2^-2..2^2): a channel that was ~0 on every
            # calibration photo must not be blown up for the photos where it is not.
            steps = torch.round(torch.log2(ideal) * steps_per_octave) / steps_per_octave
            scale = torch.exp2(steps.clamp(-MAX_LOG2_SCALE, MAX_LOG2_SCALE))
            for block in stream.producers:
                bn = features[block].conv[-1]
                bn.weight.div_(scale)
                bn.bias.div_(scale)
            for conv in readers:
                conv.weight.mul_(scale.view(1, -1, 1, 1))
            after = peak / scale
            records.append({"blocks": list(stream.producers), "readers": len(readers),
                            "channels": int(peak.numel()), "steps_per_octave": steps_per_octave,
                            "range_ratio_before": round(float(peak.max() / peak.median()), 3),
                            "range_ratio_after": round(float(after.max() / after.median()), 3)})
    return records


def equalized_copy(model: nn.Module, feeds: Iterable[dict[str, np.ndarray]], alpha: float, input_name: str = "image",
                   steps_per_octave: int = 1) -> tuple[nn.Module, list[dict[str, object]]]:
    """A copy of ``model`` with its bottleneck streams equalized on the ``input_name`` rows of
    ``feeds`` (the export's calibration feeds: one dict of NCHW float32 arrays per batch), and what
    was done; the model itself is not changed. A model that does not declare a MobileNetV2 backbone
    (``equalizable_backbone()``: the ``features`` sequence and its tap readers) comes back as it is,
    with no records."""
    if not hasattr(model, "equalizable_backbone"):
        return model, []
    model = copy.deepcopy(model).eval()
    features, tap_readers = model.equalizable_backbone()
    streams = find_streams(features, tap_readers)
    if not streams:
        return model, []
    batches = (torch.from_numpy(np.ascontiguousarray(feed[input_name])) for feed in feeds)
    return model, equalize_streams(features, streams, channel_ranges(features, streams, batches), alpha,
                                   steps_per_octave)
