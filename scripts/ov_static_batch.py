"""Why the runtime compiles an OpenVINO bundle's network once, with its dynamic batch axis.

Batch-1 latency of the network compiled three ways: as exported (dynamic batch), with the batch
bounded to [1, 16], and reshaped to a static batch of 1; and how far each variant's batch-1 output
is from the dynamic network's on the same input. A static batch-1 compile is faster in OpenVINO's
CPU plugin, but for an INT8 network it is a different integer computation: on the default model's
INT8 bundle it moved real photos' scores by up to 2.4 MOS points (mean 0.66) against the dynamic
network, which ``score()`` uses for batches. ``score_one`` and ``score`` must agree, and the
bundle's accuracy is measured on one network, so the runtime keeps the one dynamic compile.

The cause (issue 13): OpenVINO's CPU plugin tokenizes element-wise + FakeQuantize chains (residual
adds, NNCF's smooth-quant scales before LayerNorm'd MatMuls) into JIT "Subgraph" kernels (Snippets)
only for static shapes. Their FakeQuantize arithmetic rounds values at quantization-bin edges
differently from the plugin's own FakeQuantize / conv post-ops, and a bin flip in the residual
stream of this network moves the score by up to 2.4 MOS points. With ``SNIPPETS_MODE=DISABLE`` the
static compile matches the dynamic one (0 on the random input below, at most 5e-6 MOS on 40 CLIVE
photos), and disabling Snippets does not change the dynamic compile's outputs at all: the two
"no snippets" rows show it.

    python scripts/ov_static_batch.py BUNDLE [--threads 2] [--iterations 100] [--rounds 2]

Prints p50 per variant and round (rounds alternate the variants so drift of a shared machine hits
all of them alike) and max |output - dynamic output| on one seeded random input.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import openvino as ov

from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.runtime.backends.base import InputRecord, input_records
from edge_iqa.runtime.backends.openvino import as_runtime_compiles
from edge_iqa.runtime.bundle import read_manifest


def batch_one_p50_ms(compiled: ov.CompiledModel, records: list[InputRecord], size: tuple[int, int],
                     iterations: int) -> tuple[float, np.ndarray]:
    """(p50 ms, output) of batch-1 calls on one seeded random input."""
    request = compiled.create_infer_request()
    feed = {i: record.example_rows(1, size) for i, record in enumerate(records)}
    output = np.array(request.infer(feed)[compiled.outputs[0]], copy=True)
    for _ in range(10):
        request.infer(feed)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        request.infer(feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    manifest = read_manifest(args.bundle)
    precision = {"fp16": "f16"}.get(manifest.precision, "f32")
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": args.threads,
              "INFERENCE_PRECISION_HINT": precision}
    core = ov.Core()
    records = input_records(manifest)
    size = PreprocessSpec.from_dict(manifest.preprocess).input_size
    dynamic_output = None
    for round_index in range(args.rounds):
        for variant in ("dynamic", "bounded 1..16", "static 1", "static 1 no snippets", "dynamic no snippets"):
            model = core.read_model(str(args.bundle / manifest.model_file))
            as_runtime_compiles(model, manifest)
            if not variant.startswith("dynamic"):
                batch = ov.Dimension(1, 16) if variant.startswith("bounded") else ov.Dimension(1)
                model.reshape({port.get_any_name(): ov.PartialShape([batch, *record.shape[1:]])
                               for port, record in zip(model.inputs, records, strict=True)})
            snippets = {"SNIPPETS_MODE": "DISABLE"} if variant.endswith("no snippets") else {}
            p50, output = batch_one_p50_ms(core.compile_model(model, "CPU", {**config, **snippets}), records, size,
                                           args.iterations)
            dynamic_output = output if dynamic_output is None else dynamic_output
            print(f"round {round_index}  {variant:14s} threads {args.threads}  batch-1 p50 {p50:.2f} ms  "
                  f"max |output - dynamic| {float(np.abs(output - dynamic_output).max()):.3g} (raw model output)")


if __name__ == "__main__":
    main()
