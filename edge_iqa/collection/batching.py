"""One batch of paths -> a :class:`ScoredBatch`, through the runtime's public Scorer API.

Both engines call :func:`score_paths` on batches of the same size, so they score the same way.

Each image is decoded and preprocessed on its own (:meth:`Scorer.preprocess_inputs`), so a bad
file fails alone, before the network runs; the rows of the good images then go to the network
in one :meth:`Scorer.score_tensor` call. That is the path :meth:`Scorer.score` takes (the same
rows, the same ``max_batch`` chunks, one ``_score_rows``), so the scores are bit for bit those of
``Scorer.score(good_paths)`` (tested), and a batch with a bad image costs no second pass.

What is recorded, what stops the job:
- an :class:`~edge_iqa.errors.ImageError` (missing, empty, corrupt, too large or too small) is the
  image's: recorded in its row;
- any other :class:`~edge_iqa.errors.EdgeIQAError` (a broken bundle, a missing backend, a depth
  bundle without depth) would fail every image: it stops the job, whose shards so far stay and resume;
- an unexpected exception from one image (a decoder bug) is recorded under its class name, so one
  strange file cannot stop a job over a million.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_iqa.collection.table import ScoredBatch
from edge_iqa.errors import EdgeIQAError, ImageError, first_line
from edge_iqa.runtime import Scorer
from edge_iqa.runtime.backends.base import DEPTH_INPUT, IMAGE_INPUT

#: Longest error message kept in the table (the runtime's messages are one line; a decoder's may not be).
MAX_ERROR_CHARS = 500


def score_paths(scorer: Scorer, paths: Sequence[str]) -> ScoredBatch:
    paths = list(paths)
    scores = np.full(len(paths), np.nan)
    errors: list[str | None] = [None] * len(paths)
    kinds: list[str | None] = [None] * len(paths)
    rows: list[dict[str, np.ndarray]] = []
    good: list[int] = []
    for index, path in enumerate(paths):
        try:
            rows.append(scorer.preprocess_inputs(path))
            good.append(index)
        except ImageError as exc:
            errors[index], kinds[index] = first_line(exc, MAX_ERROR_CHARS), type(exc).__name__
        except EdgeIQAError:
            raise
        except Exception as exc:  # noqa: BLE001 - see the module docstring
            errors[index] = f"unexpected error: {first_line(exc, MAX_ERROR_CHARS)}"
            kinds[index] = type(exc).__name__
    if rows:
        scores[good] = _score_rows(scorer, rows)
    return ScoredBatch(paths, scores, errors, kinds)


def _score_rows(scorer: Scorer, rows: list[dict[str, np.ndarray]]) -> np.ndarray:
    """The images' preprocessed rows, stacked in order, through the network: one score per image."""
    stacked = {name: np.concatenate([image[name] for image in rows]) for name in scorer.inputs}
    if scorer.needs_depth:
        return scorer.score_tensor(stacked[IMAGE_INPUT], depth=stacked[DEPTH_INPUT])
    return scorer.score_tensor(stacked[scorer.inputs[0]])
