"""Rebuild the embedded ONNX Runtime FP32 bundle of each default model from its embedded weights.

    python scripts/build_embedded_bundle.py            # every model in EMBEDDED_BUNDLES
    python scripts/build_embedded_bundle.py --check    # only say whether they match the weights

The bundle is the normal export (``edge_iqa.export.pipeline.export_bundle``, target
``onnxruntime``, precision fp32: the ONNX graph, its parity gate against PyTorch on held-out
photos, ``runtime.load`` of the staged bundle), plus the licence notices that accompany the
weights (``edge_iqa/weights/*.txt``) and a README, checksummed into the manifest like any bundle
file. The manifest's ``model.weights.sha256`` is the weights file's: ``tests/test_embedded_bundle.py``
fails when the weights change (issue 19 retrains them) until this script is run again.
Needs the export extras (torch, onnx, onnxruntime).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from edge_iqa.checksums import sha256_file
from edge_iqa.export.pipeline import export_bundle
from edge_iqa.models import get_model_info
from edge_iqa.models.checkpoint import packaged_weights_path
from edge_iqa.runtime.bundle import read_manifest, write_manifest
from edge_iqa.runtime.embedded import EMBEDDED_BUNDLES, REGENERATE, embedded_bundle, embedded_bundle_dir

TARGET = "onnxruntime"
PRECISION = "fp32"
README = """# Embedded bundle of `{model}`

The ONNX Runtime FP32 bundle `edge-iqa score` and `edge_iqa.runtime.load("{model}")` use when torch
is not installed. Exported from `edge_iqa/{weights}` (sha256 `{sha256}`, recorded in
`manifest.json` -> `model.weights`) with the normal export path: `{command}`
(target `{target}`, precision `{precision}`, parity gate against PyTorch). Regenerate it whenever the
weights change: `{command}`.

Licences: the weights' own notices are copied here ({notices}); see `edge_iqa/weights/README.md`.
"""


def weights_file(model: str) -> Path:
    relative = get_model_info(model).default_weights
    if relative is None:
        raise SystemExit(f"{model} has no embedded weights to build a bundle from")
    return packaged_weights_path(relative)


def matches(model: str) -> bool:
    """The installed bundle was exported from the current weights file."""
    bundle = embedded_bundle(model)
    if bundle is None:
        return False
    return read_manifest(bundle)["model"]["weights"].get("sha256") == sha256_file(weights_file(model))


def build(model: str) -> Path:
    weights = weights_file(model)
    folder = embedded_bundle_dir(model)
    assert folder is not None
    notices = sorted(weights.parent.glob("*.txt"))
    with tempfile.TemporaryDirectory(prefix="edge-iqa-embedded-", dir=folder.parent) as tmp:
        staged = export_bundle(model, TARGET, PRECISION, weights, Path(tmp) / "bundle")
        for notice in notices:
            shutil.copyfile(notice, staged / notice.name)
        (staged / "README.md").write_text(README.format(
            model=model, weights=weights.relative_to(weights.parents[1]).as_posix(), sha256=sha256_file(weights),
            command=REGENERATE, target=TARGET, precision=PRECISION,
            notices=", ".join(f"`{n.name}`" for n in notices) or "none"))
        document = read_manifest(staged).to_dict()
        document["embedded"] = {"regenerate": REGENERATE, "weights_file": weights.name,
                                "licence_notices": [n.name for n in notices]}
        write_manifest(staged, document)  # the notices and README are checksummed like every bundle file
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        staged.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report whether each bundle matches its weights")
    parser.add_argument("models", nargs="*", default=list(EMBEDDED_BUNDLES))
    args = parser.parse_args()
    stale = [model for model in args.models if not matches(model)]
    if args.check:
        for model in args.models:
            print(f"{model}: {'stale: run ' + REGENERATE if model in stale else 'matches its weights'}")
        sys.exit(1 if stale else 0)
    for model in args.models:
        folder = build(model)
        size = sum(p.stat().st_size for p in folder.iterdir())
        print(f"{model}: {folder} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
