"""Measure the seed models and their bundles: parameters, GMAC per image, CPU latency/throughput
of PyTorch FP32 eager vs each bundle, and the drift of every bundle against PyTorch FP32.

All figures use the **golden deterministic weights** (``edge_iqa/models/golden_weights.py``); trained weights do not
exist on these machines, so drift is a property of the graphs and quantizers on these weights, not
a promise for trained checkpoints. Bundles come from ``scripts/seed_bundles.py``.

Per model, at its native protocol (all crops of an image are one batch, their scores averaged):

* parameters; GMAC per image = FLOPs / 2 counted by ``torch.utils.flop_counter.FlopCounterMode``
  on one crop (explicit MatMul-Softmax attention, so attention matmuls are counted) x crops;
* evaluation images: a seeded sample of CLIVE development images that are NOT among the 256
  shipped calibration images (``bench.dataset.load_eval_set``), decoded and preprocessed once,
  outside the timed region (times are network + crop averaging only);
* PyTorch FP32 eager and each bundle score the same images one image per call; latency = median
  seconds per image, throughput = images / total seconds, same thread count for every row;
  bundles run through the torch-free runtime (``edge_iqa.runtime.load`` + ``Scorer.score_tensor``);
  DGIQA (two inputs) gets the depth proxy of ``export/calibration.py`` as its depth rows, the same
  rows its PyTorch reference sees;
* jetson rows: drift only, measured on the CPU with ONNX Runtime (INT8: the Q/DQ graph; FP16: an
  FP16 copy), the proxy the exporter records; no TensorRT speed is measured here.

    python scripts/seed_models_table.py --bundles seed_bundles --models topiq_nr_224 glintiqa \
        --images 32 --threads 2 --out docs/models/seed_table.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from seed_bundles import ROWS, golden_checkpoint  # noqa: E402

SHARED = REPO.parent / "shared"
SPEED_ROWS = ("cpu/fp32", "cpu/fp16", "cpu/int8", "onnxruntime/fp32")


def gmac_per_image(model: Any, spec: Any, input_names: tuple[str, ...]) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from edge_iqa.models.layers.attention import attention_form

    crop = tuple(torch.zeros(1, 3, *spec.input_size) for _ in input_names)
    with torch.inference_mode(), attention_form("matmul_softmax"), FlopCounterMode(display=False) as counter:
        model(*crop)
    return counter.get_total_flops() / 2 / 1e9 * spec.num_crops


def eval_images(count: int, seed: int) -> tuple[list[Path], np.ndarray]:
    from edge_iqa.bench.dataset import load_eval_set
    from edge_iqa.bench.suite import DatasetSpec

    evalset = load_eval_set(DatasetSpec(labels=SHARED / "datasets" / "clive" / "labels.csv",
                                        exclude_calibration=True, limit=count, seed=seed))
    return evalset.paths, evalset.mos


def timed_scores(score_one: Any, feeds: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, list[float]]:
    score_one(feeds[0])  # warm-up (first-call allocations, lazy compilation)
    scores, seconds = [], []
    for feed in feeds:
        start = time.perf_counter()
        scores.append(float(score_one(feed)))
        seconds.append(time.perf_counter() - start)
    return np.array(scores), seconds


def drift_record(scores: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    from scipy.stats import spearmanr

    diff = np.abs(scores - reference)
    rank = spearmanr(scores, reference).statistic if np.ptp(scores) > 0 and np.ptp(reference) > 0 else float("nan")
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()), "rank_agreement": float(rank)}


def speed_record(seconds: list[float]) -> dict[str, float]:
    return {"latency_ms_p50": 1e3 * float(np.median(seconds)), "images_per_s": len(seconds) / float(np.sum(seconds))}


def bundle_scorer(bundle: Path, threads: int) -> Any:
    """feeds -> raw score of the image (crops averaged), through ``runtime.load`` (DGIQA with its
    depth rows); jetson rows through the export's ONNX Runtime CPU stand-in bundle (TensorRT needs
    the device), as the export's gate scores them."""
    from edge_iqa.export.staging import load_staged

    scorer = load_staged(bundle, proxy_dir=Path(tempfile.mkdtemp(prefix="edge-iqa-proxy-")) / "bundle",
                         threads=threads)
    # The depth rows ride under the image rows (Scorer.score_tensor).
    return lambda feed: float(scorer.score_tensor(feed["image"], depth=feed.get("depth"), raw=True)[0])


def measure_model(model_name: str, bundles: Path, count: int, seed: int, threads: int,
                  rows: tuple[str, ...] = ROWS) -> dict[str, Any]:
    import torch

    from edge_iqa.export.calibration import prepare_image
    from edge_iqa.export.parity import reference_scorer
    from edge_iqa.export.pipeline import load_model_for_export
    from edge_iqa.models import get_model_info

    torch.set_num_threads(threads)
    info = get_model_info(model_name)
    names = tuple(info.inputs)
    model, spec, _, _ = load_model_for_export(model_name, golden_checkpoint(model_name, bundles / "checkpoints"))
    paths, _ = eval_images(count, seed)
    feeds = [dict(zip(names, prepare_image(p, spec, names), strict=True)) for p in paths]
    record: dict[str, Any] = {
        "model": model_name, "weights": "golden deterministic weights; trained weights do not exist on these machines",
        "protocol": {"input_size": list(spec.input_size), "crops": spec.num_crops, "inputs": list(names),
                     "depth": "stand-in depth map (the photo's channel mean) through the runtime's depth path"
                     if "depth" in names else None},
        "parameters": sum(p.numel() for p in model.parameters()),
        "gmac_per_image": gmac_per_image(model, spec, names),
        "images": len(paths), "image_files": [p.name for p in paths], "threads": threads,
        "loadavg_start": os.getloadavg()[0], "rows": {},
    }
    scorer = reference_scorer(model, spec, names)  # the torch backend, on the runtime's scoring path
    reference, seconds = timed_scores(
        lambda feed: float(scorer.score_tensor(feed["image"], depth=feed.get("depth"), raw=True)[0]), feeds)
    record["reference_score_std"] = float(np.std(reference))
    record["rows"]["pytorch/fp32"] = {**speed_record(seconds), **drift_record(reference, reference)}
    print(json.dumps({"model": model_name, "row": "pytorch/fp32", **record["rows"]["pytorch/fp32"]}), flush=True)
    for row in rows:
        bundle = bundles / model_name / row.replace("/", "-")
        if not (bundle / "manifest.json").is_file():
            record["rows"][row] = {"missing": str(bundle)}
            continue
        scores, seconds = timed_scores(bundle_scorer(bundle, threads), feeds)
        entry = drift_record(scores, reference)
        if row in SPEED_ROWS:
            entry.update(speed_record(seconds))
        record["rows"][row] = entry
        print(json.dumps({"model": model_name, "row": row, **entry}), flush=True)
    record["loadavg_end"] = os.getloadavg()[0]
    return record


def markdown(records: list[dict[str, Any]]) -> str:
    # Load average (1 min) at the start and end of the model's run: the machine is shared, so the
    # latencies are only comparable within one model's rows.
    lines = ["| model | crops | images | load avg | PyTorch score std | params (M) | GMAC / image | row | "
             "p50 latency (ms / image) | images/s | speed-up vs PyTorch | "
             "max abs diff | mean abs diff | rank agreement |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for rec in records:
        base = rec["rows"]["pytorch/fp32"]["latency_ms_p50"]
        head = (f"`{rec['model']}`", str(rec["protocol"]["crops"]), str(rec["images"]),
                f"{rec['loadavg_start']:.1f}-{rec.get('loadavg_end', float('nan')):.1f}",
                f"{rec['reference_score_std']:.3g}", f"{rec['parameters'] / 1e6:.1f}",
                f"{rec['gmac_per_image']:.1f}")
        for i, (row, entry) in enumerate(rec["rows"].items()):
            if "missing" in entry:
                continue
            speed = ("-", "-", "-")
            if "latency_ms_p50" in entry:
                speed = (f"{entry['latency_ms_p50']:.0f}", f"{entry['images_per_s']:.2f}",
                         f"{base / entry['latency_ms_p50']:.2f}x")
            drift = ("(reference)",) * 3 if row == "pytorch/fp32" else (
                f"{entry['max_abs_diff']:.2e}", f"{entry['mean_abs_diff']:.2e}", f"{entry['rank_agreement']:.4f}")
            cells = head if i == 0 else ("",) * len(head)
            label = row + (" (ORT CPU proxy)" if row.startswith("jetson") else "")
            lines.append("| " + " | ".join((*cells, label, *speed, *drift)) + " |")
    return "\n".join(lines)


def cost_markdown(models: list[str], threads: int) -> str:
    """Parameters and GMAC per image (all crops) of each model, at its registered protocol."""
    import torch

    from edge_iqa.models import create_model, get_model_info

    torch.set_num_threads(threads)
    lines = ["| model | input | crops | params (M) | GMAC / crop | GMAC / image |", "|---|---|---|---|---|---|"]
    for name in models:
        info = get_model_info(name)
        model = create_model(name).eval()
        spec, names = info.preprocess, tuple(info.inputs)
        gmac = gmac_per_image(model, spec, names)
        size = "x".join(map(str, spec.input_size)) + (" (+ depth)" if "depth" in names else "")
        params = sum(p.numel() for p in model.parameters()) / 1e6
        lines.append(f"| `{name}` | {size} | {spec.num_crops} | {params:.1f} | "
                     f"{gmac / spec.num_crops:.2f} | {gmac:.1f} |")
    return "\n".join(lines)


def export_records(bundles: Path, models: list[str]) -> list[dict[str, Any]]:
    """Per bundle in ``bundles/<model>/<target>-<precision>/``: its manifest's parity and accuracy, and
    the export seconds from ``summary.json`` when recorded."""
    summary_path = bundles / "summary.json"
    seconds = {(r["model"], r["row"]): r.get("seconds") for r in
               (json.loads(summary_path.read_text()) if summary_path.is_file() else [])}
    records = []
    for model_name in models:
        for row in ROWS:
            manifest_path = bundles / model_name / row.replace("/", "-") / "manifest.json"
            if manifest_path.is_file():
                manifest = json.loads(manifest_path.read_text())
                records.append({"model": model_name, "row": row, "accuracy": manifest["accuracy"],
                                "parity": manifest["parity"]["onnx_fp32_vs_torch"],
                                "seconds": seconds.get((model_name, row))})
    return records


def export_drift_markdown(summary: list[dict[str, Any]], models: list[str]) -> str:
    """The drift each bundle's export measured (manifest ``accuracy``: the artifact in its runtime vs
    PyTorch on the held-out shipped images, never used for calibration)."""
    lines = ["| model | row | held-out images | max abs diff | mean abs diff | rank agreement | ONNX fp32 vs PyTorch | "
             "export s |", "|---|---|---|---|---|---|---|---|"]
    for rec in sorted(summary, key=lambda r: (models.index(r["model"]) if r["model"] in models else 99,
                                               ROWS.index(r["row"]))):
        if rec["model"] not in models:
            continue
        acc, gate = rec["accuracy"], rec["parity"]
        lines.append(f"| `{rec['model']}` | {rec['row']} | {acc['images']} | {acc['max_abs_diff']:.2e} | "
                     f"{acc['mean_abs_diff']:.2e} | {acc['rank_agreement']:.4f} | {gate['max_abs_diff']:.1e} | "
                     f"{'-' if rec['seconds'] is None else round(rec['seconds'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=Path, default=Path("seed_bundles"))
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS,
                        help="Bundle rows to measure (PyTorch FP32 eager is always measured).")
    parser.add_argument("--out", type=Path, default=Path("seed_table.json"))
    parser.add_argument("--export-drift", action="store_true",
                        help="Also print the drift each bundle's export recorded (from the manifests in --bundles).")
    parser.add_argument("--markdown-only", action="store_true", help="Print the table of --out and exit.")
    parser.add_argument("--cost-only", action="store_true", help="Print parameters and GMAC per image and exit.")
    args = parser.parse_args()
    if args.cost_only:
        print(cost_markdown(args.models, args.threads))
        return
    records = json.loads(args.out.read_text()) if args.out.is_file() else []
    if not args.markdown_only:
        for model_name in args.models:
            record = measure_model(model_name, args.bundles, args.images, args.seed, args.threads, tuple(args.rows))
            records = [r for r in records if r["model"] != model_name] + [record]
            args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(markdown([r for r in records if r["model"] in args.models]))
    if args.export_drift:
        print()
        print(export_drift_markdown(export_records(args.bundles, args.models), args.models))


if __name__ == "__main__":
    main()
