"""Long fuzz run: the reliability fuzzers of the test suite with many more examples.

    python scripts/fuzz.py [--examples 5000] [--model-mutations 1000] [--decoder-examples 5000]
                           [--out fuzz.json]

Runs, in one pytest process each, with the counts raised through environment variables:

- ``tests/test_reliability_score_fuzz.py``: mixed sequences of valid, broken and hostile images
  through ``Scorer.score`` (``EDGE_IQA_RELIABILITY_FUZZ`` sequences);
- ``tests/test_reliability_bundles.py``: manifest value fuzz (same count) and damaged networks with
  recomputed checksums for ORT and OpenVINO (``EDGE_IQA_RELIABILITY_MODEL_MUTATIONS`` each);
- ``tests/test_imageio.py``: the decoder's own fuzz (``EDGE_IQA_FUZZ_EXAMPLES``).

Prints the counts of inputs tried and their outcomes, and exits non-zero if any test failed
(a crash, an untyped exception, a hang or a wrong score). CI runs the same tests with the short
defaults; docs/reliability.md records the figures of a long run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUMMARY_LINES = re.compile(r"^(fuzz:|manifest fuzz:|\S+ network mutations:).*$", re.MULTILINE)


def run_pytest(targets: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-o", "addopts=",
                           "-W", "ignore::UserWarning", "--timeout", "7200", *targets], cwd=REPO,
                          env={**os.environ, **env}, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000, help="scorer sequences and manifests")
    parser.add_argument("--model-mutations", type=int, default=1000, help="damaged networks per runtime")
    parser.add_argument("--decoder-examples", type=int, default=5000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        stats_path = Path(tmp) / "stats.json"
        env = {"EDGE_IQA_RELIABILITY_FUZZ": str(args.examples),
               "EDGE_IQA_RELIABILITY_MODEL_MUTATIONS": str(args.model_mutations),
               "EDGE_IQA_FUZZ_EXAMPLES": str(args.decoder_examples),
               "EDGE_IQA_RELIABILITY_STATS": str(stats_path)}
        report: dict[str, object] = {"settings": env.copy()}
        failed = False
        for name, targets in {
            "scorer": ["tests/test_reliability_score_fuzz.py"],
            "bundles": ["tests/test_reliability_bundles.py::test_fuzz_manifest_values",
                        "tests/test_reliability_bundles.py::test_damaged_network_with_recomputed_checksums"],
            "decoder": ["tests/test_imageio.py::test_fuzz_mutated_images",
                        "tests/test_imageio.py::test_fuzz_random_bytes"],
        }.items():
            code, output, wall = run_pytest(targets, env)
            tail = output.strip().splitlines()[-1] if output.strip() else ""
            report[name] = {"exit_code": code, "wall_s": round(wall, 1), "pytest": tail,
                            "summary": [m.group(0) for m in SUMMARY_LINES.finditer(output)]}
            if name == "scorer" and stats_path.is_file():
                report[name]["outcomes"] = json.loads(stats_path.read_text())
            print(f"{name}: exit {code} in {wall:.0f}s: {tail}", flush=True)
            if code != 0:
                failed = True
                print(output[-6000:], file=sys.stderr)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
