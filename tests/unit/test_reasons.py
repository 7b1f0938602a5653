"""The reasons registry is complete: every reason string first-party code emits is in it, once, with a meaning.

Found by reading the source (ast), not by a list kept beside it: a reason added anywhere without a registry
entry fails here.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from clientreg.reasons import BY_NAME, REASONS, Reason, markdown_table

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = [ROOT / "clientreg", ROOT / "operator" / "clientreg_operator", ROOT / "provider" / "clientreg_pulumi"]
CAMEL = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)*$")


def _is_reason_target(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return "reason" in node.id.lower() or node.id.startswith("STATUS_")
    if isinstance(node, ast.Attribute):
        return "reason" in node.attr.lower()
    return False


def _strings(node: ast.expr | None, constants: dict[str, str]) -> list[str]:
    """The string values an expression assigned to a reason can take."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name) and node.id in constants:
        return [constants[node.id]]
    if isinstance(node, ast.IfExp):
        return _strings(node.body, constants) + _strings(node.orelse, constants)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Reason":
        return [str(Reason[node.attr])]
    return []


def reasons_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    constants = {t.id: n.value.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                 for t in n.targets if isinstance(t, ast.Name)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Reason":
            found.add(str(Reason[node.attr]))  # KeyError: a Reason member that does not exist
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if _is_reason_target(target):
                    found.update(_strings(node.value, constants))
                elif isinstance(target, ast.Tuple) and target.elts and _is_reason_target(target.elts[0]) \
                        and isinstance(node.value, ast.Tuple) and node.value.elts:
                    found.update(_strings(node.value.elts[0], constants))
        elif isinstance(node, ast.keyword) and node.arg == "reason":
            found.update(_strings(node.value, constants))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("Event", "Action"):
            for arg in node.args[:2]:
                found.update(_strings(arg, constants))
        elif isinstance(node, ast.Tuple) and len(node.elts) == 3 and isinstance(node.elts[1], ast.Name) \
                and node.elts[1].id in constants:  # (path, REASON, message) triples
            found.update(_strings(node.elts[1], constants))
    return {f for f in found if CAMEL.match(f)}


def first_party_reasons() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for folder in FIRST_PARTY:
        for path in sorted(folder.rglob("*.py")):
            if "devserver" in path.parts:  # the dev AS's own wire errors are not clientreg's reasons
                continue
            for reason in reasons_in(path):
                out.setdefault(reason, set()).add(str(path.relative_to(ROOT)))
    return out


def test_every_reason_emitted_in_first_party_code_is_registered() -> None:
    found = first_party_reasons()
    missing = {reason: sorted(where) for reason, where in found.items() if reason not in BY_NAME}
    assert not missing, f"reasons used but not in clientreg/reasons.py: {missing}"


def test_the_scan_finds_reasons_in_every_place_they_are_defined() -> None:
    # Guards the scanner itself: one reason from each of the four places reasons used to live.
    found = first_party_reasons()
    for reason in ("DriftAtServer", "InvalidSpec", "SecretExpired", "DocumentHostTaken", "KubernetesSecretDrift",
                   "RetiringClientDeleteRefused"):
        assert reason in found, reason


def test_every_reason_has_one_entry_and_a_meaning() -> None:
    names = [info.name for info in REASONS]
    assert len(names) == len(set(names))
    assert all(info.description.strip() and CAMEL.match(info.name) for info in REASONS)
    assert {str(r) for r in Reason} <= set(names)


def test_overloaded_reasons_are_split() -> None:
    assert Reason.SPEC_CHANGED != Reason.SPEC_CHANGED_REPLACED
    assert Reason.DRIFT != Reason.DOCUMENT_DIFFERS
    # The names users already match on keep their primary meaning.
    assert Reason.SPEC_CHANGED == "SpecChanged" and Reason.DRIFT == "DriftAtServer"
    assert "in place" in BY_NAME["SpecChanged"].description
    assert "at the AS" in BY_NAME["DriftAtServer"].description


def test_markdown_table_lists_every_reason() -> None:
    table = markdown_table()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) == len(REASONS)
    assert "| `SpecChangedReplacement` |" in table


def test_module_prints_the_table() -> None:
    result = subprocess.run([sys.executable, "-m", "clientreg.reasons"], capture_output=True, text=True, check=True)
    assert result.stdout == markdown_table()
