"""Which ONNX nodes came from which PyTorch module, from the dynamo exporter's node metadata.

The exporter stores each node's module path in ``pkg.torch.onnx.name_scopes`` (e.g.
``['', 'model', 'model.head', 'model.head.1', 'linear_20']``). The keep-in-higher-precision
patterns of a target profile (``head``, ``backbone.0``) are matched against these paths, so they
name layers the way the PyTorch model does and survive exporter renames of the nodes.
"""

from __future__ import annotations

import ast
import fnmatch

import onnx

NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"
WRAPPER_PREFIX = "model"  # ScoreWrapper's attribute holding the zoo model


def module_paths(node: onnx.NodeProto) -> list[str]:
    """The node's module path and its ancestors, relative to the zoo model (``head.1``, ``head``)."""
    for prop in node.metadata_props:
        if prop.key == NAME_SCOPES_KEY:
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return []
            # The last entry names the aten op, not a module.
            return [s.removeprefix(WRAPPER_PREFIX + ".") for s in scopes[:-1] if s.startswith(WRAPPER_PREFIX + ".")]
    return []


def nodes_matching(model: onnx.ModelProto, patterns: tuple[str, ...] | list[str]) -> list[str]:
    """Names of nodes whose module path (or an ancestor) or own name matches a pattern."""
    matched = []
    for node in model.graph.node:
        candidates = [*module_paths(node), node.name]
        if any(fnmatch.fnmatchcase(c, p) for p in patterns for c in candidates):
            matched.append(node.name)
    return matched
