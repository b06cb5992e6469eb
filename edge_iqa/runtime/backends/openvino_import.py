"""``import openvino`` for scoring, without the model-conversion tools it loads eagerly.

``openvino/__init__.py`` imports ``openvino.tools.ovc`` (``convert_model``), which pulls in
OpenVINO's telemetry and with it ``urllib``, ``http.client`` and ``email``: about 0.07 s of CPU
at every start of a scoring process (measured: ``import openvino`` 0.22 s vs 0.15 s CPU, OpenVINO
2026.4), for a function that scoring never calls. OpenVINO's own ``__init__`` skips it when the
import fails, so the runtime hides the module for the duration of that one import and then puts
everything back: ``openvino.tools.ovc`` imports normally afterwards, and ``openvino.convert_model``
is a stand-in that imports the real one on its first call. When something else imported
openvino first, nothing is changed.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

_CONVERSION_TOOLS = "openvino.tools.ovc"


def import_openvino() -> ModuleType:
    if sys.modules.get("openvino") is not None:
        return sys.modules["openvino"]
    hidden = _CONVERSION_TOOLS not in sys.modules
    if hidden:
        sys.modules[_CONVERSION_TOOLS] = None  # type: ignore[assignment] - makes that import raise ImportError
    try:
        import openvino
    finally:
        if hidden and sys.modules.get(_CONVERSION_TOOLS, ModuleType("x")) is None:
            del sys.modules[_CONVERSION_TOOLS]
    if not hasattr(openvino, "convert_model"):
        openvino.convert_model = convert_model
    return openvino


def convert_model(*args: Any, **kwargs: Any) -> Any:
    """``openvino.convert_model``, imported on first use (see the module docstring)."""
    from openvino.tools.ovc import convert_model as real

    sys.modules["openvino"].convert_model = real
    return real(*args, **kwargs)
