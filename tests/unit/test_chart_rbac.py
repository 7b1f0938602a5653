"""The chart's RBAC, rendered with the real Helm binary and compared rule by rule with what the operator calls.

Every permission here has a call site (docs/security.md, "What the operator can read and write"); a rule
that widens (a new verb, a wildcard, a resource) fails this test until the expectation below is changed
on purpose, in review.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.cache import component_dir, is_complete
from support.kube import HELM_VERSION, helm_env

CHART = Path(__file__).resolve().parents[2] / "charts" / "clientreg"
CR = "clientreg.dev"

TENANT = [
    ((CR,), ("oauthclients",), ("get", "list", "watch", "patch")),
    ((CR,), ("oauthclients/status", "authorizationservers/status"), ("patch",)),
    ((CR,), ("oauthclients/finalizers",), ("update",)),
    ((CR,), ("authorizationservers",), ("get", "list", "watch")),
    (("",), ("secrets",), ("get", "list", "watch", "create", "update", "patch", "delete")),
    (("",), ("events",), ("create",)),
]
CLUSTER = [
    ((CR,), ("clusterauthorizationservers",), ("get", "list", "watch")),
    ((CR,), ("clusterauthorizationservers/status",), ("patch",)),
    (("",), ("namespaces",), ("get",)),
]
LEASES = [(("coordination.k8s.io",), ("leases",), ("get", "create", "update"))]
CLUSTER_SERVER_SECRETS = [(("",), ("secrets",), ("get",))]
#: The records Role (release namespace only): record Secrets are written, read, released, swept, and listed
#: and watched by every replica to serve published documents.
RECORDS = [(("",), ("secrets",), ("get", "list", "watch", "create", "update", "patch", "delete"))]

Rule = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def _helm() -> Path:
    # Never build here (unit tests stay fast): the e2e build puts it into the cache.
    folder = component_dir("helm", HELM_VERSION)
    if not (is_complete(folder) and (folder / "helm").exists()):
        pytest.skip(f"helm {HELM_VERSION} is not built yet (python -m support.build_all builds it)")
    return folder / "helm"


def render(tmp_path: Path, *sets: str) -> list[dict[str, Any]]:
    argv = [str(_helm()), "template", "rel", str(CHART), "--namespace", "ops"]
    for item in sets:
        argv += ["--set", item]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120,
                         env=helm_env({"PATH": "/usr/bin:/bin"}, tmp_path)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def rules(docs: list[dict[str, Any]], kind: str, name: str) -> list[Rule]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} rendered"
    return [(tuple(r["apiGroups"]), tuple(r["resources"]), tuple(r["verbs"])) for r in found[0]["rules"]]


def bindings(docs: list[dict[str, Any]]) -> set[tuple[str, str | None, str, str]]:
    """(kind, namespace, roleRef kind, roleRef name) of every binding, each to the chart's ServiceAccount."""
    out = set()
    for doc in docs:
        if doc["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            assert doc["subjects"] == [{"kind": "ServiceAccount", "name": "rel-clientreg", "namespace": "ops"}]
            out.add((doc["kind"], doc["metadata"].get("namespace"), doc["roleRef"]["kind"], doc["roleRef"]["name"]))
    return out


def test_default_install_grants_exactly_the_calls_the_operator_makes(tmp_path: Path) -> None:
    docs = render(tmp_path)
    assert rules(docs, "ClusterRole", "rel-clientreg-tenant") == TENANT
    assert rules(docs, "ClusterRole", "rel-clientreg-cluster-servers") == CLUSTER
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    assert rules(docs, "Role", "rel-clientreg-leader-election") == LEASES
    assert roles["rel-clientreg-leader-election"]["metadata"]["namespace"] == "ops"
    assert ("ClusterRoleBinding", None, "ClusterRole", "rel-clientreg-tenant") in bindings(docs)
    assert ("ClusterRoleBinding", None, "ClusterRole", "rel-clientreg-cluster-servers") in bindings(docs)
    if "rel-clientreg-records" in roles:  # the records branch of issue 11 adds it
        assert rules(docs, "Role", "rel-clientreg-records") == RECORDS
        assert roles["rel-clientreg-records"]["metadata"]["namespace"] == "ops"
        assert ("RoleBinding", "ops", "Role", "rel-clientreg-records") in bindings(docs)
    for doc in docs:
        for rule in doc.get("rules") or []:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], doc["metadata"]["name"]


def test_strict_secrets_mode_drops_list_and_watch_on_secrets(tmp_path: Path) -> None:
    docs = render(tmp_path, "secrets.watchCredentials=false")
    tenant = rules(docs, "ClusterRole", "rel-clientreg-tenant")
    secrets = [r for r in tenant if r[1] == ("secrets",)]
    assert secrets == [(("",), ("secrets",), ("get", "create", "update", "patch", "delete"))]
    args = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--no-watch-credentials" in args
    default_args = next(d for d in render(tmp_path) if d["kind"] == "Deployment")[
        "spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--no-watch-credentials" not in default_args


def test_restarting_deployments_adds_list_and_patch_on_deployments_only(tmp_path: Path) -> None:
    tenant = rules(render(tmp_path, "restartDeploymentsOnRotation=true"), "ClusterRole", "rel-clientreg-tenant")
    assert tenant == [*TENANT, (("apps",), ("deployments",), ("list", "patch"))]


def test_watch_namespaces_bind_the_tenant_role_only_there(tmp_path: Path) -> None:
    docs = render(tmp_path, "watchNamespaces={a,b}")
    found = bindings(docs)
    tenant = {b for b in found if b[3] == "rel-clientreg-tenant"}
    assert tenant == {("RoleBinding", "a", "ClusterRole", "rel-clientreg-tenant"),
                      ("RoleBinding", "b", "ClusterRole", "rel-clientreg-tenant")}
    # ClusterAuthorizationServer Secrets: get only, in the cluster resource namespace only.
    assert rules(docs, "Role", "rel-clientreg-cluster-server-secrets") == CLUSTER_SERVER_SECRETS
    assert ("RoleBinding", "ops", "Role", "rel-clientreg-cluster-server-secrets") in found
    assert ("ClusterRoleBinding", None, "ClusterRole", "rel-clientreg-cluster-servers") in found


def test_every_role_the_chart_renders_is_accounted_for(tmp_path: Path) -> None:
    """A new Role or ClusterRole must be added to the expectations above (and to docs/security.md)."""
    known = {"rel-clientreg-tenant", "rel-clientreg-cluster-servers", "rel-clientreg-leader-election",
             "rel-clientreg-cluster-server-secrets",
             # records helper (issue 11): record Secrets in the operator's own namespace.
             "rel-clientreg-records"}
    for sets in ((), ("watchNamespaces={a}",), ("restartDeploymentsOnRotation=true",)):
        docs = render(tmp_path, *sets)
        names = {d["metadata"]["name"] for d in docs if d["kind"] in ("Role", "ClusterRole")}
        assert names <= known, f"unreviewed roles: {sorted(names - known)}"
