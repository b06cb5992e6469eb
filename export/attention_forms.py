"""The attention form of an exported graph: which op carries each attention, and checks on it.

- ``onnx_attention``: the standard ONNX ``Attention`` op (opset 23), traced from SDPA.
- ``matmul_softmax``: MatMul -> (Mul/Add) -> Softmax -> MatMul, traced from the explicit form.
- ``ort_mha``: ONNX Runtime's ``com.microsoft.MultiHeadAttention``, made here by rewriting each
  ``Attention`` node. The exporter emits Attention with 4-D (batch, heads, seq, head_dim) inputs;
  MultiHeadAttention takes (batch, seq, heads*head_dim), so each rewrite wraps the op in
  Transpose + Reshape on the way in and out (ORT's optimizer folds these into the surrounding
  transposes of the head split/merge).
"""

from __future__ import annotations

from collections import Counter

import onnx
from onnx import helper

from edge_iqa.errors import ExportError

MS_DOMAIN = "com.microsoft"
# The traced attention form of each target attention form (see edge_iqa.models.layers.attention).
TORCH_FORM = {"onnx_attention": "sdpa", "ort_mha": "sdpa", "matmul_softmax": "matmul_softmax"}


def op_counts(model: onnx.ModelProto) -> Counter[str]:
    """Node counts keyed ``op_type`` (default domain) or ``domain::op_type``."""
    return Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
                   for n in model.graph.node)


def fused_attention_count(model: onnx.ModelProto, form: str) -> int:
    """How many attentions the graph carries in the form's op (Softmax heads of the explicit
    MatMul-Softmax-MatMul pattern for ``matmul_softmax``)."""
    counts = op_counts(model)
    if form == "onnx_attention":
        return counts["Attention"]
    if form == "ort_mha":
        return counts[f"{MS_DOMAIN}::MultiHeadAttention"]
    return len(matmul_softmax_patterns(model))


def matmul_softmax_patterns(model: onnx.ModelProto) -> list[str]:
    """Softmax nodes that sit in a MatMul -> [Mul|Add|Div]* -> Softmax -> MatMul chain."""
    producer = {out: node for node in model.graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found = []
    for node in model.graph.node:
        if node.op_type != "Softmax":
            continue
        upstream = producer.get(node.input[0])
        while upstream is not None and upstream.op_type in ("Add", "Mul", "Div"):
            upstream = producer.get(upstream.input[0])
        feeds_matmul = any(c.op_type == "MatMul" for c in consumers.get(node.output[0], []))
        if upstream is not None and upstream.op_type == "MatMul" and feeds_matmul:
            found.append(node.name)
    return found


def check_fused_attention(model: onnx.ModelProto, form: str, expected: int) -> int:
    """Raise :class:`ExportError` unless the graph has one fused attention per PyTorch attention
    call (and, for the fused forms, no stray ``Attention`` op of the other kind)."""
    found = fused_attention_count(model, form)
    counts = op_counts(model)
    if form in ("matmul_softmax", "ort_mha") and counts["Attention"]:
        raise ExportError(f"attention form {form!r}: the graph still holds {counts['Attention']} ONNX Attention "
                          "ops; some attention bypassed edge_iqa.models.layers.attention.scaled_dot_product")
    if found != expected:
        raise ExportError(f"attention form {form!r}: the graph has {found} fused attention(s) but the PyTorch "
                          f"forward made {expected} attention call(s); an attention was decomposed or lost in "
                          "export (check that the model routes every attention through scaled_dot_product)")
    return found


def _shape_of(model: onnx.ModelProto, name: str) -> list[int | str | None]:
    for info in [*model.graph.value_info, *model.graph.input, *model.graph.output]:
        if info.name == name and info.type.tensor_type.HasField("shape"):
            return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                    for d in info.type.tensor_type.shape.dim]
    return []


def _elem_type(model: onnx.ModelProto, name: str) -> int:
    for info in [*model.graph.value_info, *model.graph.input]:
        if info.name == name:
            return info.type.tensor_type.elem_type
    for init in model.graph.initializer:
        if init.name == name:
            return init.data_type
    return onnx.TensorProto.UNDEFINED


def _attr(node: onnx.NodeProto, name: str, default: float | int) -> float | int:
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def rewrite_attention_to_mha(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace each ONNX ``Attention`` node with ``com.microsoft.MultiHeadAttention`` (in place;
    returns the model). Supports the exporter's form: 4-D q/k/v with equal head counts, optional
    float additive mask, no softcap/causal/past-KV."""
    inferred = onnx.shape_inference.infer_shapes(model)
    new_nodes: list[onnx.NodeProto] = []
    to_3d = helper.make_tensor("mha_rewrite_to_3d", onnx.TensorProto.INT64, [3], [0, 0, -1])
    rewrites = 0
    for node in model.graph.node:
        if node.op_type != "Attention" or node.domain not in ("", "ai.onnx"):
            new_nodes.append(node)
            continue
        if len(node.output) > 1 and any(node.output[1:]):
            raise ExportError(f"{node.name}: Attention with present-KV outputs cannot become MultiHeadAttention")
        if _attr(node, "softcap", 0.0) or _attr(node, "is_causal", 0):
            raise ExportError(f"{node.name}: softcap/causal Attention is not rewritten to MultiHeadAttention; "
                              "use attention_form 'onnx_attention'")
        q_shape = _shape_of(inferred, node.input[0])
        k_shape = _shape_of(inferred, node.input[1])
        if len(q_shape) != 4 or not isinstance(q_shape[1], int) or q_shape[1] < 1 or k_shape[1:2] != q_shape[1:2]:
            raise ExportError(f"{node.name}: needs 4-D q/k/v with a static, equal head count to become "
                              f"MultiHeadAttention (q {q_shape}, k {k_shape})")
        heads, head_dim = q_shape[1], q_shape[3]
        scale = float(_attr(node, "scale", 0.0)) or (float(head_dim) ** -0.5 if isinstance(head_dim, int) else 0.0)
        if not scale:
            raise ExportError(f"{node.name}: unknown head size and no scale attribute")
        prefix = f"{node.name or 'attention'}_mha{rewrites}"
        flat = []
        for role, name in zip(("q", "k", "v"), node.input[:3], strict=True):
            bsnh = f"{prefix}_{role}_bsnh"
            new_nodes.append(helper.make_node("Transpose", [name], [bsnh], name=f"{prefix}_{role}_T",
                                              perm=[0, 2, 1, 3]))
            new_nodes.append(helper.make_node("Reshape", [bsnh, to_3d.name], [f"{prefix}_{role}_3d"],
                                              name=f"{prefix}_{role}_R"))
            flat.append(f"{prefix}_{role}_3d")
        mha_inputs = [*flat]
        mask = node.input[3] if len(node.input) > 3 and node.input[3] else None
        if mask is not None:
            if _elem_type(inferred, mask) != onnx.TensorProto.FLOAT or len(_shape_of(inferred, mask)) != 4:
                raise ExportError(f"{node.name}: only 4-D float additive masks become MultiHeadAttention's "
                                  "attention_bias; use attention_form 'onnx_attention'")
            # MultiHeadAttention inputs: query, key, value, bias, key_padding_mask, attention_bias.
            mha_inputs += ["", "", mask]
        out_3d = f"{prefix}_out_3d"
        new_nodes.append(helper.make_node("MultiHeadAttention", mha_inputs, [out_3d], name=f"{prefix}",
                                          domain=MS_DOMAIN, num_heads=heads, scale=scale))
        shape_4d = helper.make_tensor(f"{prefix}_shape4d", onnx.TensorProto.INT64, [4], [0, 0, heads, -1])
        model.graph.initializer.append(shape_4d)
        new_nodes.append(helper.make_node("Reshape", [out_3d, shape_4d.name], [f"{prefix}_out_bsnh"],
                                          name=f"{prefix}_out_R"))
        new_nodes.append(helper.make_node("Transpose", [f"{prefix}_out_bsnh"], [node.output[0]],
                                          name=f"{prefix}_out_T", perm=[0, 2, 1, 3]))
        rewrites += 1
    if rewrites:
        model.graph.initializer.append(to_3d)
        del model.graph.node[:]
        model.graph.node.extend(new_nodes)
        if not any(o.domain == MS_DOMAIN for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return model
