"""Export the seed models (TOPIQ-NR, LoDa, GlintIQA, DGIQA) into bundles with the golden
deterministic weights: cpu fp32/fp16/int8, onnxruntime fp32, jetson fp32/fp16/int8.

No trained weights for the seed models exist offline, so each model is exported with the reference
fixtures' deterministic weights (``edge_iqa/models/golden_weights.py``), saved as an edge-iqa checkpoint first, and
with ``accuracy_gate=False`` (SROCC against MOS means nothing for these weights). The FP32 parity
gate (ONNX Runtime vs PyTorch) still applies to every bundle. Small user profiles keep the run short:
each inherits the shipped target and sets ``calibration_samples`` and the parity image counts.

The ONNX trace depends only on the attention form and opset, and the PyTorch reference scores only
on the weights and images, so both are computed once per model and reused by every precision
(``reused_work``: a copy of the same graph and the same scores that ``export_bundle`` would compute
again).

    python scripts/seed_bundles.py --models topiq_nr_224 glintiqa --out seed_bundles
    python scripts/seed_bundles.py --models loda --rows cpu/fp32 jetson/int8 --out seed_bundles

Writes ``OUT/<model>/<target>-<precision>/`` bundles, ``OUT/checkpoints/<model>.safetensors`` and
``OUT/summary.json`` (per bundle: seconds, parity, drift of the artifact on the held-out images).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the repository checkout first (its edge_iqa, and the reference fixtures it reads)

SEED_MODELS = ("topiq_nr_224", "topiq_nr_384", "topiq_nr", "glintiqa", "dgiqa", "loda")
ROWS = ("cpu/fp32", "cpu/fp16", "cpu/int8", "onnxruntime/fp32", "jetson/fp32", "jetson/fp16", "jetson/int8")
# Which reference fixture holds a model's deterministic weights (the TOPIQ variants share one network).
GOLDEN_KEYS = {"topiq_nr_224": "topiq_nr", "topiq_nr_384": "topiq_nr", "topiq_nr": "topiq_nr"}
WEIGHTS_LABEL = ("golden deterministic weights (edge_iqa/models/golden_weights.py); trained weights do not exist on "
                 "these machines")


def golden_checkpoint(model_name: str, out_dir: Path) -> Path:
    """The model with the reference fixture's deterministic weights, saved as an edge-iqa checkpoint."""
    import torch

    from edge_iqa.models import create_model, get_model_info
    from edge_iqa.models.checkpoint import load_into, save_checkpoint
    from edge_iqa.models.golden_weights import deterministic_state_dict

    path = out_dir / f"{model_name}.safetensors"
    if path.is_file() and path.with_suffix(".json").is_file():
        return path
    with torch.no_grad():
        model = create_model(model_name)
        load_into(model, deterministic_state_dict(GOLDEN_KEYS.get(model_name, model_name)), "golden weights")
    return save_checkpoint(model, path, model_name=model_name, preprocess=get_model_info(model_name).preprocess,
                           metadata={"weights": WEIGHTS_LABEL})


def small_profile(target: str, out_dir: Path, calibration_samples: int, parity_images: int,
                  accuracy_images: int) -> Path:
    """A user profile: the shipped target with fewer calibration and parity images. INT8 is judged on
    held-out images only, and the pipeline wants at least 8 of them (accuracy_images >= 8)."""
    path = out_dir / f"seed-{target}-{accuracy_images}.toml"
    path.write_text(f'inherits = "{target}"\nname = "seed-{target}"\n'
                    f"[quantization]\ncalibration_samples = {calibration_samples}\n"
                    f"[parity]\nimages = {parity_images}\naccuracy_images = {accuracy_images}\n")
    return path


@contextmanager
def reused_work(cache_dir: Path) -> Iterator[None]:
    """Work that is identical across the precisions of one model, done once:

    * the ONNX trace, per (attention form, opset, input size, max batch): a copy of the same graph
      ``export_bundle`` would trace again;
    * the PyTorch reference scores of the parity/validation images (same weights, same images).

    Use it for one model at a time (the caches are not keyed by model)."""
    from edge_iqa.checksums import sha256_hex
    from edge_iqa.export import pipeline

    original_export, original_score = pipeline.export_onnx, pipeline.raw_scores
    graphs: dict[tuple, Any] = {}
    references: dict[str, Any] = {}

    def cached_export(model: Any, path: Path, **kwargs: Any) -> Any:
        key = (kwargs["form"], kwargs["opset"], tuple(kwargs["input_size"]), kwargs["max_batch"])
        if key not in graphs:
            stored = cache_dir / f"{len(graphs)}-{kwargs['form']}-{kwargs['opset']}.onnx"
            graphs[key] = original_export(model, stored, **kwargs)
        graph = graphs[key]
        shutil.copyfile(graph.path, path)
        return graph.__class__(**{**graph.__dict__, "path": Path(path)})

    def cached_score(scorer: Any, images: Any) -> Any:
        if scorer.manifest.runtime != "torch":  # only the PyTorch reference is the same across precisions
            return original_score(scorer, images)
        key = sha256_hex(repr(scorer.inputs), (stack.tobytes() for stacks in images.stacks for stack in stacks))
        if key not in references:
            references[key] = original_score(scorer, images)
        return references[key].copy()

    pipeline.export_onnx, pipeline.raw_scores = cached_export, cached_score
    try:
        yield
    finally:
        pipeline.export_onnx, pipeline.raw_scores = original_export, original_score


def export_model(model_name: str, rows: list[str], out: Path, calibration_samples: int, parity_images: int,
                 accuracy_images: int, threads: int) -> list[dict[str, Any]]:
    import torch

    from edge_iqa.export import pipeline
    from edge_iqa.runtime.bundle import read_manifest

    torch.set_num_threads(threads)
    checkpoint = golden_checkpoint(model_name, out / "checkpoints")
    records = []
    cache_dir = out / "onnx-cache" / model_name
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        with reused_work(cache_dir):
            for row in rows:
                target, precision = row.split("/")
                profile = small_profile(target, out, calibration_samples, parity_images, accuracy_images)
                bundle = out / model_name / f"{target}-{precision}"
                start = time.perf_counter()
                record: dict[str, Any] = {"model": model_name, "row": row, "bundle": str(bundle)}
                try:
                    pipeline.export_bundle(model_name, profile, precision, checkpoint, bundle, accuracy_gate=False)
                except Exception as exc:  # noqa: BLE001 - record the failure, go on with the next row
                    record["error"] = f"{type(exc).__name__}: {str(exc)[:1500]}"
                else:
                    manifest = read_manifest(bundle)
                    record.update(parity=manifest["parity"]["onnx_fp32_vs_torch"], accuracy=manifest["accuracy"],
                                  graph=manifest["graph"], io=manifest["io"])
                record["seconds"] = round(time.perf_counter() - start, 1)
                records.append(record)
                print(json.dumps({k: record.get(k) for k in ("model", "row", "seconds", "error")}), flush=True)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(SEED_MODELS), choices=SEED_MODELS)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--out", type=Path, default=Path("seed_bundles"))
    parser.add_argument("--calibration-samples", type=int, default=8)
    parser.add_argument("--parity-images", type=int, default=4)
    parser.add_argument("--accuracy-images", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary_path = args.out / "summary.json"
    for model_name in args.models:
        records = export_model(model_name, args.rows, args.out, args.calibration_samples, args.parity_images,
                               args.accuracy_images, args.threads)
        done = {(r["model"], r["row"]) for r in records}
        # Re-read just before writing: another run may have added its models meanwhile.
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else []
        summary = [r for r in summary if (r["model"], r["row"]) not in done] + records
        summary_path.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
