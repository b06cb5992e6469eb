"""A Q/DQ ONNX graph (ONNX Runtime's INT8 network) run by PyTorch, with its weights trainable on
their integer grid: what :func:`edge_iqa.export.qat.fine_tune_graph` trains.

The graph is executed node by node with the ONNX operators' own semantics, so the network that is
trained is the one ONNX Runtime runs: the same quantizers at the same places with the same scales
and zero points (the scales fixed unless ``train_scales``). What trains:

- every integer initializer read only by ``DequantizeLinear`` (the INT8 weights, the INT32 biases):
  held as its dequantized float value and rounded back to its own grid (scale, zero point, integer
  range) in every forward pass, with a straight-through gradient;
- the float weights and biases of the nodes kept in floating point (Conv, Gemm, MatMul,
  LayerNormalization, Add operands); never the pixel front's constants (Sub / Div) or shape tensors;
- with ``train_scales`` only, the activations' scales (each shared by a QuantizeLinear and its
  DequantizeLinears), as LSQ trains them: the straight-through rounding gives each scale the gradient
  ``round(x / s) - x / s`` inside the range and the range's end outside it. Zero points stay.
  ONNX Runtime's fused kernels read an INT32 bias as quantized with the input's scale times the
  weight's, so :meth:`QDQNetwork.write_weights` re-expresses those biases on their new grid.
  Without it the quantizers' scales stay as calibrated.

``QuantizeLinear`` rounds with a straight-through gradient as well (half to even, as ONNX does),
so an activation's rounding is seen in the forward pass and passed through in the backward one.
:meth:`QDQNetwork.write_weights` puts the trained integers and floats back into the graph, which
keeps its structure: ONNX Runtime fuses and runs it exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

from edge_iqa.errors import ExportError

#: Integer ranges of the quantized types ONNX Runtime's quantizer writes.
INTEGER_RANGE = {onnx.TensorProto.INT8: (-128, 127), onnx.TensorProto.UINT8: (0, 255),
                 onnx.TensorProto.INT32: (-(2**31), 2**31 - 1)}
#: With ``train_scales``, an activation scale is ``start * exp(SCALE_STEP * t)`` with ``t`` trained: Adam
#: moves ``t`` by about the learning rate per step, so the scales move SCALE_STEP times as far (relatively)
#: as the weights do.
SCALE_STEP = 100.0
#: Ops whose float operands (initializers) train: the weights and biases of what stays in float.
TRAINABLE_FLOAT_USERS = frozenset({"Conv", "Gemm", "MatMul", "LayerNormalization", "Add"})


def _round(x: torch.Tensor) -> torch.Tensor:
    """Round half to even in the forward pass, identity in the backward pass (straight through)."""
    return x + (torch.round(x) - x).detach()


def _per_axis(scale: torch.Tensor, rank: int, axis: int) -> torch.Tensor:
    """``scale`` (or a zero point) shaped to broadcast along ``axis`` of a rank-``rank`` tensor."""
    if scale.numel() == 1:
        return scale.reshape(())
    shape = [1] * rank
    shape[axis % rank if rank > 1 else 0] = -1
    return scale.reshape(shape)


def dequantize_operands(dequantize: onnx.NodeProto, initializers: dict[str, onnx.TensorProto],
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(integers, scale, zero point) of a ``DequantizeLinear`` that reads an integer initializer, as
    float32 arrays whose scale and zero point broadcast along the node's ``axis``: what it computes is
    ``(integers - zero) * scale``. Shared by the runner and the give-back that dequantizes a block's
    weights (:func:`edge_iqa.export.accuracy_control.strip_qdq`)."""
    integers = numpy_helper.to_array(initializers[dequantize.input[0]]).astype(np.float32)
    scale = numpy_helper.to_array(initializers[dequantize.input[1]]).astype(np.float32)
    zero = (numpy_helper.to_array(initializers[dequantize.input[2]]).astype(np.float32)
            if len(dequantize.input) > 2 and dequantize.input[2] else np.zeros_like(scale))
    axis = _attributes(dequantize).get("axis", 1)
    scale = _per_axis(torch.from_numpy(scale), integers.ndim, axis).numpy()
    zero = _per_axis(torch.from_numpy(zero), integers.ndim, axis).numpy()
    return integers, scale, zero


class QDQNetwork(torch.nn.Module):
    """``model`` (a Q/DQ ONNX graph) as a module; ``forward(*inputs)`` returns the graph's outputs.
    ``train_scales``: the activations' scales are parameters too (``log_scales``; see the module doc)."""

    def __init__(self, model: onnx.ModelProto, train_scales: bool = False) -> None:
        super().__init__()
        graph = model.graph
        unknown = sorted({n.op_type for n in graph.node
                          if n.op_type not in _OPS or n.domain not in _DOMAINS[n.op_type]})
        unknown += sorted({f"{n.op_type} with {len(n.output)} outputs" for n in graph.node if len(n.output) > 1})
        if unknown:
            raise ExportError(f"fine-tuning runs the INT8 graph in PyTorch and does not know the op(s) "
                              f"{', '.join(unknown)}; set [quantization] qat_steps = 0 (or --qat-steps 0)")
        initializers = {t.name: t for t in graph.initializer}
        # Each node as (op, its attributes, input names, output name), read once: forward runs every step.
        self._steps = [(_OPS[n.op_type], _attributes(n), tuple(n.input), n.output[0]) for n in graph.node]
        readers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
        for node in graph.node:
            for slot, name in enumerate(node.input):
                readers.setdefault(name, []).append((node, slot))
        self.weights = torch.nn.ParameterDict()
        self.log_scales = torch.nn.ParameterDict()
        self._parameter: dict[str, str] = {}  # initializer -> key in ``weights``
        self._grid: dict[str, tuple[torch.Tensor, torch.Tensor, int, int]] = {}  # scale, zero point, low, high
        self._constants: dict[str, torch.Tensor] = {}
        self._scales: dict[str, tuple[torch.Tensor, str]] = {}  # activation scale -> (its start, key)
        for name, tensor in initializers.items():
            value = numpy_helper.to_array(tensor)
            users = readers.get(name, [])
            if train_scales and value.dtype == np.float32 and value.size == 1 and _is_activation_scale(users):
                key = f"s{len(self.log_scales)}"
                self.log_scales[key] = torch.nn.Parameter(torch.zeros(()))
                self._scales[name] = (torch.from_numpy(value.copy()).reshape(()), key)
            elif tensor.data_type in INTEGER_RANGE and users and all(
                    n.op_type == "DequantizeLinear" and slot == 0 for n, slot in users):
                integers, scale, zero = map(torch.from_numpy, dequantize_operands(users[0][0], initializers))
                self._add(name, (integers - zero) * scale)
                self._grid[name] = (scale, zero, *INTEGER_RANGE[tensor.data_type])
            elif value.dtype == np.float32 and value.size > 1 and users and all(
                    n.op_type in TRAINABLE_FLOAT_USERS for n, _ in users):
                self._add(name, torch.from_numpy(value.copy()))
            else:
                self._constants[name] = torch.from_numpy(np.array(value))
        self._inputs = [i.name for i in graph.input if i.name not in initializers]
        self._outputs = [o.name for o in graph.output]

    def _add(self, name: str, value: torch.Tensor) -> None:
        key = f"w{len(self.weights)}"
        self.weights[key] = torch.nn.Parameter(value)
        self._parameter[name] = key

    def scale_record(self) -> dict[str, Any]:
        """The manifest's account of the activation scales: fixed, or trained and how far they moved."""
        if not self._scales:
            return {"mode": "fixed"}
        with torch.no_grad():
            ratios = np.array([float(torch.exp(SCALE_STEP * self.log_scales[key])) for _, key in self._scales.values()])
        return {"mode": "trained", "scales": len(ratios), "smallest_ratio": round(float(ratios.min()), 4),
                "largest_ratio": round(float(ratios.max()), 4)}

    def _value(self, name: str) -> torch.Tensor:
        if name in self._scales:
            start, key = self._scales[name]
            return (start * torch.exp(SCALE_STEP * self.log_scales[key])).reshape(start.shape)
        weight = self.weights[self._parameter[name]]
        if name not in self._grid:
            return weight
        scale, zero, low, high = self._grid[name]
        return torch.clamp(_round(weight / scale) + zero, low, high)  # the integers DequantizeLinear reads

    def write_weights(self, model: onnx.ModelProto) -> None:
        """The trained values into ``model``'s initializers, in place (integers as their own type)."""
        with torch.no_grad():
            values = {name: self._value(name).numpy() for name in [*self._parameter, *self._scales]}
            values.update(self._rescaled_biases(model))
            for tensor in model.graph.initializer:
                if tensor.name in values:
                    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
                    shaped = values[tensor.name].reshape(tuple(tensor.dims)).astype(dtype)
                    tensor.CopyFrom(numpy_helper.from_array(shaped, tensor.name))

    def _rescaled_biases(self, model: onnx.ModelProto) -> dict[str, np.ndarray]:
        """The INT32 biases of the integer kernels whose input scale was trained, on their new grid.
        ONNX Runtime's fused kernels (QLinearConv, ...) read an INT32 bias as quantized with the input's
        scale times the weight's: the bias keeps its trained float value, re-expressed on that grid."""
        if not self._scales:
            return {}
        producer = {node.output[0]: node for node in model.graph.node}
        initializers = {t.name: t for t in model.graph.initializer}
        rescaled: dict[str, np.ndarray] = {}
        for node in model.graph.node:
            dequantized = [producer.get(name) for name in node.input[:3]]
            if len(dequantized) < 3 or any(d is None or d.op_type != "DequantizeLinear" for d in dequantized):
                continue
            activation, weight, bias = dequantized
            if bias.input[0] not in self._grid or activation.input[1] not in self._scales:
                continue
            value = self._value(bias.input[0])
            old_scale, zero, low, high = self._grid[bias.input[0]]
            # In float64: an INT32 bias runs to tens of thousands of steps, past float32's exact rounding.
            float_bias = (value.double() - zero.double()) * old_scale.double()
            weight_scale = numpy_helper.to_array(initializers[weight.input[1]])
            scale = (self._value(activation.input[1]).numpy() * weight_scale).astype(np.float32).reshape(-1)
            rescaled[bias.input[0]] = np.clip(np.rint(float_bias.numpy().reshape(-1) / scale.astype(np.float64)),
                                              low, high)
            rescaled[bias.input[1]] = scale
        return rescaled

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        env: dict[str, torch.Tensor] = dict(zip(self._inputs, inputs, strict=True))

        def read(name: str) -> torch.Tensor | None:
            if not name:
                return None
            if name in env:
                return env[name]
            return self._value(name) if name in self._parameter or name in self._scales else self._constants[name]

        for op, attributes, names, output in self._steps:
            env[output] = op(attributes, *[read(name) for name in names])
        return tuple(env[name] for name in self._outputs)


def _is_activation_scale(users: list[tuple[onnx.NodeProto, int]]) -> bool:
    """An initializer that is the scale of a QuantizeLinear and its DequantizeLinear (an activation's)."""
    return (any(n.op_type == "QuantizeLinear" for n, _ in users)
            and all(n.op_type in ("QuantizeLinear", "DequantizeLinear") and slot == 1 for n, slot in users))


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


# --- the ONNX operators, with their ONNX semantics ---------------------------------------------------
def _quantize(a: dict, x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None = None) -> torch.Tensor:
    low, high = (-128, 127) if zero is not None and zero.dtype == torch.int8 else (0, 255)
    axis = a.get("axis", 1)
    zero_point = torch.zeros(()) if zero is None else _per_axis(zero.float(), x.dim(), axis)
    return torch.clamp(_round(x / _per_axis(scale, x.dim(), axis)) + zero_point, low, high)


def _dequantize(a: dict, x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None = None) -> torch.Tensor:
    axis = a.get("axis", 1)
    zero_point = torch.zeros(()) if zero is None else _per_axis(zero.float(), x.dim(), axis)
    return (x.float() - zero_point) * _per_axis(scale, x.dim(), axis)


def _conv(a: dict, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    top, left, bottom, right = a.get("pads", [0, 0, 0, 0])
    padding: tuple[int, int] | str = (top, left)
    if (top, left) != (bottom, right):
        x, padding = F.pad(x, (left, right, top, bottom)), (0, 0)
    return F.conv2d(x, w, b, stride=a.get("strides", [1, 1]), padding=padding, dilation=a.get("dilations", [1, 1]),
                    groups=a.get("group", 1))


def _gemm(a: dict, x: torch.Tensor, w: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
    x = x.t() if a.get("transA", 0) else x
    w = w.t() if a.get("transB", 0) else w
    y = a.get("alpha", 1.0) * (x @ w)
    return y if c is None else y + a.get("beta", 1.0) * c


def _reshape(a: dict, x: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    wanted = [int(v) for v in shape.tolist()]
    if not a.get("allowzero", 0):
        wanted = [x.shape[i] if v == 0 else v for i, v in enumerate(wanted)]
    return x.reshape(wanted)


def _gather(a: dict, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    axis = a.get("axis", 0) % x.dim()
    index = index.long()
    taken = x.index_select(axis, index.reshape(-1) % x.shape[axis])
    return taken.reshape(*x.shape[:axis], *index.shape, *x.shape[axis + 1:])


def _cast(a: dict, x: torch.Tensor) -> torch.Tensor:
    if a["to"] == onnx.TensorProto.FLOAT:
        return x.float()
    if a["to"] == onnx.TensorProto.INT64:
        return x.long()
    raise ExportError(f"fine-tuning's Cast knows float and int64, not ONNX type {a['to']}")


def _layer_norm(a: dict, x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    axis = a.get("axis", -1) % x.dim()
    return F.layer_norm(x, x.shape[axis:], scale, bias, a.get("epsilon", 1e-5))


def _average_pool(a: dict, x: torch.Tensor) -> torch.Tensor:
    if any(a.get("pads", [0])) or a.get("ceil_mode", 0):
        raise ExportError("fine-tuning's AveragePool knows unpadded pooling without ceil_mode")
    return F.avg_pool2d(x, a["kernel_shape"], a.get("strides", a["kernel_shape"]))


def _squeeze(a: dict, x: torch.Tensor, axes: torch.Tensor | None = None) -> torch.Tensor:
    if axes is None:
        return x.squeeze()
    for axis in sorted((int(v) % x.dim() for v in axes.tolist()), reverse=True):
        x = x.squeeze(axis)
    return x


def _multi_head_attention(a: dict, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """com.microsoft.MultiHeadAttention on 3-D query, key and value (B, S, D), no mask or bias."""
    heads = a["num_heads"]
    batch, length, width = q.shape

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(batch, t.shape[1], heads, width // heads).transpose(1, 2)

    weights = torch.softmax(split(q) @ split(k).transpose(-1, -2) * a.get("scale", (width // heads) ** -0.5), dim=-1)
    return (weights @ split(v)).transpose(1, 2).reshape(batch, length, width)


def _attention(a: dict, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *rest: torch.Tensor | None,
               ) -> torch.Tensor:
    """ONNX Attention (opset 23) on 4-D (B, heads, S, D) query, key and value, without mask or cache."""
    if any(t is not None for t in rest) or q.dim() != 4 or a.get("is_causal", 0) or a.get("softcap", 0.0) \
            or a.get("qk_matmul_output_mode", 0):
        raise ExportError("fine-tuning's Attention knows 4-D query / key / value without mask, cache, causal "
                          "masking or softcap; set [quantization] qat_steps = 0")
    weights = torch.softmax(q @ k.transpose(-1, -2) * a.get("scale", q.shape[-1] ** -0.5), dim=-1)
    return weights @ v


def _clip(a: dict, x: torch.Tensor, low: torch.Tensor | None = None, high: torch.Tensor | None = None) -> torch.Tensor:
    return torch.clamp(x, low, high)


_OPS: dict[str, Callable[..., torch.Tensor]] = {
    "QuantizeLinear": _quantize,
    "DequantizeLinear": _dequantize,
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": lambda a, x, y: torch.matmul(x, y),
    "Add": lambda a, x, y: x + y,
    "Sub": lambda a, x, y: x - y,
    "Mul": lambda a, x, y: x * y,
    "Div": lambda a, x, y: x / y,
    "Reshape": _reshape,
    "Transpose": lambda a, x: x.permute(*a["perm"]),
    "LayerNormalization": _layer_norm,
    "Gelu": lambda a, x: F.gelu(x, approximate="tanh" if a.get("approximate", b"none") in (b"tanh", "tanh")
                                else "none"),
    "Gather": _gather,
    "Cast": _cast,
    "Shape": lambda a, x: torch.tensor(list(x.shape)[a.get("start", 0): a.get("end")], dtype=torch.int64),
    "Concat": lambda a, *xs: torch.cat([x.reshape(-1) if x.dim() == 0 else x for x in xs], dim=a["axis"]),
    "Expand": lambda a, x, shape: x.expand(*torch.broadcast_shapes(x.shape, tuple(int(v) for v in shape.tolist()))),
    "Clip": _clip,
    "Relu": lambda a, x: torch.relu(x),
    "AveragePool": _average_pool,
    "GlobalAveragePool": lambda a, x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True),
    "Squeeze": _squeeze,
    "Unsqueeze": lambda a, x, axes: x.reshape(_unsqueezed(x.shape, axes)),
    "Flatten": lambda a, x: x.reshape(int(np.prod(x.shape[: a.get("axis", 1)])), -1),
    "Softmax": lambda a, x: torch.softmax(x, dim=a.get("axis", -1)),
    "MultiHeadAttention": _multi_head_attention,
    "Attention": _attention,
}
_DOMAINS = {op: ("", "ai.onnx") for op in _OPS} | {"MultiHeadAttention": ("com.microsoft",)}


def _unsqueezed(shape: torch.Size, axes: torch.Tensor) -> list[int]:
    out = list(shape)
    rank = len(shape) + axes.numel()
    for axis in sorted(int(v) % rank for v in axes.tolist()):
        out.insert(axis, 1)
    return out
