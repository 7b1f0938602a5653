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
    (ROOT / "clientreg_kube", ("kubernetes",)),
    (ROOT / "operator" / "clientreg_operator", ("operator",)),
    (ROOT / "provider" / "clientreg_pulumi", ("pulumi", "kubernetes")),
]
#: The Pulumi provider's modules that may need the kubernetes extra: imported only when a resource sets
#: kubernetes_secret. Every other module of the provider must work with `[pulumi]` alone.
PULUMI_KUBE_MODULES = frozenset({"kube_secret.py"})
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


def _all_top_level_imports(folder: Path, skip: frozenset[str] = frozenset()) -> set[str]:
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        if path.name in skip:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def _top_level_imports(folder: Path, skip: frozenset[str] = frozenset()) -> set[str]:
    # _typeshed exists only for the type checker (imported under TYPE_CHECKING).
    return (_all_top_level_imports(folder, skip) - FIRST_PARTY - set(sys.stdlib_module_names)
            - {"__future__", "_typeshed"})


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


def test_the_pulumi_extra_alone_brings_no_kubernetes_client() -> None:
    # A Pulumi program that writes no Secret must not pull in the Kubernetes client (and its dependencies).
    assert not {"kubernetes", "urllib3"} & _declared(("pulumi",))
    provider = ROOT / "provider" / "clientreg_pulumi"
    declared = _declared(("pulumi",))
    distributions = packages_distributions()
    needs_more = sorted(module for module in _top_level_imports(provider, PULUMI_KUBE_MODULES)
                        if not {_requirement_name(d) for d in distributions.get(module, [module])} & declared)
    assert not needs_more, f"clientreg_pulumi outside {set(PULUMI_KUBE_MODULES)} imports {needs_more}"
    # The shared Kubernetes layer imports the kubernetes client itself.
    assert "clientreg_kube" not in _all_top_level_imports(provider, PULUMI_KUBE_MODULES)


def test_the_pulumi_extra_is_a_range_not_a_pin() -> None:
    # An exact pin would downgrade (or conflict with) the Pulumi SDK a program already uses.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (pulumi,) = [r for r in project["optional-dependencies"]["pulumi"] if _requirement_name(r) == "pulumi"]
    assert "==" not in pulumi and ">=" in pulumi and "<" in pulumi.replace("<=", "")
