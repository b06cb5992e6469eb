"""File -> score speed, end to end, of PyTorch FP32 eager and OpenVINO bundles, measured in one run.

Every row scores the same real photos from their files (decode + preprocessing + network + crop
averaging), batch 1 (``score_one``), with ``--threads`` intra-op threads; then the whole list in one
``score(paths)`` call (images/s), for each bundle also as ``NAME sequential``: the list path without
read-ahead and without OpenVINO's list streams (``prefetch=0``, ``list_streams=1``), the way lists
ran before issue 13's overlap. Rows are rotated every round, so a busy machine's drift hits all
rows alike; ratios against the PyTorch row are computed within the run. Both wall time and the
process's CPU time are recorded (CPU time is steadier on a shared machine), with the load average
before and after. For the runtime rows the time is also split into decode (``load_image``),
preprocessing (``Scorer.preprocess``: float32 rows, or uint8 pixels) and the backend call on the preprocessed row.

    python scripts/e2e_speed.py --bundle int8=BUNDLE --bundle fp32=BUNDLE [--model edge_hybrid_n]
        [--images DIR] [--count 48] [--rounds 3] [--threads 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from edge_iqa.bench.report import print_json_report

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = REPO.parent / "shared" / "datasets" / "clive" / "images"


def _clock(fn: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def stage_split(scorer, paths: list[Path]) -> dict[str, float]:
    """Median ms per image of decode, preprocessing and the backend call (runtime rows)."""
    from edge_iqa.data.imageio import load_image

    decode, prep, net = [], [], []
    for path in paths:
        start = time.perf_counter()
        image = load_image(path)
        mid = time.perf_counter()
        rows = scorer.preprocess(image)  # the bundle's input rows: uint8 pixels or float32 rows
        end = time.perf_counter()
        scorer.backend.run(rows)
        net.append(time.perf_counter() - end)
        decode.append(mid - start)
        prep.append(end - mid)
    return {"decode_ms": statistics.median(decode) * 1e3, "preprocess_ms": statistics.median(prep) * 1e3,
            "backend_ms": statistics.median(net) * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", action="append", default=[], metavar="NAME=DIR",
                        help="an OpenVINO (or other runtime) bundle row, e.g. int8=bundles/cpu")
    parser.add_argument("--model", default="edge_hybrid_n", help="the PyTorch FP32 eager row ('' to skip)")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    load_before = Path("/proc/loadavg").read_text().split()[:3]
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))
    paths = paths[: args.count]
    rows: dict[str, Callable[[Path], object]] = {}
    list_rows: dict[str, Callable[[list[Path]], object]] = {}
    scorers = {}
    if args.model:
        import torch

        from edge_iqa.predict import TorchScorer

        torch.set_num_threads(args.threads)
        torch_scorer = TorchScorer.from_name(args.model, batch_size=16)
        rows["pytorch fp32 eager"] = lambda p: torch_scorer.score([p])
        list_rows["pytorch fp32 eager"] = torch_scorer.score
    import edge_iqa.runtime

    for entry in args.bundle:
        name, _, folder = entry.partition("=")
        scorer = edge_iqa.runtime.load(folder, threads=args.threads)
        scorers[name] = scorer
        rows[name] = scorer.score_one
        list_rows[name] = scorer.score
        options = {"list_streams": 1} if scorer.manifest.runtime in ("openvino", "onnxruntime") else {}
        sequential = edge_iqa.runtime.load(folder, threads=args.threads, prefetch=0, backend_options=options)
        list_rows[f"{name} sequential"] = sequential.score
    names, list_names = list(rows), list(list_rows)
    for name in list_names:  # warm-up (and the list set-up's compile), never timed
        list_rows[name](paths[:4])
    for name in names:  # warm-up, never timed
        for path in paths[:3]:
            rows[name](path)
    per_image: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": []} for n in names}
    per_list: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": []} for n in list_names}
    for round_index in range(args.rounds):
        order = names[round_index % len(names):] + names[: round_index % len(names)]
        for name in order:
            for path in paths:
                wall, cpu = _clock(lambda name=name, path=path: rows[name](path))
                per_image[name]["wall"].append(wall)
                per_image[name]["cpu"].append(cpu)
        list_order = list_names[round_index % len(list_names):] + list_names[: round_index % len(list_names)]
        for name in list_order:
            wall, cpu = _clock(lambda name=name: list_rows[name](paths))
            per_list[name]["wall"].append(wall)
            per_list[name]["cpu"].append(cpu)
    result: dict[str, dict[str, float]] = {name: {} for name in list_names}
    for name in list_names:
        result[name] = {"list_images_per_s": len(paths) / statistics.median(per_list[name]["wall"]),
                        "list_cpu_ms_per_image": statistics.median(per_list[name]["cpu"]) / len(paths) * 1e3}
    for name in names:
        result[name].update({
            "file_to_score_ms": statistics.median(per_image[name]["wall"]) * 1e3,
            "file_to_score_cpu_ms": statistics.median(per_image[name]["cpu"]) * 1e3,
        })
        if name in scorers:
            result[name].update(stage_split(scorers[name], paths[:16]))
    reference = result.get("pytorch fp32 eager")
    for name in names:
        if reference:
            result[name]["speedup_vs_pytorch_wall"] = reference["file_to_score_ms"] / result[name]["file_to_score_ms"]
            result[name]["speedup_vs_pytorch_cpu"] = (reference["file_to_score_cpu_ms"]
                                                      / result[name]["file_to_score_cpu_ms"])
    if "int8" in result and "fp32" in result:
        result["int8_vs_fp32"] = {
            "wall": result["fp32"]["file_to_score_ms"] / result["int8"]["file_to_score_ms"],
            "cpu": result["fp32"]["file_to_score_cpu_ms"] / result["int8"]["file_to_score_cpu_ms"]}
    report = {"images": len(paths), "rounds": args.rounds, "threads": args.threads, "rows": result,
              "loadavg_before": load_before, "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
              "command": "python scripts/e2e_speed.py " + " ".join(f"--bundle {b}" for b in args.bundle)
              + f" --model {args.model} --count {args.count} --rounds {args.rounds} --threads {args.threads}"}
    print_json_report(report, args.json)


if __name__ == "__main__":
    main()
