"""``edge_iqa.bench``: accuracy-vs-latency benchmarks of every target x precision, distortion
sensitivity, and the CI regression check against a committed baseline (``edge-iqa bench``).

Modules: :mod:`~edge_iqa.bench.suite` (the suite file), :mod:`~edge_iqa.bench.runner` (export +
one process per row), :mod:`~edge_iqa.bench.worker` (the measuring process),
:mod:`~edge_iqa.bench.accuracy`, :mod:`~edge_iqa.bench.speed`, :mod:`~edge_iqa.bench.sensitivity`,
:mod:`~edge_iqa.bench.machine`, :mod:`~edge_iqa.bench.report`, :mod:`~edge_iqa.bench.regression`,
:mod:`~edge_iqa.cli.bench`. See docs/benchmarks.md.
"""
