"""Every third-party module that first-party code imports is declared in pyproject.toml.

An undeclared import works on a developer's machine (something else pulled it in) and breaks a clean
install of the extra that needs it: joserfc and aiohttp were used for a while without being declared.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Where each first-party package lives, and each clean install it must work in (the extras installed).
#: The shared Kubernetes layer is imported by the operator and by the Pulumi provider: each extra alone
#: must bring everything it imports.
PACKAGES = [
    (ROOT / "clientreg", ()),
    (ROOT / "clientreg_kube", ("operator",)),
    (ROOT / "clientreg_kube", ("pulumi",)),
    (ROOT / "operator" / "clientreg_operator", ("operator",)),
    (ROOT / "provider" / "clientreg_pulumi", ("pulumi",)),
]
FIRST_PARTY = {"clientreg", "clientreg_kube", "clientreg_operator", "clientreg_pulumi"}
#: Which first-party packages each one may import: the core none, the shared layer the core, and the
#: front ends never each other.
MAY_IMPORT = {
    "clientreg": {"clientreg"},
    "clientreg_kube": {"clientreg", "clientreg_kube"},
    "clientreg_operator": {"clientreg", "clientreg_kube", "clientreg_operator"},
    "clientreg_pulumi": {"clientreg", "clientreg_kube", "clientreg_pulumi"},
}


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _declared(extras: tuple[str, ...]) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_requirement_name(r) for r in project["dependencies"]}
    for extra in extras:
        names |= {_requirement_name(r) for r in project["optional-dependencies"][extra]}
    return names


def _all_top_level_imports(folder: Path) -> set[str]:
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def _top_level_imports(folder: Path) -> set[str]:
    # _typeshed exists only for the type checker (imported under TYPE_CHECKING).
    return _all_top_level_imports(folder) - FIRST_PARTY - set(sys.stdlib_module_names) - {"__future__", "_typeshed"}


def test_every_third_party_import_is_a_declared_dependency() -> None:
    distributions = packages_distributions()
    missing: list[str] = []
    for folder, extras in PACKAGES:
        declared = _declared(extras)
        for module in sorted(_top_level_imports(folder)):
            providers = {_requirement_name(d) for d in distributions.get(module, [module])}
            if not providers & declared:
                missing.append(f"{folder.relative_to(ROOT)} imports {module} (from {sorted(providers)}), "
                               f"not declared for extras {list(extras) or '(core)'}")
    assert not missing, "\n".join(missing)


def test_first_party_packages_import_only_what_their_layer_allows() -> None:
    crossing = []
    for folder, _ in PACKAGES:
        imported = _all_top_level_imports(folder) & FIRST_PARTY
        if imported - MAY_IMPORT[folder.name]:
            crossing.append(f"{folder.relative_to(ROOT)} imports {sorted(imported - MAY_IMPORT[folder.name])}")
    assert not crossing, "\n".join(crossing)
