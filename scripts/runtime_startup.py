"""Start-up cost of the torch-free runtime: ``import edge_iqa.runtime`` + ``load(bundle)`` wall time and
the resident memory of a scoring process, each run in a fresh interpreter.

    python scripts/runtime_startup.py BUNDLE [--image PHOTO] [--repeat 5] [--threads N]
        [--backend-options '{"cache_dir": "/tmp/ov-cache"}']

Without a bundle from ``edge-iqa export``, build a stand-in first (untrained weights of a
registered model; start-up time and memory do not depend on the weight values):

    python scripts/runtime_startup.py --make MODEL --runtime onnxruntime|openvino --out DIR

The issue's targets: import + load under 1 s, RSS under 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = REPO / "calibration_data" / "images" / "1000.JPG"


def child(bundle: str, image: str, threads: int | None, options: dict) -> None:
    """The measured process: only what a camera's scoring service does."""
    t0 = time.perf_counter()
    import resource

    import psutil  # measuring tool only; imported before the clock's first mark

    proc = psutil.Process()
    rss_start = proc.memory_info().rss
    t1, c1 = time.perf_counter(), time.process_time()
    import edge_iqa.runtime

    t2 = time.perf_counter()
    scorer = edge_iqa.runtime.load(bundle, threads=threads, backend_options=options)
    t3, c3 = time.perf_counter(), time.process_time()
    rss_loaded = proc.memory_info().rss
    first = scorer.score_one(image)
    t4, c4, epoch4 = time.perf_counter(), time.process_time(), time.time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    steady = []
    for _ in range(10):
        s = time.perf_counter()
        scorer.score_one(image)
        steady.append(time.perf_counter() - s)
    forbidden = sorted(m for m in ("torch", "timm", "onnx", "scipy") if m in sys.modules)
    print(json.dumps({
        "import_s": t2 - t1, "load_s": t3 - t2, "import_plus_load_s": t3 - t1,
        # CPU seconds (all threads): less sensitive than wall time to other jobs on a shared machine.
        "import_plus_load_cpu_s": c3 - c1, "first_score_s": t4 - t3,
        # Import + load + first score; and the whole process's CPU up to the first score
        # (interpreter start included; psutil's import is the only measuring overhead in it).
        "to_first_score_s": t4 - t1, "to_first_score_cpu_s": c4 - c1,
        "process_cpu_at_first_score_s": usage.ru_utime + usage.ru_stime, "first_score_epoch": epoch4,
        "steady_score_s": statistics.median(steady), "score": first,
        "rss_start_mb": rss_start / 2**20, "rss_after_load_mb": rss_loaded / 2**20,
        "rss_after_scoring_mb": proc.memory_info().rss / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # ru_maxrss keeps a big parent's peak across fork + exec; VmHWM starts afresh at exec.
        "vm_hwm_mb": _vm_hwm_mb(),
        "heavy_modules": forbidden, "setup_s": t1 - t0, "info": scorer.info,
    }, default=str))


def _vm_hwm_mb() -> float | None:
    try:
        line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) / 1024


def measure(bundle: Path, image: Path, repeat: int, threads: int | None, options: str) -> None:
    load_before = os.getloadavg()
    runs = []
    for _ in range(repeat):
        cmd = [sys.executable, __file__, "--child", str(bundle), "--image", str(image), "--backend-options", options]
        if threads:
            cmd += ["--threads", str(threads)]
        start, epoch = time.perf_counter(), time.time()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO).stdout
        run = json.loads(out.strip().splitlines()[-1])
        run["process_wall_s"] = time.perf_counter() - start
        # From spawning `python` to the first score, as a user of a scoring service sees it.
        run["spawn_to_first_score_s"] = run["first_score_epoch"] - epoch
        runs.append(run)
    info = runs[0]["info"]
    print(f"bundle {bundle}: {info['model']} {info['runtime']} {info['precision']} "
          f"{info['input_size'][0]}x{info['input_size'][1]}, backend_options={options}, {repeat} fresh processes, "
          "median (min-max):")
    for key in ("import_s", "load_s", "import_plus_load_s", "import_plus_load_cpu_s", "first_score_s",
                "to_first_score_s", "to_first_score_cpu_s", "process_cpu_at_first_score_s", "spawn_to_first_score_s",
                "steady_score_s", "process_wall_s", "rss_start_mb", "rss_after_load_mb", "rss_after_scoring_mb",
                "peak_rss_mb"):
        values = [r[key] for r in runs]
        print(f"  {key:22s} {statistics.median(values):9.3f}  ({min(values):.3f}-{max(values):.3f})")
    print(f"  heavy modules imported: {runs[0]['heavy_modules'] or 'none'}; load average before: "
          f"{load_before[0]:.1f}, after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def make_stand_in(model_name: str, runtime: str, out: Path) -> None:
    """An fp32 bundle of a registered model through the export side's ONNX exporter (needs torch)."""
    import torch

    from edge_iqa.export.onnx_export import export_onnx
    from edge_iqa.models import create_model, get_model_info
    from edge_iqa.runtime.bundle import write_bundle

    torch.manual_seed(0)
    info = get_model_info(model_name)
    model = create_model(model_name).eval()

    def populate(staging: Path) -> dict:
        graph = export_onnx(model, staging / "model.onnx", input_names=info.inputs,
                            input_size=info.preprocess.input_size,
                            form="ort_mha" if runtime == "onnxruntime" else "onnx_attention")
        model_file = "model.onnx"
        if runtime == "openvino":
            import openvino as ov

            ov.save_model(ov.convert_model(str(staging / "model.onnx")), str(staging / "model.xml"),
                          compress_to_fp16=False)
            (staging / "model.onnx").unlink()
            model_file = "model.xml"
        return {"edge_iqa_version": "0.1.0", "runtime": runtime, "precision": "fp32", "model_file": model_file,
                "io": graph.io_record(), "preprocess": info.preprocess.to_dict(),
                "output_transform": {"scale": 1.0, "offset": 0.0},
                "model": {"name": model_name, "family": info.family, "inputs": list(info.inputs),
                          "weights": "untrained stand-in (scripts/runtime_startup.py --make)"},
                "target": {"name": f"stand-in-{runtime}", "max_batch": 16}}

    write_bundle(out, populate)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", nargs="?", type=Path)
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--backend-options", default="{}", help='JSON, e.g. \'{"cache_dir": "/var/cache/iqa"}\'')
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--make", metavar="MODEL", help="build a stand-in fp32 bundle of MODEL")
    parser.add_argument("--runtime", default="onnxruntime", choices=["onnxruntime", "openvino"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        child(str(args.bundle), str(args.image), args.threads, json.loads(args.backend_options))
    elif args.make:
        make_stand_in(args.make, args.runtime, args.out or Path(f"bundles/{args.make}-{args.runtime}-standin"))
    elif args.bundle:
        measure(args.bundle, args.image, args.repeat, args.threads, args.backend_options)
    else:
        parser.error("give a BUNDLE to measure, or --make MODEL to build a stand-in")


if __name__ == "__main__":
    main()
