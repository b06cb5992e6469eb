"""``edge-iqa report``: one self-contained HTML page of a scores table, for people who would
rather look than read: the summary, the score histogram (inline SVG), contact sheets of the lowest
and highest scored images (thumbnails embedded as JPEG data URIs, so the page can be mailed or
archived alone) and the errors by type with examples. No script, no external resource."""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from edge_iqa.collection.summary import Summary
from edge_iqa.collection.table import arrow
from edge_iqa.errors import CollectionError

THUMBNAIL_SIDE = 200
HISTOGRAM_BINS = 40
ERROR_EXAMPLES = 20

_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; }
.summary { background: #fff; border: 1px solid #ddd; padding: 12px 16px; white-space: pre-wrap;
           font-family: monospace; }
.sheet { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; width: 200px; background: #fff; border: 1px solid #ddd; padding: 4px; }
figure img { width: 200px; height: 200px; object-fit: contain; background: #eee; display: block; }
figure .missing { width: 200px; height: 200px; background: #eee; color: #888; display: flex; align-items: center;
                  justify-content: center; text-align: center; font-size: 12px; }
figcaption { font-size: 12px; overflow-wrap: anywhere; } figcaption b { font-size: 15px; }
table { border-collapse: collapse; background: #fff; } td, th { border: 1px solid #ddd; padding: 4px 8px;
font-size: 13px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
"""


def write_report(table_path: Path, out: Path, count: int = 24) -> Path:
    """Write the page for ``table_path`` to ``out`` (atomically); returns ``out``."""
    if count < 1:
        raise CollectionError("--count must be at least 1")
    table = _read(Path(table_path))
    summary = Summary.of_table(Path(table_path))
    paths = table.column("path").to_pylist()
    scores = table.column("score").to_numpy(zero_copy_only=False).astype(np.float64)  # NaN where null
    scored = np.flatnonzero(~np.isnan(scores))
    order = scored[np.argsort(scores[scored], kind="stable")]
    lowest, highest = order[:count], order[::-1][:count]
    body = [f"<h1>Scores of {_e(Path(table_path).name)}</h1>", _identity(table),
            f'<div class="summary">{_e(chr(10).join(summary.lines()))}</div>',
            "<h2>Score histogram</h2>", _histogram(scores[scored]),
            f"<h2>Lowest scored ({len(lowest)})</h2>", _sheet(paths, scores, lowest),
            f"<h2>Highest scored ({len(highest)})</h2>", _sheet(paths, scores, highest),
            _errors(table, summary)]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>edge-iqa report: {_e(Path(table_path).name)}</title><style>{_CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out


def _read(path: Path) -> Any:
    if not path.is_file():
        raise CollectionError(f"{path}: no such scores table; write one with `edge-iqa score --out "
                              f"{path} INPUT...`")
    try:
        table = arrow().parquet.read_table(str(path))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
        raise CollectionError(f"{path}: not a Parquet table ({exc}); pass a table `edge-iqa score --out` wrote") \
            from exc
    missing = {"path", "score", "error", "error_type"} - set(table.column_names)
    if missing:
        raise CollectionError(f"{path}: lacks the columns {', '.join(sorted(missing))}; pass a table `edge-iqa "
                              "score --out` wrote")
    return table


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _identity(table: Any) -> str:
    cells = []
    for name in ("model", "precision", "runtime", "bundle_sha256"):
        if name in table.column_names and table.num_rows:
            values = [v for v in table.column(name).unique().to_pylist() if v is not None]
            cells.append(f"{name}: <b>{_e(', '.join(map(str, values)))}</b>")
    return f"<p>{' &middot; '.join(cells)}</p>"


def _histogram(scores: np.ndarray) -> str:
    if not len(scores):
        return "<p>No image was scored.</p>"
    low, high = float(scores.min()), float(scores.max())
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    counts, edges = np.histogram(scores, bins=HISTOGRAM_BINS, range=(low, high))
    width, height, pad = 800, 240, 40
    bar = (width - 2 * pad) / HISTOGRAM_BINS
    peak = max(int(counts.max()), 1)
    bars = []
    for i, n in enumerate(counts):
        h = (height - 2 * pad) * n / peak
        bars.append(f'<rect x="{pad + i * bar:.1f}" y="{height - pad - h:.1f}" width="{bar - 1:.1f}" '
                    f'height="{h:.1f}" fill="#3b7dd8"><title>{edges[i]:.2f} to {edges[i + 1]:.2f}: {n}</title></rect>')
    ticks = []
    for value in np.linspace(low, high, 6):
        x = pad + (value - low) / (high - low) * (width - 2 * pad)
        ticks.append(f'<text x="{x:.1f}" y="{height - pad + 16}" font-size="12" text-anchor="middle">'
                     f'{value:.1f}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="score histogram"><rect width="{width}" height="{height}" fill="#fff"/>'
            f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#333"/>'
            f'{"".join(bars)}{"".join(ticks)}<text x="{pad}" y="{pad - 12}" font-size="12">'
            f'{len(scores):,} images, tallest bar {peak:,}</text>'
            f'<text x="{width / 2}" y="{height - 6}" font-size="12" text-anchor="middle">score</text></svg>')


def _sheet(paths: list[str], scores: np.ndarray, indices: np.ndarray) -> str:
    if not len(indices):
        return "<p>No image was scored.</p>"
    figures = []
    for i in indices:
        thumb = _thumbnail(paths[i])
        picture = (f'<img src="data:image/jpeg;base64,{thumb}" alt="{_e(Path(paths[i]).name)}">' if thumb
                   else '<div class="missing">cannot be read now</div>')
        figures.append(f"<figure>{picture}<figcaption><b>{scores[i]:.2f}</b><br>{_e(paths[i])}</figcaption></figure>")
    return f'<div class="sheet">{"".join(figures)}</div>'


def _thumbnail(path: str) -> str | None:
    """A JPEG thumbnail as base64, decoded as the scorer decodes (EXIF orientation applied)."""
    from PIL import Image

    from edge_iqa.data.imageio import load_image
    from edge_iqa.errors import ImageError

    try:
        image = Image.fromarray(load_image(path))
    except ImageError:
        return None  # moved or changed since it was scored
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _errors(table: Any, summary: Summary) -> str:
    if not summary.failed:
        return "<h2>Errors</h2><p>None: every image was scored.</p>"
    kinds = "".join(f"<tr><td>{_e(k)}</td><td>{n:,}</td></tr>" for k, n in summary.errors_by_type.items())
    failed = table.filter(arrow().compute.is_valid(table.column("error_type"))).slice(0, ERROR_EXAMPLES)
    rows = "".join(f"<tr><td>{_e(p)}</td><td>{_e(t)}</td><td>{_e(m)}</td></tr>" for p, t, m in
                   zip(failed.column("path").to_pylist(), failed.column("error_type").to_pylist(),
                       failed.column("error").to_pylist(), strict=True))
    return (f"<h2>Errors ({summary.failed:,})</h2><table><tr><th>type</th><th>images</th></tr>{kinds}</table>"
            f"<h2>First {failed.num_rows} failed images</h2><table><tr><th>path</th><th>type</th><th>error</th></tr>"
            f"{rows}</table>")
