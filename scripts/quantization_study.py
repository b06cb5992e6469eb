"""Calibration quality of INT8 per backend, and the drift of exported bundles, on CLIVE evaluation images.

Evaluation images: the CLIVE development images (``../shared/datasets/clive/labels.csv``) that are
NOT among the 256 shipped calibration images (the bench's evaluation set), so calibration,
validation (the export's held-out shipped images) and evaluation never overlap.

``calibration``: for each backend (the cpu / onnxruntime / jetson profiles' graph and keep_fp),
calibration method (those the backend offers) and sample count (nested seeded subsets of the
shipped images; 256 is all of them), quantize to full INT8 (no mixed-precision search) and compare
the scores with PyTorch FP32 on the evaluation images: delta SROCC against MOS, rank agreement,
max/mean |score diff|. TensorRT's INT8 Q/DQ graph is run by ONNX Runtime on the CPU (the export's
proxy).

    python scripts/quantization_study.py calibration --model edge_hybrid_n --out study/edge_hybrid_n.json
    python scripts/quantization_study.py calibration --model topiq_nr_224 --golden --eval-images 64 \\
        --out study/topiq_nr_224.json

``bundles``: score exported bundles (``edge_iqa.runtime.load``) on the evaluation images and
compare with PyTorch FP32 of the same checkpoint.

    python scripts/quantization_study.py bundles --model edge_hybrid_n b_cpu b_jetson --out study/bundles.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.golden: deterministic weights of the seed models
SHARED = REPO.parent / "shared"
BACKENDS = {"cpu": ("minmax", "percentile"), "onnxruntime": ("minmax", "percentile", "entropy"),
            "jetson": ("minmax", "entropy")}


def load_model(name: str, golden: bool) -> tuple[Any, Any]:
    import torch

    from edge_iqa.export.pipeline import load_model_for_export
    from edge_iqa.models import create_model, get_model_info

    if golden:
        from scripts.seed_bundles import GOLDEN_KEYS
        from tests.golden import deterministic_state_dict

        model = create_model(name)
        with torch.no_grad():
            model.load_state_dict(deterministic_state_dict(GOLDEN_KEYS.get(name, name)), strict=True)
        return model.eval(), get_model_info(name).preprocess
    model, spec, _, _ = load_model_for_export(name)
    return model.eval(), spec


def evaluation_set(limit: int, seed: int = 0) -> tuple[list[Path], np.ndarray]:
    from edge_iqa.calibration_data import calibration_clive_names
    from edge_iqa.data.datasets import read_labels

    labels = read_labels(SHARED / "datasets" / "clive" / "labels.csv")
    excluded = calibration_clive_names()
    items = [item for item in labels.items if item.path.name not in excluded]
    if limit and limit < len(items):
        keep = sorted(np.random.default_rng(seed).permutation(len(items))[:limit])
        items = [items[i] for i in keep]
    return [item.path for item in items], np.array([item.mos for item in items])


def preprocess(paths: list[Path], spec: Any) -> list[np.ndarray]:
    from edge_iqa.data.imageio import load_image

    return [spec.apply(load_image(p)) for p in paths]


def drift_record(scores: np.ndarray, reference: np.ndarray, mos: np.ndarray, with_mos: bool) -> dict[str, Any]:
    from edge_iqa.export.parity import compare

    record = compare(scores, reference, mos if with_mos else None)
    if not with_mos:
        record.pop("delta_srocc", None)
    return record


def calibration_study(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from edge_iqa.export import calibration
    from edge_iqa.export.onnx_export import export_onnx
    from edge_iqa.export.parity import raw_scores, reference_scorer, score_images
    from edge_iqa.export.pipeline import backend_module
    from edge_iqa.export.targets import load_target
    from edge_iqa.models import get_model_info

    torch.set_num_threads(args.threads)
    model, spec = load_model(args.model, args.golden)
    info = get_model_info(args.model)
    if hook := info.extra.get("fixed_size_hook"):
        getattr(model, hook)(*spec.input_size)
    names = tuple(info.inputs)
    paths, mos = evaluation_set(args.eval_images)
    started = time.perf_counter()
    stacks = preprocess(paths, spec)
    reference = raw_scores(reference_scorer(model, spec, names), stacks)
    print(f"{len(stacks)} evaluation images, PyTorch FP32 reference in {time.perf_counter() - started:.0f}s",
          flush=True)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edge-iqa-qstudy-") as tmp:
        work = Path(tmp)
        for target in args.targets:
            profile = load_target(target)
            backend = backend_module(profile.runtime)
            graph = export_onnx(model, work / f"{target}.onnx", input_names=names, input_size=spec.input_size,
                                form=profile.attention_form, opset=profile.opset, max_batch=profile.max_batch)
            for method in BACKENDS[target]:
                if args.methods and method not in args.methods:
                    continue
                for samples in args.samples:
                    quant = dataclasses.replace(profile.quantization, method=method, calibration_samples=samples)
                    trial = dataclasses.replace(profile, quantization=quant, threads=args.threads)
                    rows = calibration.split(samples, quant.seed, 1).calibration
                    out = work / f"{target}-{method}-{samples}"
                    out.mkdir()
                    start = time.perf_counter()
                    try:
                        built = backend.build(graph.path, out, "int8", trial,
                                              lambda rows=rows: calibration.iter_calibration_feeds(rows, spec, names),
                                              out)
                    except Exception as exc:  # noqa: BLE001 - one failed configuration is a row, not a crash
                        results.append({"target": target, "method": method, "samples": samples,
                                        "error": f"{type(exc).__name__}: {exc}"})
                        continue
                    build_s = time.perf_counter() - start
                    run = backend.runner(out / built["model_file"], "int8", args.threads)
                    scores = score_images(run, stacks, names)
                    row = {"target": target, "runtime": profile.runtime, "method": method, "samples": samples,
                           "build_s": round(build_s, 1), "images": len(stacks),
                           **drift_record(scores, reference, mos, not args.golden)}
                    results.append(row)
                    print(json.dumps(row), flush=True)
    return {"model": args.model, "weights": "golden deterministic (tests/golden.py)" if args.golden else "trained",
            "evaluation": "CLIVE development images not in calibration_data", "images": len(stacks),
            "srocc_fp32": None if args.golden else _srocc(reference, mos), "rows": results}


def _srocc(scores: np.ndarray, mos: np.ndarray) -> float:
    from edge_iqa.metrics import srocc

    return float(srocc(scores, mos))


def bundles_study(args: argparse.Namespace) -> dict[str, Any]:
    """Each bundle's artifact run by its export backend's runner (TensorRT: the ONNX Runtime CPU
    proxy of the Q/DQ graph, as at export), raw scores vs PyTorch FP32."""
    import torch

    from edge_iqa.export.parity import raw_scores, reference_scorer, score_images
    from edge_iqa.export.pipeline import backend_module
    from edge_iqa.runtime.bundle import read_manifest

    torch.set_num_threads(args.threads)
    model, spec = load_model(args.model, args.golden)
    paths, mos = evaluation_set(args.eval_images)
    stacks = preprocess(paths, spec)
    reference = raw_scores(reference_scorer(model, spec, ("image",)), stacks)
    rows = []
    for bundle in args.bundles:
        manifest = read_manifest(bundle)
        run = backend_module(manifest.runtime).runner(bundle / manifest.model_file, manifest.precision,
                                                         args.threads)
        scores = score_images(run, stacks, ("image",))
        control = manifest.get("accuracy_control") or {}
        row = {"bundle": str(bundle), "target": manifest["target"]["name"], "precision": manifest.precision,
               "images": len(paths), **drift_record(scores, reference, mos, not args.golden),
               "kept_blocks": control.get("kept_blocks"), "export_budget": control.get("budget"),
               "export_validation_delta": (control.get("final") or {}).get("delta_srocc")}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"model": args.model, "images": len(paths), "srocc_fp32": _srocc(reference, mos), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("calibration", "bundles"):
        p = sub.add_parser(name)
        p.add_argument("--model", default="edge_hybrid_n")
        p.add_argument("--golden", action="store_true", help="seed model with the golden deterministic weights")
        p.add_argument("--eval-images", type=int, default=0, help="seeded subset of the evaluation set (0: all)")
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--out", type=Path, required=True)
    cal = sub.choices["calibration"]
    cal.add_argument("--targets", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    cal.add_argument("--methods", nargs="*", default=[])
    cal.add_argument("--samples", nargs="+", type=int, default=[32, 128, 256])
    sub.choices["bundles"].add_argument("bundles", nargs="+", type=Path)
    args = parser.parse_args()
    result = calibration_study(args) if args.command == "calibration" else bundles_study(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), **result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
