"""One batch of paths -> a :class:`ScoredBatch`, through the runtime's public ``Scorer.score_each``.

Both engines call :func:`score_paths` on batches of the same size, so they score the same way.

``Scorer.score_each`` decodes each image on its own before the network sees its rows, so a bad
file fails alone and costs no second pass over its batch; the good images go through the network
exactly as ``Scorer.score(good_paths)`` sends them (read-ahead, OpenVINO streams), so their scores
are bit for bit those (tested).

What is recorded, what stops the job:
- an :class:`~edge_iqa.errors.ImageError` (missing, empty, corrupt, too large or too small) is the
  image's: recorded in its row;
- any other :class:`~edge_iqa.errors.EdgeIQAError` (a broken bundle, a missing backend, a depth
  bundle without depth) would fail every image: it stops the job, whose shards so far stay and resume;
- an unexpected exception (a decoder bug on one strange file) sends the batch through the network
  again one image at a time, so that exception is recorded in that image's row under its class
  name: one strange file cannot stop a job over a million.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from edge_iqa.collection.table import ScoredBatch
from edge_iqa.errors import EdgeIQAError, ImageError, first_line
from edge_iqa.runtime import Scorer

#: Longest error message kept in the table (the runtime's messages are one line; a decoder's may not be).
MAX_ERROR_CHARS = 500


def score_paths(scorer: Scorer, paths: Sequence[str]) -> ScoredBatch:
    paths = list(paths)
    try:
        scores, failures = scorer.score_each(paths)
    except EdgeIQAError:
        raise
    except Exception:  # noqa: BLE001 - found and recorded per image below
        return _one_by_one(scorer, paths)
    return ScoredBatch(paths, scores, [None if f is None else first_line(f, MAX_ERROR_CHARS) for f in failures],
                       [None if f is None else type(f).__name__ for f in failures])


def _one_by_one(scorer: Scorer, paths: list[str]) -> ScoredBatch:
    scores: list[float] = []
    errors: list[str | None] = []
    kinds: list[str | None] = []
    for path in paths:
        try:
            value, error, kind = float(scorer.score([path])[0]), None, None
        except ImageError as exc:
            value, error, kind = math.nan, first_line(exc, MAX_ERROR_CHARS), type(exc).__name__
        except EdgeIQAError:
            raise
        except Exception as exc:  # noqa: BLE001 - see the module docstring
            value, error, kind = math.nan, f"unexpected error: {first_line(exc, MAX_ERROR_CHARS)}", type(exc).__name__
        scores.append(value)
        errors.append(error)
        kinds.append(kind)
    return ScoredBatch(paths, scores, errors, kinds)
