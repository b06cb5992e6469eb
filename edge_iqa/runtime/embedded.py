"""The default models as embedded bundles: what ``edge-iqa score photo.jpg`` and
``edge_iqa.runtime.load("edge_hybrid_n")`` run when torch is not installed.

An embedded bundle is an ordinary bundle folder inside the package (manifest, checksums, the
licence notices of the data its weights were trained on), exported from the embedded weights by
``scripts/build_embedded_bundle.py`` with the normal export path (ONNX Runtime, FP32, the parity
gate against PyTorch). Its manifest records the sha256 of the weights file it was exported from,
so a test fails when the weights change and the bundle was not regenerated. Torch-free.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: Model name -> its embedded bundle folder, relative to the ``edge_iqa`` package.
EMBEDDED_BUNDLES = {"edge_hybrid_n": "weights/edge_hybrid_n-onnxruntime"}
#: The command that rebuilds every embedded bundle from the embedded weights.
REGENERATE = "python scripts/build_embedded_bundle.py"


def embedded_bundle_dir(model_name: str) -> Path | None:
    """The folder of ``model_name``'s embedded bundle (whether or not it is installed), or None
    when the model has none."""
    relative = EMBEDDED_BUNDLES.get(model_name)
    return None if relative is None else Path(str(resources.files("edge_iqa") / relative))


def embedded_bundle(model_name: str) -> Path | None:
    """``model_name``'s embedded bundle folder when it is installed, else None."""
    folder = embedded_bundle_dir(model_name)
    return folder if folder is not None and (folder / "manifest.json").is_file() else None
