"""A held-out test set is scored once per model: has a report already scored it with these weights?

``python -m edge_iqa.bench.once REPORT.json SET`` exits 1, saying so, when ``REPORT.json`` (a bench
report) holds figures of evaluation set ``SET`` measured with the weights that are embedded now
(``weights.sha256``), else 0. ``scripts/refresh_after_weights.sh full`` runs it before the full
suite, whose first run on new default weights is their one-time BIQ2021 Test scoring.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def embedded_weights_sha256(model: str = "edge_hybrid_n") -> str:
    from edge_iqa.checksums import sha256_file
    from edge_iqa.models import get_model_info
    from edge_iqa.models.checkpoint import packaged_weights_path

    return sha256_file(packaged_weights_path(get_model_info(model).default_weights))


def already_scored(report: dict[str, Any], set_name: str, weights_sha256: str) -> bool:
    """True when ``report`` scored ``set_name`` (not skipped) with the weights of this hash."""
    record = (report.get("datasets") or {}).get(set_name) or {}
    return bool(record) and not record.get("skipped") and (report.get("weights") or {}).get("sha256") == weights_sha256


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m edge_iqa.bench.once REPORT.json SET", file=sys.stderr)
        return 2
    path, set_name = Path(args[0]), args[1]
    if not path.is_file():
        return 0
    weights = embedded_weights_sha256()
    if already_scored(json.loads(path.read_text()), set_name, weights):
        print(f"{path} already holds the {set_name} scoring of the embedded weights ({weights[:16]}): a held-out "
              "test set is scored once per model", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
