"""OpenVINO's Python bindings deadlock when two threads make their first ``infer`` at the same
moment (a lazily built table of numpy dtypes, built under a C++ static guard while the GIL is
released). ``load`` runs the network once on its own thread, so a Scorer shared by threads (the
collection engines, a Ray actor's concurrent calls) never meets that first call twice.

Each check runs in a fresh process (the tables are built once per process), with a short GIL
switch interval so the race is close: without the warm-up about half of such processes hang
(measured: 6 of 10 with only ``import openvino``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers_runtime import TinyNet, build_bundle

pytest.importorskip("openvino")

RACE = """
import sys, threading
sys.setswitchinterval(1e-6)
import openvino as ov
from edge_iqa.runtime import load
scorer = load(sys.argv[1], threads=1)
barrier = threading.Barrier(2)
def first_call():
    barrier.wait()
    ov.Type.f32.to_dtype()  # the binding that builds its table on first use, inside every infer
threads = [threading.Thread(target=first_call) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print("both threads returned")
"""


def test_after_load_two_threads_racing_on_openvinos_first_call_never_hang(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "ov", TinyNet.random(0), runtime="openvino")
    processes = [subprocess.Popen([sys.executable, "-c", RACE, str(bundle)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
    hung = 0
    for process in processes:
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            hung += 1
            continue
        assert process.returncode == 0 and "both threads returned" in out, err[-2000:]
    assert hung == 0, f"{hung} of {len(processes)} processes deadlocked in OpenVINO's first infer"
