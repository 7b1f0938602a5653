"""Building the kstatus checker never hangs or half-succeeds: a slow or failing Go module proxy, or no Go
at all, is a ComponentUnavailable naming the cause (a skip locally, a failure in CI), and nothing broken
is left in the cache. A fake ``go`` stands in for the toolchain; no network is used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import kstatus_tool
from support.kube import ComponentUnavailable


def _fake_go(folder: Path, body: str) -> None:
    go = folder / "go"
    go.write_text(f"#!/bin/sh\n{body}\n")
    go.chmod(0o755)


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("CLIENTREG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    return bin_dir


def _leftovers(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "cache").glob("kstatus-*/.complete")) + list((tmp_path / "cache").glob("kstatus-*/kstatus"))


def test_a_proxy_that_never_answers_ends_the_build_as_unavailable(sandbox: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_go(sandbox, "echo 'go: downloading sigs.k8s.io/cli-utils v0.37.2'\nexec sleep 300")
    monkeypatch.setenv("CLIENTREG_KSTATUS_BUILD_TIMEOUT", "0.5")
    with pytest.raises(ComponentUnavailable) as caught:
        kstatus_tool.ensure_kstatus()
    assert "proxy slow or unreachable" in str(caught.value) and "CLIENTREG_KSTATUS_BUILD_TIMEOUT" in str(caught.value)
    assert "downloading sigs.k8s.io/cli-utils" in str(caught.value)  # the log's tail says where it stopped
    assert _leftovers(tmp_path) == []


def test_a_failing_download_is_unavailable_with_the_go_error(sandbox: Path, tmp_path: Path) -> None:
    _fake_go(sandbox, "echo 'go: sigs.k8s.io/cli-utils@v0.37.2: Get \"https://proxy.golang.org/\": dial tcp: "
                      "i/o timeout' >&2\nexit 1")
    with pytest.raises(ComponentUnavailable) as caught:
        kstatus_tool.ensure_kstatus()
    assert "exit 1" in str(caught.value) and "i/o timeout" in str(caught.value)
    assert _leftovers(tmp_path) == []


def test_no_go_toolchain_is_unavailable(sandbox: Path) -> None:
    with pytest.raises(ComponentUnavailable, match="no `go` on PATH"):
        kstatus_tool.ensure_kstatus()
