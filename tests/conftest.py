"""Settings every test process shares."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def own_compile_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The suite's OpenVINO compiled-model cache in a temporary folder, not the user's
    ``~/.cache/edge-iqa``: the tests compile hundreds of short-lived networks, whose blobs would
    evict the user's own (and before the cache had a size limit, they filled the disk). Set in the
    environment, so the CLI and native-library subprocesses get it too; tests about the cache set
    their own with ``monkeypatch``."""
    previous = os.environ.get("EDGE_IQA_CACHE_DIR")
    os.environ["EDGE_IQA_CACHE_DIR"] = str(tmp_path_factory.mktemp("compile-cache"))
    yield
    if previous is None:
        os.environ.pop("EDGE_IQA_CACHE_DIR", None)
    else:
        os.environ["EDGE_IQA_CACHE_DIR"] = previous
