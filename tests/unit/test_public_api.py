"""clientreg's public API: what ``clientreg/__init__.py`` promises, and that nobody reaches past it.

Front ends (the operator, the Pulumi provider), the benchmarks and the tests import public names only:
``clientreg.X``, or a public name of a public module. Underscore modules (``clientreg._bodies``) and
underscore names (``clientreg.spec._check_cimd_url``) are internal and may change in any release.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import clientreg

ROOT = Path(__file__).resolve().parents[2]
#: Where code that must use the public API lives.
CONSUMERS = ("operator", "provider", "tests", "bench")
#: Private imports still present, as (file, what it imports). The list may only shrink: the test fails
#: when an entry is fixed, so the entry must be removed.
KNOWN_PRIVATE_IMPORTS = {
    # The CLI's console (escaping, no markup) is tested directly; clientreg/_render.py belongs to the CLI
    # split (issue 12, helper "cli"), which decides whether it becomes public.
    ("tests/unit/test_hostile_answers.py", "clientreg._render"),
}

#: What a user of the library needs without knowing the module layout (issue 12: a deliberate API).
EXPECTED = {
    "parse_document", "OAuthClient", "OAuthClientSpec", "AuthorizationServer", "ClusterAuthorizationServer",
    "ClientregError", "ConfigurationError", "PolicyViolation", "ProtocolError", "TransportError",
    "LocalStore", "ServerConnection", "HttpClient", "HttpSettings", "AddressPolicy", "discover",
    "Desired", "plan", "apply", "reconcile",
}


def private_imports(source: str) -> set[str]:
    """Every import in ``source`` (at any depth) that names a private clientreg module or name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if _private(alias.name))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if _private(node.module):
                found.add(node.module)
            elif node.module.split(".")[0] == "clientreg":
                found.update(f"{node.module}.{alias.name}" for alias in node.names if alias.name.startswith("_"))
    return found


def _private(dotted: str) -> bool:
    parts = dotted.split(".")
    return parts[0] == "clientreg" and any(part.startswith("_") for part in parts[1:])


def test_every_public_name_exists_and_is_listed_once() -> None:
    assert len(clientreg.__all__) == len(set(clientreg.__all__))
    missing = [name for name in clientreg.__all__ if not hasattr(clientreg, name)]
    assert not missing, missing
    assert set(clientreg.__all__) >= EXPECTED, sorted(EXPECTED - set(clientreg.__all__))
    # Nothing private is promised.
    assert not [name for name in clientreg.__all__ if name.startswith("_") and name != "__version__"]


def test_public_names_are_the_objects_their_modules_define() -> None:
    from clientreg import errors, http, spec, ssrf

    assert clientreg.parse_document is spec.parse_document
    assert clientreg.HttpClient is http.HttpClient and clientreg.AddressPolicy is ssrf.AddressPolicy
    assert clientreg.ConfigurationError is errors.ConfigurationError


@pytest.mark.parametrize(("source", "expected"), [
    ("from clientreg._bodies import decode_json", {"clientreg._bodies"}),
    ("import clientreg._render", {"clientreg._render"}),
    ("from clientreg import _bodies, spec", {"clientreg._bodies"}),
    ("def f():\n    from clientreg.spec import _check_cimd_url", {"clientreg.spec._check_cimd_url"}),
    ("from clientreg.spec import parse_document\nfrom clientreg import http\nimport clientreg", set()),
    ("from clientreg_operator.handlers import _owning_client", set()),  # not clientreg's API
])
def test_the_private_import_finder(source: str, expected: set[str]) -> None:
    assert private_imports(source) == expected


def _offenders() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for folder in CONSUMERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if ".venv" in path.parts or "node_modules" in path.parts:
                continue
            relative = path.relative_to(ROOT).as_posix()
            found.update((relative, name) for name in private_imports(path.read_text()))
    return found


def test_front_ends_and_tests_import_no_private_clientreg_name() -> None:
    new = sorted(_offenders() - KNOWN_PRIVATE_IMPORTS)
    assert not new, f"private clientreg imports (use clientreg.<name> or a public module): {new}"


def test_the_private_import_allow_list_only_shrinks() -> None:
    fixed = sorted(KNOWN_PRIVATE_IMPORTS - _offenders())
    assert not fixed, f"remove from KNOWN_PRIVATE_IMPORTS (no longer imported): {fixed}"
