"""The graph inputs of an ONNX file (names and dimensions), read without the ``onnx`` package.

The runtime loads a user's ONNX depth network through its ordinary backends, which need the
network's input declared up front (as a bundle's manifest declares it). ``onnx`` is not a runtime
dependency, so this walks the protobuf wire format for exactly the fields it needs::

    ModelProto.graph (7) -> GraphProto.input (11) -> ValueInfoProto.name (1), .type (2)
      -> TypeProto.tensor_type (1) -> .shape (2) -> TensorShapeProto.dim (1) -> dim_value (1)
    GraphProto.initializer (5) -> TensorProto.name (8)   (IR < 4 lists weights among the inputs)

Everything else (weights included) is skipped by its length, on a memory map of the file.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class OnnxFileError(ValueError):
    """The file is not a well-formed ONNX model."""


@dataclass(frozen=True)
class GraphInput:
    name: str
    dims: tuple[int | None, ...]  # None: a dynamic (named or unknown) dimension


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise OnnxFileError("truncated or corrupt protobuf")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of one message: an int, or a view for length-delimited fields."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(data, pos)
            yield number, wire, value
        elif wire == _LENGTH:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise OnnxFileError("truncated or corrupt protobuf")
            yield number, wire, data[pos : pos + size]
            pos += size
        elif wire in (_FIXED64, _FIXED32):
            pos += 8 if wire == _FIXED64 else 4
        else:
            raise OnnxFileError(f"unsupported protobuf wire type {wire}")


def _first(data: memoryview, number: int) -> memoryview | None:
    return next((v for n, w, v in _fields(data) if n == number and w == _LENGTH), None)  # type: ignore[misc]


def _dims(value_info: memoryview) -> tuple[int | None, ...]:
    type_proto = _first(value_info, 2)
    tensor = _first(type_proto, 1) if type_proto is not None else None
    shape = _first(tensor, 2) if tensor is not None else None
    if shape is None:
        return ()
    dims: list[int | None] = []
    for number, wire, dim in _fields(shape):
        if number == 1 and wire == _LENGTH:
            value = next((v for n, w, v in _fields(dim) if n == 1 and w == _VARINT), None)  # type: ignore[arg-type]
            dims.append(int(value) if isinstance(value, int) and value > 0 else None)
    return tuple(dims)


def graph_inputs(path: str | Path) -> list[GraphInput]:
    """The inputs the network must be fed (initializers listed as inputs are left out)."""
    with open(path, "rb") as fh:
        try:
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:  # an empty file
            raise OnnxFileError("empty file") from exc
    with mapped:
        result = _graph_inputs(memoryview(mapped))  # every view of the map is gone when this returns
    if not result:
        raise OnnxFileError("the graph declares no input")
    return result


def _graph_inputs(model: memoryview) -> list[GraphInput]:
    graph = _first(model, 7)
    if graph is None:
        raise OnnxFileError("no graph")
    inputs: list[tuple[str, tuple[int | None, ...]]] = []
    weights: set[str] = set()
    for number, wire, value in _fields(graph):
        if wire != _LENGTH:
            continue
        if number == 11:
            name = _first(value, 1)  # type: ignore[arg-type]
            inputs.append((_text(name), _dims(value)))  # type: ignore[arg-type]
        elif number == 5:
            weights.add(_text(_first(value, 8)))  # type: ignore[arg-type]
    return [GraphInput(name, dims) for name, dims in inputs if name not in weights]


def _text(value: memoryview | None) -> str:
    return "" if value is None else bytes(value).decode("utf-8", "replace")
