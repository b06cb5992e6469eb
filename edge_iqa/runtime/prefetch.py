"""Ordered read-ahead: ``fn(item)`` for the next items in worker threads while the caller works.

The scorer uses it to decode and preprocess the next images of a list while the network runs on
the current batch: Pillow releases the GIL while it decodes and resizes, numpy while it looks the
pixels up, and the backends while the network runs, so the stages overlap on separate cores.

Results come back in the items' order, and an item's exception is raised when the caller reaches
that item, exactly where a sequential loop would raise it; nothing beyond ``lookahead`` items is
started, so memory stays bounded on a list of any length. When the caller stops early (an error,
a closed generator), items not yet started are cancelled and the running ones are waited for.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_END = object()


def read_ahead(fn: Callable[[T], R], items: Iterable[T], *, workers: int, lookahead: int) -> Iterator[R]:
    """``map(fn, items)``, computed up to ``lookahead`` items ahead by ``workers`` threads.

    ``workers <= 0``, or a single item, runs ``fn`` in the calling thread (no thread is started).
    """
    iterator = iter(items)
    first = next(iterator, _END)
    if first is _END:
        return
    second = next(iterator, _END) if workers > 0 else _END
    if second is _END:
        yield fn(first)
        yield from (fn(item) for item in iterator)  # workers <= 0: the plain loop
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edge-iqa-read-ahead") as pool:
        pending: deque[Future[R]] = deque()
        try:
            for item in chain((first, second), iterator):
                pending.append(pool.submit(fn, item))
                if len(pending) > max(1, lookahead):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
