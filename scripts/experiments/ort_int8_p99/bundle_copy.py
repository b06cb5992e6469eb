"""A bundle folder for a trained ONNX Runtime graph: the source bundle's manifest with the new file's checksum."""

import hashlib
import json
from pathlib import Path

import onnx


def save_bundle(graph: onnx.ModelProto, source: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(graph, str(out / "model.onnx"))
    manifest = json.loads((source / "manifest.json").read_text())
    data = (out / "model.onnx").read_bytes()
    manifest["files"]["model.onnx"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
