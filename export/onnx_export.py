"""PyTorch -> ONNX: the dynamo exporter at opset 23, static H,W, dynamic batch, score of shape (B,).

The attention form comes from the target (see :mod:`edge_iqa.export.attention_forms`); the graph
must carry one fused attention per attention call of the PyTorch forward, which is counted by
wrapping :func:`edge_iqa.models.layers.attention.scaled_dot_product` during one eager forward.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import ExportError
from edge_iqa.export.attention_forms import TORCH_FORM, check_fused_attention, rewrite_attention_to_mha
from edge_iqa.models.layers import attention as attention_module
from edge_iqa.models.layers.attention import attention_form
from edge_iqa.runtime.backends.base import PIXEL_DTYPE

INPUT_CHANNELS = 3
BATCH_DIM = "batch"
OUTPUT_NAME = "score"
#: ONNX metadata of a pixel-input graph: the PreprocessSpec (JSON) whose normalisation its first ops do,
#: so that a backend build can rebuild those ops exactly (``quantize_openvino.read_onnx``).
PIXEL_SPEC_KEY = "edge_iqa.pixel_normalisation"


class ScoreWrapper(nn.Module):
    """Named inputs (``image`` [, ``depth``]) and a flat (B,) ``score`` output for any zoo model.

    With ``pixel_spec``, the image input is ``(B, H, W, 3)`` uint8 pixels and the graph's first ops
    are those of :meth:`PreprocessSpec.normalize_pixels`, in its float32 order (``/255``, then
    ``- mean``, ``/ std`` on the pixels' own layout, then NCHW): the runtime and camera firmware
    feed the decoded crop's bytes as they are (no float copy, a quarter of the input bytes, no NCHW
    transpose outside the network), and the graph records the spec (:data:`PIXEL_SPEC_KEY`). The
    zoo model stays the ``model`` attribute, so its module paths (``graph_scopes``) do not change.
    """

    def __init__(self, model: nn.Module, input_names: tuple[str, ...], pixel_spec: PreprocessSpec | None = None
                 ) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names
        self.pixel_input = pixel_spec is not None
        if pixel_spec is not None:
            self.normalize = pixel_spec.normalize
            self.register_buffer("mean", torch.tensor(pixel_spec.mean, dtype=torch.float32))
            self.register_buffer("std", torch.tensor(pixel_spec.std, dtype=torch.float32))

    def forward(self, image: torch.Tensor, depth: torch.Tensor | None = None) -> torch.Tensor:
        if self.pixel_input:
            image = image.to(torch.float32) / 255.0
            if self.normalize:
                image = (image - self.mean) / self.std
            image = image.permute(0, 3, 1, 2)
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
    #: The image input takes uint8 pixels (B, H, W, 3) and the graph normalises them (:class:`ScoreWrapper`).
    pixel_input: bool = False

    def io_record(self) -> dict[str, object]:
        """The manifest's ``io`` entry (-1 marks the dynamic batch dimension)."""
        return {"inputs": [{"name": n, "shape": _input_shape(-1, self.input_size, self.pixel_input and n == "image"),
                            "dtype": PIXEL_DTYPE if self.pixel_input and n == "image" else "float32"}
                           for n in self.input_names], "output": OUTPUT_NAME}


def _input_shape(batch: int | str, size: tuple[int, int], pixels: bool) -> list[int | str]:
    return [batch, *size, INPUT_CHANNELS] if pixels else [batch, INPUT_CHANNELS, *size]


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
                   seed: int = 0, pixel_input: bool = False) -> tuple[torch.Tensor, ...]:
    # Batch 2: torch.export specialises a size-1 dimension to a constant.
    generator = torch.Generator().manual_seed(seed)
    if pixel_input:
        return (torch.randint(0, 256, _input_shape(batch, input_size, True), generator=generator, dtype=torch.uint8),)
    return tuple(torch.randn(batch, INPUT_CHANNELS, *input_size, generator=generator) for _ in input_names)


def export_onnx(model: nn.Module, path: Path, *, input_names: tuple[str, ...], input_size: tuple[int, int],
                form: str, opset: int = 23, max_batch: int = 64,
                pixel_spec: PreprocessSpec | None = None) -> ExportedGraph:
    """Export ``model`` (eval mode, FP32, CPU) to ``path`` and check its fused attention count.
    With ``pixel_spec`` (single-input models), the graph takes uint8 pixels and normalises them
    per that spec (:class:`ScoreWrapper`)."""
    if form not in TORCH_FORM:
        raise ExportError(f"unknown attention form {form!r}; choose one of {', '.join(TORCH_FORM)}")
    if not set(input_names) <= {"image", "depth"} or input_names[0] != "image":
        raise ExportError(f"cannot export a model with inputs {input_names}; supported: image [, depth]")
    pixel_input = pixel_spec is not None
    if pixel_input and input_names != ("image",):
        raise ExportError(f"uint8 pixel input is for single-input models; {input_names} takes float32 rows")
    wrapper = ScoreWrapper(model.eval().float().cpu(), input_names, pixel_spec).eval()
    example = example_inputs(input_names, input_size, pixel_input=pixel_input)
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
    _check_io(proto, input_names, input_size, pixel_input)
    if pixel_spec is not None:
        proto.metadata_props.add(key=PIXEL_SPEC_KEY, value=json.dumps(pixel_spec.to_dict()))
    fused = check_fused_attention(proto, form, calls)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return ExportedGraph(path=path, input_names=input_names, input_size=tuple(input_size), attention_form=form,
                         attention_calls=calls, fused_attention_ops=fused, opset=opset, pixel_input=pixel_input)


def pixel_spec_of(proto: onnx.ModelProto) -> PreprocessSpec | None:
    """The spec a pixel-input graph normalises its pixels by (:data:`PIXEL_SPEC_KEY`); None for a
    float-input graph."""
    value = next((prop.value for prop in proto.metadata_props if prop.key == PIXEL_SPEC_KEY), None)
    return None if value is None else PreprocessSpec.from_dict(json.loads(value))


def _name_batch_dim(proto: onnx.ModelProto) -> None:
    for value in [*proto.graph.input, *proto.graph.output]:
        dim = value.type.tensor_type.shape.dim[0]
        if not dim.HasField("dim_value"):
            dim.dim_param = BATCH_DIM


def _check_io(proto: onnx.ModelProto, input_names: tuple[str, ...], input_size: tuple[int, int],
              pixel_input: bool) -> None:
    inputs = [(i.name, [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim]) for i in proto.graph.input]
    expected = [(n, _input_shape(BATCH_DIM, input_size, pixel_input)) for n in input_names]
    pixel_type = onnx.TensorProto.UINT8 if pixel_input else onnx.TensorProto.FLOAT
    if proto.graph.input[0].type.tensor_type.elem_type != pixel_type:
        found = onnx.TensorProto.DataType.Name(proto.graph.input[0].type.tensor_type.elem_type)
        raise ExportError(f"exported graph's image input is {found}, expected "
                          f"{onnx.TensorProto.DataType.Name(pixel_type)}")
    outputs = [(o.name, [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim]) for o in proto.graph.output]
    if inputs != expected or outputs != [(OUTPUT_NAME, [BATCH_DIM])]:
        raise ExportError(f"exported graph has inputs {inputs} and outputs {outputs}; expected {expected} and "
                          f"[('{OUTPUT_NAME}', ['{BATCH_DIM}'])] (does the model return one score per image?)")
