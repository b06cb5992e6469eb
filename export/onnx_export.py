"""PyTorch -> ONNX: the dynamo exporter at opset 23, static H,W, dynamic batch, score of shape (B,).

The attention form comes from the target (see :mod:`edge_iqa.export.attention_forms`); the graph
must carry one fused attention per attention call of the PyTorch forward, which is counted by
wrapping :func:`edge_iqa.models.layers.attention.scaled_dot_product` during one eager forward.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from edge_iqa.errors import ExportError
from edge_iqa.export.attention_forms import TORCH_FORM, check_fused_attention, rewrite_attention_to_mha
from edge_iqa.models.layers import attention as attention_module
from edge_iqa.models.layers.attention import attention_form

INPUT_CHANNELS = 3
BATCH_DIM = "batch"
OUTPUT_NAME = "score"


class ScoreWrapper(nn.Module):
    """Named inputs (``image`` [, ``depth``]) and a flat (B,) ``score`` output for any zoo model."""

    def __init__(self, model: nn.Module, input_names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, image: torch.Tensor, depth: torch.Tensor | None = None) -> torch.Tensor:
        out = self.model(image) if depth is None else self.model(image, depth)
        return out.reshape(-1)


@dataclass(frozen=True)
class ExportedGraph:
    path: Path
    input_names: tuple[str, ...]
    input_size: tuple[int, int]
    attention_form: str
    attention_calls: int
    fused_attention_ops: int
    opset: int

    def io_record(self) -> dict[str, object]:
        """The manifest's ``io`` entry (-1 marks the dynamic batch dimension)."""
        h, w = self.input_size
        return {"inputs": [{"name": n, "shape": [-1, INPUT_CHANNELS, h, w], "dtype": "float32"}
                           for n in self.input_names], "output": OUTPUT_NAME}


@contextlib.contextmanager
def _count_attention_calls() -> Iterator[list[int]]:
    """Count calls of ``scaled_dot_product`` wherever a module imported it by name."""
    original = attention_module.scaled_dot_product
    counter = [0]

    def counting(*args: object, **kwargs: object) -> torch.Tensor:
        counter[0] += 1
        return original(*args, **kwargs)

    patched = [m for m in list(sys.modules.values()) if getattr(m, "scaled_dot_product", None) is original]
    for module in patched:
        module.scaled_dot_product = counting
    try:
        yield counter
    finally:
        for module in patched:
            module.scaled_dot_product = original


def count_attention_calls(model: nn.Module, example: tuple[torch.Tensor, ...]) -> int:
    """Attention calls in one forward of ``model`` on ``example``."""
    with torch.inference_mode(), _count_attention_calls() as counter:
        model(*example)
    return counter[0]


def example_inputs(input_names: tuple[str, ...], input_size: tuple[int, int], batch: int = 2,
                   seed: int = 0) -> tuple[torch.Tensor, ...]:
    # Batch 2: torch.export specialises a size-1 dimension to a constant.
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, INPUT_CHANNELS, *input_size, generator=generator) for _ in input_names)


def export_onnx(model: nn.Module, path: Path, *, input_names: tuple[str, ...], input_size: tuple[int, int],
                form: str, opset: int = 23, max_batch: int = 64) -> ExportedGraph:
    """Export ``model`` (eval mode, FP32, CPU) to ``path`` and check its fused attention count."""
    if form not in TORCH_FORM:
        raise ExportError(f"unknown attention form {form!r}; choose one of {', '.join(TORCH_FORM)}")
    if not set(input_names) <= {"image", "depth"} or input_names[0] != "image":
        raise ExportError(f"cannot export a model with inputs {input_names}; supported: image [, depth]")
    wrapper = ScoreWrapper(model.eval().float().cpu(), input_names).eval()
    example = example_inputs(input_names, input_size)
    batch = torch.export.Dim(BATCH_DIM, min=1, max=max(max_batch, 2))
    dynamic_shapes = {name: {0: batch} for name in input_names}
    with attention_form(TORCH_FORM[form]):
        calls = count_attention_calls(wrapper, example)
        try:
            # The exporter prints its progress on stdout; keep the terminal for our own progress.
            with contextlib.redirect_stdout(io.StringIO()):
                torch.onnx.export(wrapper, example, str(path), dynamo=True, opset_version=opset,
                                  input_names=list(input_names), output_names=[OUTPUT_NAME],
                                  dynamic_shapes=dynamic_shapes, external_data=False, verbose=False)
        except Exception as exc:  # the exporter raises many types; all mean "this graph did not export"
            raise ExportError(f"torch.onnx.export failed for attention form {form!r}: {type(exc).__name__}: "
                              f"{str(exc)[:2000]}") from exc
    proto = onnx.load(str(path))
    if form == "ort_mha":
        check_fused_attention(proto, "onnx_attention", calls)
        proto = rewrite_attention_to_mha(proto)
    _name_batch_dim(proto)
    _check_io(proto, input_names, input_size)
    fused = check_fused_attention(proto, form, calls)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return ExportedGraph(path=path, input_names=input_names, input_size=tuple(input_size), attention_form=form,
                         attention_calls=calls, fused_attention_ops=fused, opset=opset)


def _name_batch_dim(proto: onnx.ModelProto) -> None:
    for value in [*proto.graph.input, *proto.graph.output]:
        dim = value.type.tensor_type.shape.dim[0]
        if not dim.HasField("dim_value"):
            dim.dim_param = BATCH_DIM


def _check_io(proto: onnx.ModelProto, input_names: tuple[str, ...], input_size: tuple[int, int]) -> None:
    inputs = [(i.name, [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim]) for i in proto.graph.input]
    expected = [(n, [BATCH_DIM, INPUT_CHANNELS, *input_size]) for n in input_names]
    outputs = [(o.name, [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim]) for o in proto.graph.output]
    if inputs != expected or outputs != [(OUTPUT_NAME, [BATCH_DIM])]:
        raise ExportError(f"exported graph has inputs {inputs} and outputs {outputs}; expected {expected} and "
                          f"[('{OUTPUT_NAME}', ['{BATCH_DIM}'])] (does the model return one score per image?)")
