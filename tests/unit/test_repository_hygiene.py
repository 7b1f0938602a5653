"""No merge conflict marker is ever committed (one reached docs/kubernetes.md once, unnoticed by every test), and
no doc tells users to install clientreg from a package index, where it is not (and anyone may claim the name)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^(<{7} |>{7} |={7}$)", re.MULTILINE)


def test_no_tracked_file_carries_a_merge_conflict_marker() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert files, "git ls-files listed nothing: not a checkout?"
    marked = []
    for name in files:
        path = ROOT / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # binary
        if MARKER.search(text):
            marked.append(name)
    assert not marked, f"merge conflict markers in {marked}"


#: `pip install clientreg…` or a requirements line naming clientreg, without a path, URL or direct reference.
FROM_AN_INDEX = re.compile(r"pip install\s+(-\S+\s+)*['\"]?clientreg\b(?!\s*@)"
                           r"|^\s*clientreg\s*(\[[^\]]*\])?\s*([<>=~!].*)?$", re.MULTILINE)


def test_no_doc_installs_clientreg_from_a_package_index() -> None:
    # `pip install 'clientreg[pulumi]'` failed for every reader (the name is not on PyPI) and would install
    # whatever someone else published under it: docs build a wheel from the checkout (scripts/build-wheel).
    texts = [*ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.md"), *(ROOT / "examples").rglob("*.md"),
             *(ROOT / "examples").rglob("requirements*.txt")]
    found = [f"{path.relative_to(ROOT)}: {match.group(0).strip()}" for path in texts
             for match in FROM_AN_INDEX.finditer(path.read_text())]
    assert not found, "\n".join(found)
