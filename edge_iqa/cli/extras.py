"""A verb whose optional dependency is not installed ends in one line that names the ``pip install``
bringing it, never in a traceback (the runtime-only user has ``pip install edge-iqa onnxruntime``).

The extras are those of ``pyproject.toml``; a module the code imports lazily is mapped to the extra
that installs it. Any other missing module is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

#: Top-level module -> the extra of ``edge-iqa`` that installs it.
EXTRA_OF_MODULE = {
    "torch": "torch", "torchvision": "torch", "timm": "torch", "safetensors": "torch", "scipy": "torch",
    "tqdm": "torch",
    "onnx": "onnx", "onnxscript": "onnx", "onnxruntime": "onnx",
    "openvino": "openvino", "nncf": "openvino",
    "modelopt": "tensorrt-export", "onnx_graphsurgeon": "tensorrt-export", "onnxconverter_common": "tensorrt-export",
    "polygraphy": "tensorrt-export", "onnxslim": "tensorrt-export",
    "tensorrt": "tensorrt", "cuda": "tensorrt",
    "matplotlib": "bench", "psutil": "bench",
    "piq": "synth",
    "pyarrow": "collection",
    "ray": "scale",
}
#: Exit status of a usage error (as the verbs' own ``error:`` lines).
EXIT_USAGE = 2

Command = TypeVar("Command", bound=Callable[..., Any])


def install_line(module: str) -> str | None:
    """The ``pip install`` that brings the top-level module ``module``; None if it is not optional."""
    extra = EXTRA_OF_MODULE.get(module.split(".")[0])
    return None if extra is None else f'pip install "edge-iqa[{extra}]"'


def missing_extra_message(verb: str, exc: ModuleNotFoundError) -> str | None:
    """The one line for a verb that hit a missing optional module, or None (not an optional one)."""
    module = exc.name or ""
    line = install_line(module)
    if line is None:
        return None
    return f"error: `edge-iqa {verb}` needs {module.split('.')[0]}, which is not installed: {line}"


def needs_extras(verb: str, command: Command) -> Command:
    """``command`` with a missing optional dependency turned into one line on stderr and exit 2."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ModuleNotFoundError as exc:
            message = missing_extra_message(verb, exc)
            if message is None:
                raise
            typer.echo(message, err=True)
            raise typer.Exit(EXIT_USAGE) from None

    return run  # type: ignore[return-value]
