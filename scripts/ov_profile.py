"""Where an OpenVINO bundle's network spends its time on this CPU: per-layer profiling.

Compiles the bundle's network with the runtime's settings plus ``PERF_COUNT`` (dynamic batch as
the runtime does, or ``--static`` for a batch-1 reshape), runs ``--iterations`` batch-1 calls on a
seeded input and sums ``get_profiling_info`` per layer over them. Reports:

- time per layer type and the kernel + runtime precision it ran with (``exec_type``, e.g.
  ``brgconv_avx512_core_vnni_I8`` or ``jit_avx512_FP32``): how much runs in integer kernels, how
  much in FP32, how much is reorders / FakeQuantize / element-wise glue;
- the slowest layers by name;
- from the compiled graph (``get_runtime_model``): each executed op's output precision.

    python scripts/ov_profile.py BUNDLE [--threads 2] [--iterations 50] [--static] [--top 25] [--json OUT]
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import openvino as ov

from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.runtime.backends.base import input_records
from edge_iqa.runtime.backends.openvino import as_runtime_compiles, default_config
from edge_iqa.runtime.bundle import read_manifest


def profile(bundle: Path, threads: int, iterations: int, static: bool) -> dict:
    manifest = read_manifest(bundle)
    core = ov.Core()
    model = core.read_model(str(bundle / manifest.model_file))
    records = input_records(manifest)
    spec = PreprocessSpec.from_dict(manifest.preprocess)
    as_runtime_compiles(model, manifest)
    if static:
        model.reshape({port.get_any_name(): ov.PartialShape([1, *record.shape[1:]])
                       for port, record in zip(model.inputs, records, strict=True)})
    config = {**default_config(manifest, threads), "PERF_COUNT": True}
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    feed = [record.example_rows(1, spec.input_size) for record in records]
    for _ in range(5):
        request.infer(feed)
    per_layer: dict[str, dict] = {}
    for _ in range(iterations):
        request.infer(feed)
        for info in request.get_profiling_info():
            if info.status != ov.ProfilingInfo.Status.EXECUTED:
                continue
            entry = per_layer.setdefault(info.node_name, {"type": info.node_type, "exec_type": info.exec_type,
                                                          "us": 0.0})
            entry["us"] += info.real_time.total_seconds() * 1e6 / iterations
    by_kind: dict[tuple[str, str], float] = collections.defaultdict(float)
    for entry in per_layer.values():
        by_kind[(entry["type"], _kernel_precision(entry["exec_type"]))] += entry["us"]
    total = sum(by_kind.values())
    runtime_precisions = collections.Counter(
        (op.get_rt_info()["layerType"].astype(str), op.get_rt_info()["outputPrecisions"].astype(str))
        for op in compiled.get_runtime_model().get_ordered_ops())
    return {"bundle": str(bundle), "static_batch_1": static, "threads": threads,
            "config": {k: str(v) for k, v in config.items()}, "total_ms": total / 1000.0,
            "by_type_and_precision": sorted(({"type": t, "precision": p, "ms": us / 1000.0, "share": us / total}
                                             for (t, p), us in by_kind.items()), key=lambda r: -r["ms"]),
            "layers": sorted(({"name": n, **e, "ms": e.pop("us") / 1000.0} for n, e in per_layer.items()),
                             key=lambda r: -r["ms"]),
            "compiled_ops": [{"type": t, "output_precision": p, "count": c}
                             for (t, p), c in runtime_precisions.most_common()]}


def _kernel_precision(exec_type: str) -> str:
    """The precision suffix OpenVINO's CPU plugin puts on a kernel name (``..._I8``, ``..._FP32``)."""
    tail = exec_type.rsplit("_", 1)[-1]
    return tail if tail in ("I8", "U8", "FP32", "BF16", "FP16", "I32") else exec_type


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--static", action="store_true", help="reshape to a static batch of 1 first")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--json", type=Path, help="write the full report here")
    args = parser.parse_args()
    report = profile(args.bundle, args.threads, args.iterations, args.static)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    print(f"{report['bundle']}  static batch 1: {report['static_batch_1']}  threads {args.threads}  "
          f"summed layer time {report['total_ms']:.2f} ms per batch-1 call")
    print("\nby layer type and kernel precision:")
    for row in report["by_type_and_precision"]:
        if row["share"] >= 0.005:
            print(f"  {row['type']:24s} {row['precision']:40s} {row['ms']:7.3f} ms {row['share']:6.1%}")
    print(f"\nslowest {args.top} layers:")
    for row in report["layers"][: args.top]:
        print(f"  {row['ms']:7.3f} ms  {row['type']:18s} {row['exec_type']:36s} {row['name'][:90]}")


if __name__ == "__main__":
    main()
