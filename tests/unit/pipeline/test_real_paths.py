"""Planning resolves each folder once (``RealPaths``): every file's real path, the key that
makes two names of one file one target, and its folder below the load root are what
``os.path.realpath`` and ``Path.resolve`` give, links to files and to folders included."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgingest.config import LoadOptions
from pgingest.pipeline.discover import RealPaths, folder_of, folder_table_name, plan_targets
from pgingest.schema.names import normalize_identifier


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """data/a.csv, data/sub/b.csv, data/sub/deep/c.csv, other/d.csv, and links: a file link
    beside its file, one into another folder, a folder link, a link to a link."""
    data = tmp_path / "data"
    (data / "sub" / "deep").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    for path in ("data/a.csv", "data/sub/b.csv", "data/sub/deep/c.csv", "other/d.csv"):
        (tmp_path / path).write_text("id\n1\n")
    (data / "link_a.csv").symlink_to("a.csv")
    (data / "sub" / "link_d.csv").symlink_to(tmp_path / "other" / "d.csv")
    (data / "linkdir").symlink_to("sub", target_is_directory=True)
    (data / "link_link.csv").symlink_to("link_a.csv")
    (tmp_path / "data_link").symlink_to("data", target_is_directory=True)
    return tmp_path


def test_real_paths_are_os_realpath(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree / "data" / "sub")
    names = [str(p) for p in tree.rglob("*")]
    names += ["b.csv", "./b.csv", "../a.csv", "deep/c.csv", "../linkdir/b.csv", "link_d.csv"]
    names += [str(tree / "data_link" / "linkdir" / "deep" / "c.csv")]
    resolved = RealPaths()
    for name in names:
        assert resolved.file(name) == os.path.realpath(name), name
        assert resolved.folder(os.path.dirname(name) or ".") == os.path.realpath(
            os.path.dirname(name) or "."
        ), name


def test_folder_below_the_root_is_as_resolved(tree: Path) -> None:
    root = str(tree / "data_link")
    for path in [*tree.rglob("*.csv")]:
        try:
            expected = path.parent.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            expected = ""
        expected = "" if expected == "." else expected
        assert folder_of(str(path), root) == expected, path
        assert folder_of(str(path), root, RealPaths()) == expected, path


def test_two_names_of_one_file_are_one_target(tree: Path) -> None:
    targets, missing = plan_targets(
        [str(tree / "data"), str(tree / "data_link" / "a.csv")], LoadOptions(table="t")
    )
    assert not missing
    real = [os.path.realpath(t.path) for t in targets]
    assert len(real) == len(set(real))
    assert set(real) >= {os.path.realpath(tree / "data" / "a.csv")}


def test_a_folder_table_is_named_as_resolved(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--table-from folder``: below the root, the resolved folder; at the root or named
    directly, the resolved root's (or the file's folder's) own name, a link followed."""
    monkeypatch.chdir(tree / "data")
    cases = [
        (str(tree / "data_link" / "a.csv"), str(tree / "data_link"), "data"),
        (str(tree / "data_link" / "linkdir" / "b.csv"), str(tree / "data_link"), "sub"),
        (str(tree / "data" / "sub" / "deep" / "c.csv"), str(tree / "data"), "sub_deep"),
        (str(tree / "data_link" / "a.csv"), None, "data"),
        ("a.csv", None, "data"),
        ("linkdir/b.csv", None, "sub"),
    ]
    resolved = RealPaths()
    for path, root, expected in cases:
        assert folder_table_name(path, root) == normalize_identifier(expected), (path, root)
        assert folder_table_name(path, root, resolved) == normalize_identifier(expected)
