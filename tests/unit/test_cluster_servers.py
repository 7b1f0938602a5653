"""ClusterAuthorizationServer.spec.allowedNamespaces: which namespaces may spend the platform's token.

The rule itself (clientreg.tenancy), its place in the core's resolve_server, and both front ends that
know cluster servers: the operator (which reads namespace labels) and the CLI (which knows none). A
refused namespace must cost nothing: no request to the AS, no read of its initial access token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import SecretStr, ValidationError
from support.fake_as import ISSUER

from clientreg.cli import main
from clientreg.errors import ConfigurationError, NamespaceNotAllowed, PolicyViolation
from clientreg.resolve import resolve_server
from clientreg.server import ServerConnection
from clientreg.spec import AuthorizationServerSpec, ClusterAuthorizationServerSpec, OAuthClient, parse_document
from clientreg.tenancy import AllowedNamespaces, namespace_refusal

IAT = "iat-CLUSTER-SECRET-1234"


def allowed(**data: Any) -> AllowedNamespaces:
    return AllowedNamespaces.model_validate(data)


def client_in(namespace: str, kind: str = "ClusterAuthorizationServer") -> OAuthClient:
    parsed = parse_document({"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
                             "metadata": {"name": "billing", "namespace": namespace},
                             "spec": {"serverRef": {"kind": kind, "name": "platform"},
                                      "grantTypes": ["client_credentials"]}})
    assert isinstance(parsed, OAuthClient)
    return parsed


# --- the model ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "words"), [
    ({"names": ["Tenant-A"]}, "names.0"),
    ({"names": ["../kube-system"]}, "names.0"),
    ({"names": ["a" * 64]}, "names.0"),
    ({"selector": {}}, "empty selector would match every namespace"),
    ({"selector": {"matchLabels": {}, "matchExpressions": []}}, "empty selector"),
    ({"selector": {"matchExpressions": [{"key": "tier", "operator": "In"}]}}, "needs at least one value"),
    ({"selector": {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": []}]}}, "needs at least"),
    ({"selector": {"matchExpressions": [{"key": "tier", "operator": "Exists", "values": ["x"]}]}}, "takes no values"),
    ({"selector": {"matchExpressions": [{"key": "tier", "operator": "Gt", "values": ["1"]}]}}, "operator"),
    ({"selector": {"matchLabels": {"bad key!": "x"}}}, "is not a label key"),
    ({"selector": {"matchLabels": {"tier": "a b"}}}, "matchLabels"),
    ({"selector": {"matchLabels": {f"{'p' * 254}/name": "x"}}}, "is not a label key"),
    ({"selector": {"matchExpressions": [{"key": "x/" + "n" * 64, "operator": "Exists"}]}}, "is not a label key"),
    ({"nmes": ["typo"]}, "nmes"),
])
def test_invalid_allowed_namespaces_are_refused_naming_the_field(data: dict[str, Any], words: str) -> None:
    document = {"apiVersion": "clientreg.dev/v1alpha1", "kind": "ClusterAuthorizationServer",
                "metadata": {"name": "platform"}, "spec": {"issuer": ISSUER, "allowedNamespaces": data}}
    with pytest.raises(ConfigurationError) as caught:
        parse_document(document)
    assert "spec.allowedNamespaces" in str(caught.value) and words in str(caught.value)


def test_allowed_namespaces_belong_to_cluster_servers_only() -> None:
    document = {"apiVersion": "clientreg.dev/v1alpha1", "kind": "AuthorizationServer",
                "metadata": {"name": "own", "namespace": "tenant-a"},
                "spec": {"issuer": ISSUER, "allowedNamespaces": {"names": ["tenant-b"]}}}
    with pytest.raises(ConfigurationError, match=r"spec\.allowedNamespaces"):
        parse_document(document)
    with pytest.raises(ValidationError):
        AuthorizationServerSpec.model_validate({"issuer": ISSUER, "allowedNamespaces": {"names": ["x"]}})


# --- the rule ----------------------------------------------------------------------------------------------

class Labels:
    """A namespace-labels lookup that counts its calls."""

    def __init__(self, table: dict[str, dict[str, str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def __call__(self, namespace: str) -> dict[str, str] | None:
        self.asked.append(namespace)
        return self.table.get(namespace)


def test_unset_allows_every_namespace_without_looking_at_labels() -> None:
    labels = Labels({})
    for namespace in ("default", "tenant-a", "kube-system"):
        assert namespace_refusal(None, namespace, labels) is None
    assert labels.asked == []


def test_names_admit_listed_namespaces_without_looking_at_labels() -> None:
    labels = Labels({"tenant-c": {"tier": "gold"}})
    rule = allowed(names=["tenant-a", "tenant-b"], selector={"matchLabels": {"tier": "gold"}})
    assert namespace_refusal(rule, "tenant-a", labels) is None
    assert namespace_refusal(rule, "tenant-b", labels) is None
    assert labels.asked == []


def test_names_alone_refuse_the_rest_without_looking_at_labels() -> None:
    labels = Labels({"tenant-c": {"tier": "gold"}})
    why = namespace_refusal(allowed(names=["tenant-a"]), "tenant-c", labels)
    assert why is not None and "spec.allowedNamespaces.names" in why
    assert labels.asked == []
    assert namespace_refusal(allowed(), "tenant-a", labels) is not None  # {} admits nobody


@pytest.mark.parametrize(("selector", "namespace_labels", "admitted"), [
    ({"matchLabels": {"tier": "gold"}}, {"tier": "gold"}, True),
    ({"matchLabels": {"tier": "gold"}}, {"tier": "gold", "team": "x"}, True),
    ({"matchLabels": {"tier": "gold"}}, {"tier": "silver"}, False),
    ({"matchLabels": {"tier": "gold"}}, {}, False),
    ({"matchLabels": {"tier": "gold", "team": "x"}}, {"tier": "gold"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold", "silver"]}]}, {"tier": "silver"},
     True),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]}, {"tier": "bronze"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]}, {}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["free"]}]}, {"tier": "gold"}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["free"]}]}, {}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["free"]}]}, {"tier": "free"}, False),
    ({"matchExpressions": [{"key": "clientreg.dev/tenant", "operator": "Exists"}]},
     {"clientreg.dev/tenant": ""}, True),
    ({"matchExpressions": [{"key": "clientreg.dev/tenant", "operator": "Exists"}]}, {"other": "x"}, False),
    ({"matchExpressions": [{"key": "quarantine", "operator": "DoesNotExist"}]}, {"tier": "gold"}, True),
    ({"matchExpressions": [{"key": "quarantine", "operator": "DoesNotExist"}]}, {"quarantine": "yes"}, False),
    ({"matchLabels": {"tier": "gold"},
      "matchExpressions": [{"key": "quarantine", "operator": "DoesNotExist"}]}, {"tier": "gold", "quarantine": ""},
     False),
])
def test_the_selector_admits_by_labels(selector: dict[str, Any], namespace_labels: dict[str, str],
                                       admitted: bool) -> None:
    labels = Labels({"tenant-c": namespace_labels})
    why = namespace_refusal(allowed(names=["tenant-a"], selector=selector), "tenant-c", labels)
    assert (why is None) is admitted
    assert labels.asked == ["tenant-c"]
    if not admitted:
        assert why is not None and "spec.allowedNamespaces.selector" in why


def test_without_known_labels_only_names_admit() -> None:
    # The CLI: a selector that every label set would match still admits nobody.
    rule = allowed(names=["tenant-a"], selector={"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]})
    assert namespace_refusal(rule, "tenant-a", None) is None
    why = namespace_refusal(rule, "tenant-b", None)
    assert why is not None and "Kubernetes only" in why


def test_a_namespace_that_does_not_exist_is_refused() -> None:
    rule = allowed(selector={"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]})
    assert namespace_refusal(rule, "gone", Labels({})) == "the namespace does not exist"


# --- resolve_server: the core's isolation rules -------------------------------------------------------------

CLUSTER_SPEC = ClusterAuthorizationServerSpec.model_validate({
    "issuer": ISSUER, "initialAccessToken": {"secretKeyRef": {"name": "platform-iat", "key": "token"}},
    "allowedNamespaces": {"names": ["tenant-a"], "selector": {"matchLabels": {"tier": "gold"}}}})


class Lookups:
    def __init__(self, spec: AuthorizationServerSpec | None = CLUSTER_SPEC) -> None:
        self.spec = spec
        self.secrets: list[tuple[str, str, str]] = []

    def server(self, kind: str, namespace: str | None, name: str) -> AuthorizationServerSpec | None:
        return self.spec

    def secret(self, namespace: str, name: str, key: str) -> str | None:
        self.secrets.append((namespace, name, key))
        return IAT


def test_resolve_server_refuses_a_namespace_before_reading_or_sending_anything() -> None:
    lookups, labels = Lookups(), Labels({"tenant-b": {"tier": "free", "team": "tenant-a"}})
    with pytest.raises(NamespaceNotAllowed) as caught:
        resolve_server(client_in("tenant-b"), lookups.server, lookups.secret, namespace_labels=labels)
    error = caught.value
    assert isinstance(error, PolicyViolation) and error.reason == "NamespaceNotAllowed" and error.exit_code == 2
    assert "ClusterAuthorizationServer 'platform'" in str(error) and "tenant-b" in str(error)
    assert error.rule == "ClusterAuthorizationServer.spec.allowedNamespaces"
    assert "OAuthClient/billing" in str(error) and "spec.serverRef" in str(error)
    assert "tenant-a" not in str(error), "the refusal must not list the namespaces that are allowed"
    assert IAT not in str(error)
    assert lookups.secrets == [] and labels.asked == ["tenant-b"]


def test_resolve_server_checks_the_namespace_before_handing_out_a_cached_connection() -> None:
    # The cache is keyed by the cluster server alone and shared by every namespace.
    lookups = Lookups()
    cached = ServerConnection.for_spec(CLUSTER_SPEC, name="cached", initial_access_token=SecretStr(IAT))
    cache = {("ClusterAuthorizationServer", "", "platform"): cached}
    try:
        assert resolve_server(client_in("tenant-a"), lookups.server, lookups.secret, cache=cache) is cached
        with pytest.raises(NamespaceNotAllowed):
            resolve_server(client_in("tenant-b"), lookups.server, lookups.secret, cache=cache)
    finally:
        cached.close()


@pytest.mark.parametrize(("namespace", "labels"), [("tenant-a", {}), ("tenant-g", {"tier": "gold"})])
def test_resolve_server_admits_by_name_or_by_labels(namespace: str, labels: dict[str, str]) -> None:
    lookups = Lookups()
    conn = resolve_server(client_in(namespace), lookups.server, lookups.secret,
                          namespace_labels=Labels({namespace: labels}))
    try:
        assert conn.initial_access_token == SecretStr(IAT)
        assert lookups.secrets == [("clientreg", "platform-iat", "token")]
    finally:
        conn.close()


def test_namespaced_servers_and_unrestricted_cluster_servers_are_not_checked() -> None:
    labels = Labels({})
    unrestricted = ClusterAuthorizationServerSpec.model_validate({"issuer": ISSUER})
    for kind, spec in (("AuthorizationServer", AuthorizationServerSpec.model_validate({"issuer": ISSUER})),
                       ("ClusterAuthorizationServer", unrestricted)):
        lookups = Lookups(spec)
        resolve_server(client_in("anywhere", kind), lookups.server, lookups.secret, namespace_labels=labels).close()
    assert labels.asked == []


# --- the CLI: documents carry namespace names, never labels --------------------------------------------------

CLI_DOCS = """apiVersion: clientreg.dev/v1alpha1
kind: ClusterAuthorizationServer
metadata: {{name: platform}}
spec:
  registrationEndpoint: http://127.0.0.1:9/register
  initialAccessToken: {{secretKeyRef: {{name: platform-iat, key: token}}}}
  allowedNamespaces:
    names: [tenant-a]
    selector: {{matchExpressions: [{{key: quarantine, operator: DoesNotExist}}]}}
---
apiVersion: v1
kind: Secret
metadata: {{name: platform-iat, namespace: clientreg}}
stringData: {{token: {iat}}}
---
apiVersion: clientreg.dev/v1alpha1
kind: OAuthClient
metadata: {{name: billing, namespace: tenant-b}}
spec:
  serverRef: {{kind: ClusterAuthorizationServer, name: platform}}
  grantTypes: [client_credentials]
"""


@pytest.mark.parametrize("command", ["apply", "plan"])
def test_cli_refuses_a_namespace_the_cluster_server_does_not_list(tmp_path: Path, command: str) -> None:
    (tmp_path / "docs.yaml").write_text(CLI_DOCS.format(iat=IAT))
    state = tmp_path / "state"
    # Port 9 on loopback (discard, nothing listens): a request would surface as a transport error (exit 5).
    result = CliRunner().invoke(main, [command, "-f", str(tmp_path / "docs.yaml"), "--state-dir", str(state),
                                       "-o", "json"])
    assert result.exit_code == 2, result.output
    assert "NamespaceNotAllowed" in result.output and "tenant-b" in result.output
    assert "Kubernetes only" in result.output
    assert IAT not in result.output and "Traceback" not in result.output
    assert not state.exists() or not list(state.rglob("*.json"))


