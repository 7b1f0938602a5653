"""``kubectl clientreg`` / ``clientreg-operator rotate|status`` against a fake API server (issue 15: cmctl parity)."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path
from typing import Any

import pytest
from clientreg_operator import cli, kubectl_plugin
from clientreg_operator.kubectl_plugin import ApiFailed, NotFound, run_command

from clientreg_kube.conventions import ROTATE_ANNOTATION

ROOT = Path(__file__).resolve().parents[2]


def _client(namespace: str, name: str, labels: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
    return {"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
            "metadata": {"namespace": namespace, "name": name, "labels": labels or {}, "generation": 1},
            "spec": {"serverRef": {"kind": "AuthorizationServer", "name": "as"}}, "status": status}


class FakeApi:
    def __init__(self, *clients: dict[str, Any]) -> None:
        self.clients = {(c["metadata"]["namespace"], c["metadata"]["name"]): c for c in clients}
        self.annotated: list[tuple[str, str, dict[str, str]]] = []
        self.events_of: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.forbidden: set[tuple[str, str]] = set()

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        if (namespace, name) not in self.clients:
            raise NotFound(name)
        return self.clients[(namespace, name)]

    def list_clients(self, namespace: str | None, selector: str | None) -> list[dict[str, Any]]:
        wanted = dict(item.split("=", 1) for item in selector.split(",")) if selector else {}
        return [c for (ns, _), c in sorted(self.clients.items())
                if (namespace is None or ns == namespace) and wanted.items() <= c["metadata"]["labels"].items()]

    def annotate(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        if (namespace, name) in self.forbidden:
            raise ApiFailed(f"cannot annotate OAuthClient {namespace}/{name}: HTTP 403 Forbidden")
        if (namespace, name) not in self.clients:
            raise NotFound(name)
        self.annotated.append((namespace, name, annotations))

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return self.events_of.get((namespace, name), [])


def _run(api: FakeApi, *argv: str, namespace: str = "tenant-a") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = kubectl_plugin.build_parser().parse_args(list(argv))
    if args.namespace is None:
        args.namespace = namespace  # what connect() would read from the current context
    code = run_command(args, out=out, err=err, api=api)
    return code, out.getvalue(), err.getvalue()


def _fleet() -> FakeApi:
    return FakeApi(_client("tenant-a", "web", {"team": "x"}), _client("tenant-a", "api", {"team": "y"}),
                   _client("tenant-b", "web", {"team": "x"}))


def test_rotate_all_marks_every_client_of_the_namespace_only() -> None:
    api = _fleet()
    code, out, _ = _run(api, "rotate", "--all", "-n", "tenant-a", "--request", "r1")
    assert code == 0
    assert sorted((ns, n) for ns, n, _ in api.annotated) == [("tenant-a", "api"), ("tenant-a", "web")]
    assert all(a == {ROTATE_ANNOTATION: "r1"} for _, _, a in api.annotated)
    assert "tenant-a/api" in out and "tenant-a/web" in out


def test_rotate_selector_across_all_namespaces() -> None:
    api = _fleet()
    code, _, _ = _run(api, "rotate", "-l", "team=x", "-A")
    assert code == 0
    assert sorted((ns, n) for ns, n, _ in api.annotated) == [("tenant-a", "web"), ("tenant-b", "web")]


def test_rotate_several_names_uses_the_current_namespace_unless_qualified() -> None:
    api = _fleet()
    code, _, _ = _run(api, "rotate", "web", "tenant-b/web", namespace="tenant-a")
    assert code == 0
    assert [(ns, n) for ns, n, _ in api.annotated] == [("tenant-a", "web"), ("tenant-b", "web")]


def test_rotate_of_a_missing_client_says_not_found_and_fails() -> None:
    api = _fleet()
    code, _out, err = _run(api, "rotate", "tenant-a/nope", "web")
    assert code == 1
    assert "OAuthClient tenant-a/nope not found" in err and "HTTP" not in err
    assert [(ns, n) for ns, n, _ in api.annotated] == [("tenant-a", "web")]  # the others are still rotated


def test_rotate_refused_by_rbac_names_the_client_and_the_status() -> None:
    api = _fleet()
    api.forbidden.add(("tenant-a", "web"))
    code, _, err = _run(api, "rotate", "web")
    assert code == 1 and "tenant-a/web" in err and "403" in err


@pytest.mark.parametrize("argv", [["rotate"], ["rotate", "web", "--all"], ["rotate", "web", "-A"],
                                  ["rotate", "-l", "team=x", "web"]])
def test_rotate_refuses_ambiguous_selections(argv: list[str]) -> None:
    api = _fleet()
    code, _, err = _run(api, *argv)
    assert code == 2 and err and api.annotated == []


def test_rotate_with_nothing_selected_says_so() -> None:
    code, _, err = _run(_fleet(), "rotate", "-l", "team=z")
    assert code == 0 and "no OAuthClients matching 'team=z' found in namespace tenant-a" in err


def test_a_name_that_is_not_a_dns_name_never_reaches_the_api() -> None:
    api = _fleet()
    code, _, err = _run(api, "rotate", "tenant-a/../../secrets")
    assert code == 2 and "name" in err and api.annotated == []


def test_status_prints_conditions_ids_rotation_retiring_and_last_events() -> None:
    body = _client("tenant-a", "web", clientId="abc123", secretName="web-oauth", server="AuthorizationServer/as",
                   nextRotation="2026-12-31T00:00:00Z", secretExpiresAt="2027-01-01T00:00:00Z",
                   retiring=[{"clientId": "old-1", "deleteAfter": "2026-12-06T00:00:00Z"}],
                   conditions=[{"type": "Ready", "status": "True", "reason": "InSync", "message": "all good",
                                "lastTransitionTime": "2026-12-05T00:00:00Z"},
                               {"type": "Synced", "status": "False", "reason": "ServerRefusedValue",
                                "message": "the AS did not keep\x1b[2J scope"},
                               {"type": "Stalled", "status": "False", "reason": "InSync"}])
    api = FakeApi(body)
    api.events_of[("tenant-a", "web")] = [
        {"type": "Normal", "reason": f"Old{i}", "message": f"m{i}", "lastTimestamp": f"2026-12-05T00:00:{i:02d}Z"}
        for i in range(15)] + [{"type": "Normal", "reason": "Registered", "message": "registering a new client",
                                "lastTimestamp": "2026-12-05T01:00:00Z"}]
    code, out, _ = _run(api, "status", "web", "--events", "3")
    assert code == 0
    for text in ("tenant-a/web", "abc123", "web-oauth", "AuthorizationServer/as", "2026-12-31T00:00:00Z",
                 "Ready: True (InSync)", "Synced: False (ServerRefusedValue)", "Stalled: False", "old-1",
                 "Registered: registering a new client", "Old14", "Old13"):
        assert text in out, (text, out)
    assert "Old12" not in out  # only the last 3 events
    assert "\x1b" not in out and "\\x1b[2J" in out  # a hostile message cannot drive the terminal


def test_status_of_a_missing_client_says_not_found() -> None:
    code, out, err = _run(FakeApi(), "status", "tenant-a/nope")
    assert code == 1 and out == "" and "OAuthClient tenant-a/nope not found" in err


def test_inspect_is_an_alias_of_status_and_the_operator_cli_has_both() -> None:
    args = cli.build_parser().parse_args(["inspect", "web", "-n", "x", "--kubeconfig", "/k", "--context", "c"])
    assert args.handler is kubectl_plugin.status and (args.namespace, args.kubeconfig, args.context) == ("x", "/k", "c")
    args = cli.build_parser().parse_args(["rotate", "--all", "-A"])
    assert args.handler is kubectl_plugin.rotate and args.all and args.all_namespaces


def test_kubectl_clientreg_is_an_installed_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-clientreg"] == "clientreg_operator.kubectl_plugin:main"


def test_the_current_context_namespace_is_read_from_the_given_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("""apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts:
- {name: one, context: {cluster: c, user: u, namespace: tenant-one}}
- {name: two, context: {cluster: c, user: u, namespace: tenant-two}}
current-context: one
""")
    assert kubectl_plugin.connect(str(kubeconfig), None)[1] == "tenant-one"
    assert kubectl_plugin.connect(str(kubeconfig), "two")[1] == "tenant-two"
