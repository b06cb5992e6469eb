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

``variants``: per-photo error of quantization settings at the same speed (issue 16): each named
variant of a target profile (SmoothQuant alpha, bias correction, layers kept in FP, ...) quantized
to full INT8, scored on the evaluation images: p99 / max |dscore| in MOS points, delta SROCC, and
one-image latency relative to the target's default INT8 (interleaved in one process).

    python scripts/quantization_study.py variants --targets cpu onnxruntime --eval-images 0 \
        --out study/variants.json

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
sys.path.insert(0, str(REPO))  # scripts.seed_bundles (GOLDEN_KEYS)
SHARED = REPO.parent / "shared"
GOLDEN_LABEL = "golden deterministic (edge_iqa/models/golden_weights.py)"
BACKENDS = {"cpu": ("minmax", "percentile"), "onnxruntime": ("minmax", "percentile", "entropy"),
            "jetson": ("minmax", "entropy")}


def load_model(name: str, golden: bool) -> tuple[Any, Any]:
    model, spec, _ = load_model_with_scale(name, golden)
    return model, spec


def load_model_with_scale(name: str, golden: bool) -> tuple[Any, Any, float]:
    """(model, preprocessing, MOS points per raw output unit: the checkpoint's output transform)."""
    import torch

    from edge_iqa.export.pipeline import load_model_for_export
    from edge_iqa.models import create_model, get_model_info

    if golden:
        from edge_iqa.models.golden_weights import deterministic_state_dict
        from scripts.seed_bundles import GOLDEN_KEYS

        model = create_model(name)
        with torch.no_grad():
            model.load_state_dict(deterministic_state_dict(GOLDEN_KEYS.get(name, name)), strict=True)
        return model.eval(), get_model_info(name).preprocess, 1.0
    model, spec, transform, _ = load_model_for_export(name)
    return model.eval(), spec, float(transform["scale"])


def validation_set() -> tuple[list[Path], np.ndarray]:
    """The export's validation photos (the cpu profile's held-out shipped images), not evaluation ones."""
    from edge_iqa.export import calibration
    from edge_iqa.export.targets import load_target

    profile = load_target("cpu")
    rows = calibration.split(profile.quantization.calibration_samples, profile.quantization.seed,
                             profile.parity.accuracy_images).validation
    return [calibration.image_file(row) for row in rows], np.array([row.mos for row in rows])


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


def artifact_scorer(out: Path, built: dict[str, Any], graph: Any, spec: Any, profile: Any, model_name: str) -> Any:
    """The built INT8 artifact through ``runtime.load`` (TensorRT: the export's ONNX Runtime stand-in
    bundle), as the export's gate and mixed-precision search score it."""
    from edge_iqa.export.staging import artifact_document, load_artifact

    return load_artifact(out / built["model_file"], artifact_document(
        profile.runtime, "int8", built["model_file"], graph.io_record(), spec, model_name=model_name,
        target=profile.to_dict(), runtime_options=built["runtime_options"]))


def drift_record(scores: np.ndarray, reference: np.ndarray, mos: np.ndarray, with_mos: bool,
                 score_scale: float = 1.0) -> dict[str, Any]:
    """Drift vs FP32 (raw scores) plus p99 / max |dscore| in MOS points (``score_scale`` MOS per raw
    unit) and the paired bootstrap standard error of delta SROCC on these photos."""
    from edge_iqa.export.accuracy_budget import srocc_resolution
    from edge_iqa.export.parity import compare

    record = compare(scores, reference, mos if with_mos else None)
    record["p99_abs_dscore"] = record["p99_abs_diff"] * abs(score_scale)
    record["max_abs_dscore"] = record["max_abs_diff"] * abs(score_scale)
    record["mean_abs_dscore"] = record["mean_abs_diff"] * abs(score_scale)
    if with_mos:
        record["srocc_resolution"] = srocc_resolution(scores, reference, mos)
    else:
        record.pop("delta_srocc", None)
    return record


def target_graph(model: Any, spec: Any, names: tuple[str, ...], target: str, work: Path) -> tuple[Any, Any, Any]:
    """(profile, export backend, ONNX graph in the target's attention form) of one target."""
    from edge_iqa.export.onnx_export import export_onnx
    from edge_iqa.export.pipeline import backend_module
    from edge_iqa.export.targets import load_target

    profile = load_target(target)
    graph = export_onnx(model, work / f"{target}.onnx", input_names=names, input_size=spec.input_size,
                        form=profile.attention_form, opset=profile.opset, max_batch=profile.max_batch)
    return profile, backend_module(profile.runtime), graph


def calibration_study(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from edge_iqa.export import calibration
    from edge_iqa.export.parity import raw_scores, reference_scorer
    from edge_iqa.models import get_model_info

    torch.set_num_threads(args.threads)
    model, spec = load_model(args.model, args.golden)
    info = get_model_info(args.model)
    if hook := info.extra.get("fixed_size_hook"):
        getattr(model, hook)(*spec.input_size)
    names = tuple(info.inputs)
    paths, mos = evaluation_set(args.eval_images)
    started = time.perf_counter()
    images = calibration.prepare_files(paths, spec, names)
    reference = raw_scores(reference_scorer(model, spec, names), images)
    print(f"{len(images)} evaluation images, PyTorch FP32 reference in {time.perf_counter() - started:.0f}s",
          flush=True)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edge-iqa-qstudy-") as tmp:
        work = Path(tmp)
        for target in args.targets:
            profile, backend, graph = target_graph(model, spec, names, target, work)
            for method in BACKENDS[target]:
                if args.methods and method not in args.methods:
                    continue
                for samples in args.samples:
                    quant = dataclasses.replace(profile.quantization, method=method, calibration_samples=samples)
                    trial = dataclasses.replace(profile, quantization=quant, threads=args.threads)
                    rows = calibration.split(samples, quant.seed, 1).calibration
                    out = work / f"{target}-{method}-{samples}"
                    out.mkdir()
                    (scratch := work / f"{out.name}.work").mkdir()
                    start = time.perf_counter()
                    try:
                        built = backend.build(graph.path, out, "int8", trial,
                                              lambda rows=rows: calibration.iter_calibration_feeds(rows, spec, names),
                                              scratch)
                    except Exception as exc:  # noqa: BLE001 - one failed configuration is a row, not a crash
                        results.append({"target": target, "method": method, "samples": samples,
                                        "error": f"{type(exc).__name__}: {exc}"})
                        continue
                    build_s = time.perf_counter() - start
                    with artifact_scorer(out, built, graph, spec, trial, args.model) as scorer:
                        scores = raw_scores(scorer, images)
                    row = {"target": target, "runtime": profile.runtime, "method": method, "samples": samples,
                           "build_s": round(build_s, 1), "images": len(images),
                           **drift_record(scores, reference, mos, not args.golden)}
                    results.append(row)
                    print(json.dumps(row), flush=True)
    return {"model": args.model, "weights": GOLDEN_LABEL if args.golden else "trained",
            "evaluation": "CLIVE development images not in calibration_data", "images": len(images),
            "srocc_fp32": None if args.golden else _srocc(reference, mos), "rows": results}


def _srocc(scores: np.ndarray, mos: np.ndarray) -> float:
    from edge_iqa.metrics import srocc

    return float(srocc(scores, mos))


# Named variants of a target profile: keys of QuantizationSpec (and keep_fp additions).
ATTENTION_BLOCKS = ("tokens_*", "semantic", "top_down_*")
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {"default": {}, "smoothquant off": {"smooth_quant_alpha": -1.0},
            "smoothquant 0.5": {"smooth_quant_alpha": 0.5}, "full bias correction": {"bias_correction": "full"},
            "attention blocks in FP": {"keep_fp_extra": ATTENTION_BLOCKS},
            "256 calibration photos": {"calibration_samples": 256}},
    "onnxruntime": {"default": {}, "attention blocks in FP": {"keep_fp_extra": ATTENTION_BLOCKS},
                    "32 calibration photos": {"calibration_samples": 32}},
}


def variants_study(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from edge_iqa.export import calibration
    from edge_iqa.export.accuracy_control import latency_ms
    from edge_iqa.export.parity import raw_scores, reference_scorer
    from edge_iqa.models import get_model_info

    torch.set_num_threads(args.threads)
    model, spec, scale = load_model_with_scale(args.model, args.golden)
    names = tuple(get_model_info(args.model).inputs)
    paths, mos = evaluation_set(args.eval_images)
    images = calibration.prepare_files(paths, spec, names)
    reference = raw_scores(reference_scorer(model, spec, names), images)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edge-iqa-variants-") as tmp:
        work = Path(tmp)
        for target in args.targets:
            profile, backend, graph = target_graph(model, spec, names, target, work)
            scorers: dict[str, Any] = {}
            for name, change in VARIANTS[target].items():
                if args.variants and name not in args.variants and name != "default":
                    continue
                change = dict(change)
                extra = change.pop("keep_fp_extra", ())
                quant = dataclasses.replace(profile.quantization, keep_fp=(*profile.quantization.keep_fp, *extra),
                                            **change)
                trial = dataclasses.replace(profile, quantization=quant, threads=args.threads)
                rows = calibration.split(min(quant.calibration_samples, 256), quant.seed, 1).calibration
                out = work / f"{target}-{len(results)}"
                out.mkdir()
                (scratch := work / f"{out.name}.work").mkdir()
                start = time.perf_counter()
                try:
                    built = backend.build(graph.path, out, "int8", trial,
                                          lambda rows=rows: calibration.iter_calibration_feeds(rows, spec, names),
                                          scratch)
                except Exception as exc:  # noqa: BLE001 - one failed variant is a row, not a crash
                    results.append({"target": target, "variant": name, "error": f"{type(exc).__name__}: {exc}"})
                    continue
                scorer = scorers[name] = artifact_scorer(out, built, graph, spec, trial, args.model)
                row = {"target": target, "runtime": profile.runtime, "variant": name, "change": change,
                       "keep_fp_extra": list(extra), "build_s": round(time.perf_counter() - start, 1),
                       "images": len(images),
                       **drift_record(raw_scores(scorer, images), reference, mos, not args.golden, scale)}
                results.append(row)
                print(json.dumps(row), flush=True)
            # One-image latency of every variant vs the default, the scorers taking turns round by round.
            medians = latency_ms(scorers, images.take([0]), rounds=args.speed_rounds)
            for scorer in scorers.values():
                scorer.close()
            for row in results:
                if row["target"] == target and row.get("variant") in medians:
                    row["latency_ms"] = medians[row["variant"]]
                    row["latency_vs_default"] = medians[row["variant"]] / medians["default"]
    return {"model": args.model, "weights": GOLDEN_LABEL if args.golden else "trained",
            "evaluation": "CLIVE development images not in calibration_data", "images": len(images),
            "score_scale_mos_per_raw": scale, "loadavg": Path("/proc/loadavg").read_text().split()[:3],
            "srocc_fp32": None if args.golden else _srocc(reference, mos), "rows": results}


def bundles_study(args: argparse.Namespace) -> dict[str, Any]:
    """Each bundle through ``runtime.load`` (TensorRT: the export's ONNX Runtime CPU stand-in bundle
    of the Q/DQ graph), raw scores vs PyTorch FP32."""
    import torch

    from edge_iqa.export import calibration
    from edge_iqa.export.accuracy_control import latency_ms
    from edge_iqa.export.parity import raw_scores, reference_scorer
    from edge_iqa.export.staging import load_staged
    from edge_iqa.runtime.bundle import read_manifest

    torch.set_num_threads(args.threads)
    model, spec, scale = load_model_with_scale(args.model, args.golden)
    paths, mos = validation_set() if args.photos == "validation" else evaluation_set(args.eval_images)
    images = calibration.prepare_files(paths, spec, ("image",))
    reference = raw_scores(reference_scorer(model, spec, ("image",)), images)
    rows, scorers = [], {}
    proxies = Path(tempfile.mkdtemp(prefix="edge-iqa-proxies-"))
    for i, bundle in enumerate(args.bundles):
        manifest = read_manifest(bundle)
        scorer = load_staged(bundle, proxy_dir=proxies / str(i), threads=args.threads)
        scores = raw_scores(scorer, images)
        control = manifest.get("accuracy_control") or {}
        row = {"bundle": str(bundle), "target": manifest["target"]["name"], "precision": manifest.precision,
               "images": len(paths), **drift_record(scores, reference, mos, not args.golden, scale),
               "kept_blocks": control.get("kept_blocks"), "export_budget": control.get("budget"),
               "export_validation_delta": (control.get("final") or {}).get("delta_srocc")}
        rows.append(row)
        scorers[str(bundle)] = scorer
        print(json.dumps(row), flush=True)
    # One-image latency of each bundle vs the first one, the scorers taking turns round by round.
    medians = latency_ms(scorers, images.take([0]), rounds=args.speed_rounds)
    for scorer in scorers.values():
        scorer.close()
    for row in rows:
        row["latency_ms"] = medians[row["bundle"]]
        row["latency_vs_first"] = medians[row["bundle"]] / medians[rows[0]["bundle"]]
    return {"model": args.model, "photos": args.photos, "images": len(paths), "srocc_fp32": _srocc(reference, mos),
            "loadavg": Path("/proc/loadavg").read_text().split()[:3], "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("calibration", "variants", "bundles"):
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
    var = sub.choices["variants"]
    var.add_argument("--targets", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    var.add_argument("--variants", nargs="*", default=[], help="names from VARIANTS (default: all)")
    var.add_argument("--speed-rounds", type=int, default=5)
    sub.choices["bundles"].add_argument("bundles", nargs="+", type=Path, help="the first one is the speed reference")
    sub.choices["bundles"].add_argument("--speed-rounds", type=int, default=5)
    sub.choices["bundles"].add_argument("--photos", choices=["evaluation", "validation"], default="evaluation",
                                        help="CLIVE evaluation photos, or the export's 128 validation photos")
    args = parser.parse_args()
    studies = {"calibration": calibration_study, "variants": variants_study, "bundles": bundles_study}
    result = studies[args.command](args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), **result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
