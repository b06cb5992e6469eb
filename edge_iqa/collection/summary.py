"""What a finished table says: counts, errors by type, score quantiles."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_iqa.collection.table import arrow

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


@dataclass(frozen=True)
class Summary:
    rows: int
    scored: int
    failed: int
    errors_by_type: dict[str, int] = field(default_factory=dict)
    #: quantile (0..1) -> score, over the scored rows; empty when none scored
    quantiles: dict[float, float] = field(default_factory=dict)
    mean: float | None = None

    @classmethod
    def of_table(cls, path: Path) -> Summary:
        table = arrow().parquet.read_table(str(path), columns=["score", "error_type"])
        scores = table.column("score").drop_null().to_numpy()
        kinds = Counter(kind for kind in table.column("error_type").to_pylist() if kind is not None)
        quantiles = {q: float(v) for q, v in zip(QUANTILES, np.quantile(scores, QUANTILES), strict=True)} \
            if len(scores) else {}
        return cls(rows=table.num_rows, scored=len(scores), failed=sum(kinds.values()),
                   errors_by_type=dict(kinds.most_common()), quantiles=quantiles,
                   mean=float(scores.mean()) if len(scores) else None)

    def lines(self) -> list[str]:
        out = [f"{self.rows:,} images: {self.scored:,} scored, {self.failed:,} failed"]
        out += [f"  {kind}: {count:,}" for kind, count in self.errors_by_type.items()]
        if self.quantiles:
            cells = ", ".join(f"{_label(q)} {v:.2f}" for q, v in self.quantiles.items())
            out.append(f"scores: {cells}; mean {self.mean:.2f}")
        return out


def _label(q: float) -> str:
    return {0.0: "min", 1.0: "max", 0.5: "median"}.get(q, f"p{round(q * 100)}")
