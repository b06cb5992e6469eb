"""This CPU's INT8 ceiling under OpenVINO, and how close a bundle's network gets to it (GMAC/s).

The ceiling: small graphs of the two dense shapes a vision network is made of, a chain of
MatMuls (transformer MLP/attention projections) and a chain of 3x3 convolutions, quantized with
NNCF exactly as the exporter quantizes (``nncf.quantize``, mixed preset, CPU target) and compiled
with the runtime's settings (``edge_iqa.runtime.backends.openvino.default_config``: LATENCY hint,
f32 inference precision, ``--threads``). Their MAC rate is what this CPU's integer kernels sustain.

The network: the bundle's own ``model.xml``, compiled through ``edge_iqa.runtime.load`` (so with
every setting the runtime uses), batch-1 calls of ``score_tensor``'s backend; MACs counted from
the graph's Convolution / GroupConvolution / MatMul shapes at batch 1 (the float model's ops; an
INT8 bundle has the same ones behind FakeQuantize).

    python scripts/ov_int8_ceiling.py [--bundle BUNDLE] [--threads 2] [--seconds 3] [--rounds 2] [--json OUT]

Prints one JSON object: per graph GMAC and GMAC/s (median over rounds; rounds alternate the rows so
a shared machine's drift hits all alike), the ceiling (the best graph), the network's GMAC/s and
its fraction of the ceiling, and the load average before and after.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops

from edge_iqa.bench.report import print_json_report


def _matmul_chain(tokens: int = 196, width: int = 384, hidden: int = 1536, blocks: int = 3) -> tuple[ov.Model, float]:
    """MLP blocks (width -> hidden -> width, GELU between): the transformer's dense part."""
    rng = np.random.default_rng(0)
    x = ops.parameter([1, tokens, width], ov.Type.f32, name="x")
    node, macs = x, 0
    for _ in range(blocks):
        w1 = ops.constant(rng.standard_normal((width, hidden), dtype=np.float32) * 0.05)
        w2 = ops.constant(rng.standard_normal((hidden, width), dtype=np.float32) * 0.05)
        node = ops.matmul(ops.gelu(ops.matmul(node, w1, False, False), "erf"), w2, False, False)
        macs += 2 * tokens * width * hidden
    return ov.Model([node], [x], "matmul_chain"), macs / 1e9


def _conv_chain(channels: int = 64, side: int = 56, layers: int = 4) -> tuple[ov.Model, float]:
    """3x3 convolutions with ReLU: the convolutional stem/stage's dense part."""
    rng = np.random.default_rng(1)
    x = ops.parameter([1, channels, side, side], ov.Type.f32, name="x")
    node, macs = x, 0
    for _ in range(layers):
        w = ops.constant(rng.standard_normal((channels, channels, 3, 3), dtype=np.float32) * 0.05)
        node = ops.relu(ops.convolution(node, w, [1, 1], [1, 1], [1, 1], [1, 1]))
        macs += side * side * channels * channels * 9
    return ov.Model([node], [x], "conv3x3_chain"), macs / 1e9


def quantized(model: ov.Model) -> ov.Model:
    """NNCF INT8 with the exporter's preset and device, on a few random calibration inputs."""
    import nncf

    nncf.set_log_level(logging.WARNING)
    shape = tuple(model.inputs[0].get_partial_shape().to_shape())
    rng = np.random.default_rng(2)
    data = [rng.standard_normal(shape, dtype=np.float32) for _ in range(4)]
    return nncf.quantize(model, nncf.Dataset(data), preset=nncf.QuantizationPreset.MIXED,
                         target_device=nncf.TargetDevice.CPU, subset_size=len(data))


@dataclass(frozen=True)
class _ManifestPrecision:
    """What ``default_config`` reads of a bundle's manifest, for graphs that have none."""

    precision: str

    def section(self, name: str) -> dict:
        return {}


def runtime_config(threads: int, precision: str = "int8") -> dict:
    from edge_iqa.runtime.backends.openvino import default_config

    return default_config(_ManifestPrecision(precision), threads)


def graph_macs(model: ov.Model) -> float:
    """GMACs of the model's Convolution / GroupConvolution / MatMul ops at its current (static) shapes."""
    total = 0
    for node in model.get_ordered_ops():
        kind = node.get_type_name()
        if kind not in ("Convolution", "GroupConvolution", "MatMul"):
            continue
        out = node.get_output_partial_shape(0)
        weights = node.get_input_partial_shape(1)
        if out.is_dynamic or weights.is_dynamic:
            continue
        out, weights = list(out.to_shape()), list(weights.to_shape())
        if kind == "Convolution":  # weights [O, I, kh, kw]
            total += int(np.prod(out)) * int(np.prod(weights[1:]))
        elif kind == "GroupConvolution":  # weights [G, O/G, I/G, kh, kw]
            total += int(np.prod(out)) * int(np.prod(weights[2:]))
        else:
            a = list(node.get_input_partial_shape(0).to_shape())
            transpose_a = node.get_attributes().get("transpose_a", False)
            inner = a[-2] if transpose_a else a[-1]
            total += int(np.prod(out)) * inner
    return total / 1e9


def timed_rate(call: Callable[[], object], gmac: float, seconds: float) -> float:
    """GMAC/s of ``call`` (median per-call time over ``seconds`` of calls, after warm-up)."""
    for _ in range(5):
        call()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 10:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return gmac / statistics.median(times)


def network_call(bundle: Path, threads: int) -> tuple[Callable[[], object], float]:
    """A batch-1 backend call of the bundle through the runtime, and the network's GMACs."""
    import edge_iqa.runtime
    from edge_iqa.runtime.backends.base import input_records

    scorer = edge_iqa.runtime.load(bundle, threads=threads)
    manifest = scorer.manifest
    core = ov.Core()
    model = core.read_model(str(bundle / manifest.model_file))
    model.reshape({port.get_any_name(): ov.PartialShape([1, *list(port.get_partial_shape())[1:]])
                   for port in model.inputs})
    gmac = graph_macs(model)
    rows = [record.example_rows(1, scorer.spec.input_size, seed=3) for record in input_records(manifest)]
    return (lambda: scorer.backend.run(*rows)), gmac


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="an OpenVINO bundle whose network to compare with the ceiling")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per row and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the result here (NNCF prints progress bars on stdout)")
    args = parser.parse_args()

    load_before = Path("/proc/loadavg").read_text().split()[:3]
    core = ov.Core()
    config = runtime_config(args.threads)
    rows: dict[str, tuple[Callable[[], object], float]] = {}
    for build in (_matmul_chain, _conv_chain):
        model, gmac = build()
        compiled = core.compile_model(quantized(model), "CPU", config)
        request = compiled.create_infer_request()
        feed = np.random.default_rng(4).standard_normal(tuple(model.inputs[0].get_shape()), dtype=np.float32)
        rows[f"int8 {model.get_friendly_name()}"] = ((lambda r=request, f=feed: r.infer([f])), gmac)
        fp32 = core.compile_model(model, "CPU", config).create_infer_request()
        rows[f"fp32 {model.get_friendly_name()}"] = ((lambda r=fp32, f=feed: r.infer([f])), gmac)
    if args.bundle:
        rows["network"] = network_call(args.bundle, args.threads)

    rates: dict[str, list[float]] = {name: [] for name in rows}
    names = list(rows)
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            call, gmac = rows[name]
            rates[name].append(timed_rate(call, gmac, args.seconds))
    result = {name: {"gmac": rows[name][1], "gmac_per_s": statistics.median(r), "rounds": r}
              for name, r in rates.items()}
    ceiling = max(v["gmac_per_s"] for k, v in result.items() if k.startswith("int8 "))
    summary = {"threads": args.threads, "openvino": ov.__version__, "config": {k: str(v) for k, v in config.items()},
               "rows": result, "int8_ceiling_gmac_per_s": ceiling,
               "loadavg_before": load_before, "loadavg_after": Path("/proc/loadavg").read_text().split()[:3]}
    if args.bundle:
        summary["network_fraction_of_ceiling"] = result["network"]["gmac_per_s"] / ceiling
    print_json_report(summary, args.json)


if __name__ == "__main__":
    main()
