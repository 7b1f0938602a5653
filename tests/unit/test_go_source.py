"""support.go_source: Go components from a source folder are built once, redone when interrupted, keyed by content."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from support import go_source
from support.go_source import build_once, copy_source, digest


class Unavailable(RuntimeError):
    pass


@pytest.fixture
def go_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(go_source.shutil, "which", lambda name: f"/usr/bin/{name}")


def test_an_interrupted_build_is_redone_and_a_complete_one_reused(tmp_path: Path, go_on_path: None) -> None:
    folder, calls = tmp_path / "thing-1", []
    product = folder / "thing"

    def interrupted() -> None:
        calls.append("interrupted")
        product.write_text("half")
        (folder / "stale").write_text("left over")
        raise KeyboardInterrupt

    def build() -> None:
        calls.append("build")
        assert not (folder / "stale").exists()  # started from an empty folder
        product.write_text("whole")

    with pytest.raises(KeyboardInterrupt):
        build_once(folder, product, interrupted, what="thing", unavailable=Unavailable)
    assert build_once(folder, product, build, what="thing", unavailable=Unavailable) == product
    assert build_once(folder, product, build, what="thing", unavailable=Unavailable) == product
    assert calls == ["interrupted", "build"] and product.read_text() == "whole"


def test_no_go_toolchain_says_so_with_the_callers_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(go_source.shutil, "which", lambda name: None)
    with pytest.raises(Unavailable, match="building thing needs the Go toolchain"):
        build_once(tmp_path / "thing-1", tmp_path / "thing-1" / "thing", lambda: None, what="thing",
                   unavailable=Unavailable)


def test_the_digest_follows_file_names_and_bytes(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module x\n")
    (tmp_path / "main.go").write_text("package main\n")
    before = digest(tmp_path)
    assert digest(tmp_path) == before == digest(tmp_path, ("go.mod", "main.go"))  # every file, sorted
    (tmp_path / "main.go").write_text("package main // edited\n")
    assert digest(tmp_path) != before
    assert len(before) == 12


def test_a_copy_of_named_files_leaves_the_read_only_modes_behind(tmp_path: Path) -> None:
    source = tmp_path / "peers"
    source.mkdir()
    (source / "go.mod").write_text("module x\n")
    (source / "go.mod").chmod(0o444)
    copy_source(source, tmp_path / "src", ("go.mod",))
    copied = tmp_path / "src" / "go.mod"
    assert copied.read_text() == "module x\n" and copied.stat().st_mode & stat.S_IWUSR
