"""INPUT expansion: folders (recursive, by extension), globs, list files (txt, csv, parquet), each
path once and absolute; an INPUT that names nothing is refused before any work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_iqa.collection.inputs import check_inputs, expand_inputs
from edge_iqa.errors import CollectionError


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    for name in ("a.jpg", "b.PNG", "notes.md", "sub/c.webp", "sub/deeper/d.jpeg", "sub/e.txt.bak"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_a_folder_is_walked_recursively_by_image_extension(tree: Path) -> None:
    found = list(expand_inputs([str(tree)]))
    assert found == [str(tree / "a.jpg"), str(tree / "b.PNG"), str(tree / "sub/c.webp"),
                     str(tree / "sub/deeper/d.jpeg")]


def test_globs_and_files_are_absolute_and_each_path_comes_once(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    found = list(expand_inputs(["a.jpg", "./a.jpg", "sub/**/*.jp*g", str(tree / "a.jpg"), "notes.md"]))
    # notes.md given by name is taken as an image: the decoder, not the extension, decides
    assert found == [str(tree / "a.jpg"), str(tree / "sub/deeper/d.jpeg"), str(tree / "notes.md")]


def test_list_files_txt_csv_and_parquet(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.chdir(tree)
    (tree / "l.txt").write_text("# photos\na.jpg\n\n  \nmissing.jpg\r\n")
    (tree / "h.csv").write_text("id,path,mos\n1,sub/c.webp,3.0\n2,a.jpg,4\n")
    (tree / "n.csv").write_text("b.PNG,1\nsub/c.webp,2\n")
    pq.write_table(pa.table({"path": ["sub/deeper/d.jpeg", None, "a.jpg"], "x": [1, 2, 3]}), tree / "l.parquet")
    found = list(expand_inputs(["l.txt", "h.csv", "n.csv", "l.parquet"]))
    # listed paths are not checked here (a missing file becomes an error row), relative to the cwd
    assert found == [str(tree / p) for p in ("a.jpg", "missing.jpg", "sub/c.webp", "b.PNG", "sub/deeper/d.jpeg")]


def test_inputs_that_name_nothing_are_refused(tree: Path) -> None:
    with pytest.raises(CollectionError, match="no such file, folder or glob"):
        check_inputs([str(tree / "a.jpg"), str(tree / "nope")])
    with pytest.raises(CollectionError, match="matches no file"):
        check_inputs([str(tree / "*.gif")])
    check_inputs([str(tree), str(tree / "*.jpg")])


def test_a_parquet_list_without_a_path_column_is_refused(tree: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"file": ["a.jpg"]}), tree / "l.parquet")
    with pytest.raises(CollectionError, match="no `path` column"):
        list(expand_inputs([str(tree / "l.parquet")]))
    (tree / "latin1.txt").write_bytes("caf\xe9.jpg\n".encode("latin-1"))
    with pytest.raises(CollectionError, match="not a UTF-8 text list"):
        list(expand_inputs([str(tree / "latin1.txt")]))
    (tree / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(CollectionError, match="not a readable Parquet"):
        list(expand_inputs([str(tree / "bad.parquet")]))


def test_paths_are_normalised_but_symlinks_kept(tree: Path) -> None:
    os.symlink(tree / "a.jpg", tree / "link.jpg")
    found = list(expand_inputs([str(tree / "sub" / ".." / "link.jpg")]))
    assert found == [str(tree / "link.jpg")]
