"""Names and free text (issue 11, findings 1 and 8): every spelling of a traversal is refused at every door.

The doors: the core's checks (clientreg.names), the models through parse_document (the CLI's and the
operator's path), the generated CRD schema (what the API server enforces at admission), the Pulumi
provider's argument checks, the CLI's state files, and the operator's API client (which must refuse
before any request exists).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from clientreg_pulumi import args as pulumi_args

from clientreg.documents import parse_secret
from clientreg.errors import ConfigurationError
from clientreg.names import (
    check_display_text,
    check_dns1123_label,
    check_dns1123_subdomain,
    check_secret_key,
    path_segment,
)
from clientreg.spec import parse_document
from clientreg.store import Entry, LocalStore
from clientreg_kube.cluster import KubeCluster

CHART_CRDS = Path(__file__).resolve().parents[2] / "charts" / "clientreg" / "crds"
SUBDOMAIN_RULE = "a lowercase RFC 1123 subdomain: a-z, 0-9, '-', '.', at most 253 characters"

#: Spellings of "somewhere else" a hostile tenant tries in a name.
BAD_NAMES = [
    "../x",
    "..",
    ".",
    "../../kube-system/secrets/platform-iat",
    "..%2f..%2fkube-system",
    "%2e%2e",
    "a/b",
    "a?watch=1",
    "a#b",
    "a b",
    "Upper",
    "t\u0435nant",  # Cyrillic ie (U+0435): looks like "tenant"
    "\uff41pp",  # fullwidth a
    "web.",  # a trailing dot
    ".web",
    "-web",
    "web-",
    "",
    "a" * 254,
    "x\n",
    "x\r\n",
    "\u202eweb",
    "web\u0000",
]
#: Secret keys are more liberal (letters of both cases, '_') but no less closed.
BAD_KEYS = ["../x", "a/b", "a b", "", "x\n", "\u202etoken", "\u043a\u043b\u044e\u0447", "a" * 254, "%2e%2e",
            "key:value"]


# --- the core's checks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BAD_NAMES, ids=ascii)
def test_bad_names_are_refused_naming_field_and_rule(name: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_dns1123_subdomain(name, field="spec.serverRef.name")
    assert caught.value.field == "spec.serverRef.name"
    assert caught.value.rule == SUBDOMAIN_RULE
    assert str(caught.value).startswith("spec.serverRef.name: ")
    with pytest.raises(ConfigurationError):
        path_segment(name)
    with pytest.raises(ConfigurationError):
        path_segment(name, kind="namespace")


@pytest.mark.parametrize("name", ["web", "web-oauth", "a.b-c.d", "0", "a" * 253, "tenant-a.portal"])
def test_good_names_pass_and_quote_to_themselves(name: str) -> None:
    assert check_dns1123_subdomain(name, field="f") == name
    assert path_segment(name) == name


def test_a_namespace_is_a_label_not_a_subdomain() -> None:
    assert path_segment("tenant-a", kind="namespace") == "tenant-a"
    assert check_dns1123_label("a" * 63, field="metadata.namespace") == "a" * 63
    for bad in ("a.b", "a" * 64):
        with pytest.raises(ConfigurationError, match="RFC 1123 label"):
            path_segment(bad, kind="namespace")


def test_a_value_that_is_not_a_string_is_refused() -> None:
    for value in (None, 5, ["web"], {"name": "web"}):
        with pytest.raises(ConfigurationError, match="expected a string"):
            path_segment(value)


@pytest.mark.parametrize("key", BAD_KEYS, ids=ascii)
def test_bad_secret_keys_are_refused(key: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_secret_key(key, field="spec.initialAccessToken.secretKeyRef.key")
    assert caught.value.field == "spec.initialAccessToken.secretKeyRef.key"
    assert "a Secret key" in str(caught.value)


@pytest.mark.parametrize("key", ["token", "client_id", "TOKEN.v2", "tls.crt", "a" * 253])
def test_good_secret_keys_pass(key: str) -> None:
    assert check_secret_key(key, field="f") == key


# --- through parse_document: the CLI's and the operator's path --------------------------------------------

def _server(spec_extra: dict[str, Any] | None = None, kind: str = "AuthorizationServer") -> dict[str, Any]:
    return {"apiVersion": "clientreg.dev/v1alpha1", "kind": kind,
            "metadata": {"name": "dev", "namespace": "tenant-a"} if kind == "AuthorizationServer" else {"name": "dev"},
            "spec": {"issuer": "https://auth.example.com", **(spec_extra or {})}}


def _client(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
            "metadata": {"name": "web", "namespace": "tenant-a"},
            "spec": {"serverRef": {"name": "dev"}, "grantTypes": ["client_credentials"], **spec}}


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node = doc
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return doc


NAME_FIELDS: list[tuple[str, Any]] = [
    ("metadata.name", lambda: _client()),
    ("spec.serverRef.name", lambda: _client()),
    ("spec.secretName", lambda: _client()),
    ("spec.initialAccessToken.secretKeyRef.name",
     lambda: _server({"initialAccessToken": {"secretKeyRef": {"name": "iat", "key": "token"}}})),
    ("spec.softwareStatement.secretKeyRef.name",
     lambda: _server({"softwareStatement": {"secretKeyRef": {"name": "ss", "key": "jwt"}}})),
    ("spec.initialAccessToken.secretKeyRef.name",
     lambda: _server({"initialAccessToken": {"secretKeyRef": {"name": "iat", "key": "token"}}},
                     kind="ClusterAuthorizationServer")),
]
TRAVERSALS = ["../../kube-system/secrets/platform-iat", "..%2f..%2fkube-system", "a/b", "%2e%2e", "Upper",
              "t\u0435nant", "web.", "", "a" * 254, "x\n", "\u202eweb"]


@pytest.mark.parametrize(("field", "document"), NAME_FIELDS, ids=[f for f, _ in NAME_FIELDS])
@pytest.mark.parametrize("name", TRAVERSALS, ids=ascii)
def test_parse_document_refuses_a_bad_name_in_every_name_field(field: str, document: Any, name: str) -> None:
    doc = _set(document(), field, name)
    with pytest.raises(ConfigurationError) as caught:
        parse_document(doc, source="clients.yaml")
    assert caught.value.field == field
    assert SUBDOMAIN_RULE in str(caught.value) or "RFC 1123 subdomain" in str(caught.value)
    # The hostile value reaches the message only escaped: no raw newline or bidi override in a terminal.
    assert "\n" not in str(caught.value) and "\u202e" not in str(caught.value)


KEY_FIELDS: list[tuple[str, Any]] = [
    ("spec.initialAccessToken.secretKeyRef.key",
     lambda: _server({"initialAccessToken": {"secretKeyRef": {"name": "iat", "key": "token"}}})),
    ("spec.secretTemplate.clientIdKey", lambda: _client(secretTemplate={})),
    ("spec.secretTemplate.clientSecretKey", lambda: _client(secretTemplate={})),
    ("spec.secretTemplate.issuerKey", lambda: _client(secretTemplate={})),
    ("spec.secretTemplate.tokenEndpointKey", lambda: _client(secretTemplate={})),
]


@pytest.mark.parametrize(("field", "document"), KEY_FIELDS, ids=[f for f, _ in KEY_FIELDS])
@pytest.mark.parametrize("key", ["../x", "a/b", "", "x\n", "\u202etoken", "a" * 254], ids=ascii)
def test_parse_document_refuses_a_bad_secret_key(field: str, document: Any, key: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_document(_set(document(), field, key))
    assert caught.value.field == field
    assert "a Secret key" in str(caught.value)


@pytest.mark.parametrize(("template", "field", "words"), [
    ({"extraData": {"../x": "{clientId}"}}, "spec.secretTemplate.extraData", "a Secret key"),
    ({"labels": {"../x": "a"}}, "spec.secretTemplate.labels", "label or annotation key"),
    ({"labels": {"example.com/a/b": "a"}}, "spec.secretTemplate.labels", "label or annotation key"),
    ({"labels": {"Example.com/team": "a"}}, "spec.secretTemplate.labels", "label or annotation key"),
    ({"labels": {"team": "a/b"}}, "spec.secretTemplate.labels.team", "a Kubernetes label value"),
    ({"labels": {"team": "a" * 64}}, "spec.secretTemplate.labels.team", "a Kubernetes label value"),
    ({"annotations": {"a b": "x"}}, "spec.secretTemplate.annotations", "label or annotation key"),
    ({"annotations": {"team": "x\u202ey"}}, "spec.secretTemplate.annotations.team", "bidirectional"),
    ({"annotations": {"team": "x\ny"}}, "spec.secretTemplate.annotations.team", "control characters"),
])
def test_secret_template_maps_follow_kubernetes_rules(template: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_document(_client(secretTemplate=template))
    assert caught.value.field == field
    assert words in str(caught.value)


def test_a_kubernetes_style_template_is_accepted() -> None:
    parsed = parse_document(_client(secretTemplate={
        "labels": {"app.kubernetes.io/part-of": "portal", "team": "", "tier": "Web_1.0"},
        "annotations": {"reflector.example.com/allowed-namespaces": "a,b", "note": "Café ☕ 日本語"},
        "extraData": {"CLIENT_ID": "{clientId}", "config.env": "ID={clientId}\nSECRET={clientSecret}\n"}}))
    assert parsed.kind == "OAuthClient"


# --- free text ----------------------------------------------------------------------------------------------

FORMATTING = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
              "\u200e", "\u200f", "\u061c", "\u2028", "\u2029"]
CONTROLS = ["\x00", "\x07", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9b"]


@pytest.mark.parametrize("char", FORMATTING + CONTROLS, ids=ascii)
def test_display_text_refuses_controls_and_bidi(char: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_display_text(f"Portal{char}evil", field="spec.clientName")
    assert caught.value.field == "spec.clientName"
    assert f"U+{ord(char):04X} at position 6" in str(caught.value)


def test_display_text_accepts_what_people_write() -> None:
    for text in ("Web Portal", "Café ☕", "ポータル", "بوابة", "Portal (beta) — v2", "ops@example.com"):
        assert check_display_text(text, field="f", max_length=200) == text
    with pytest.raises(ConfigurationError, match="201 characters long; at most 200"):
        check_display_text("a" * 201, field="spec.clientName", max_length=200)


@pytest.mark.parametrize(("spec", "field", "words"), [
    ({"clientName": "Portal\u202e"}, "spec.clientName", "bidirectional"),
    ({"clientName": "Portal\x1b[31m"}, "spec.clientName", "control characters"),
    ({"clientName": "a" * 201}, "spec.clientName", "at most 200"),
    ({"contacts": ["ops@example.com", "x\n@example.com"]}, "spec.contacts.1", "control characters"),
    ({"softwareId": "\u2066id"}, "spec.softwareId", "bidirectional"),
    ({"softwareVersion": "1.0\u200f"}, "spec.softwareVersion", "bidirectional"),
    ({"responseTypes": ["code\u202e"], "grantTypes": ["authorization_code"],
      "redirectUris": ["https://a.example.com/cb"]}, "spec.responseTypes.0", "bidirectional"),
    ({"scope": "a " * 3000}, "spec.scope", ""),
    ({"tokenEndpointAuthSigningAlg": "RS256\x00"}, "spec.tokenEndpointAuthSigningAlg", "control characters"),
    ({"additionalMetadata": {"client_name#ja": "ポータル\u202e"}}, "spec.additionalMetadata",
     "client_name#ja: "),
    ({"additionalMetadata": {"x_tags": [{"label": "a\x1b"}]}}, "spec.additionalMetadata",
     "x_tags[0].label: "),
    ({"additionalMetadata": {"x\u202e": "a"}}, "spec.additionalMetadata", "bidirectional"),
])
def test_free_text_in_a_spec_is_refused_naming_the_field(spec: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_document(_client(**spec), source="clients.yaml")
    assert caught.value.field == field
    assert words in str(caught.value)
    assert "\u202e" not in str(caught.value) and "\x1b" not in str(caught.value)


# --- through the CRD schema: what the API server enforces at admission -----------------------------------

def _crd_schema(plural: str) -> dict[str, Any]:
    crd = yaml.safe_load((CHART_CRDS / f"{plural}.clientreg.dev.yaml").read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    # Python's `$` also matches before a final newline; ECMA-262 and Go's RE2 (the API server) do not.
    if isinstance(instance, str) and not re.search(re.sub(r"\$$", r"\\Z", pattern), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


# OpenAPI v3.0's schema dialect is JSON Schema draft 4's (boolean exclusiveMinimum); patterns as the API server
# reads them.
CrdValidator = jsonschema.validators.extend(jsonschema.Draft4Validator, {"pattern": _ecma_pattern})


def _admission_errors(plural: str, doc: dict[str, Any]) -> list[str]:
    return [".".join(map(str, e.absolute_path)) for e in CrdValidator(_crd_schema(plural)).iter_errors(doc)]


def test_the_crd_schema_accepts_good_documents() -> None:
    server = _server({"initialAccessToken": {"secretKeyRef": {"name": "iat", "key": "token"}}})
    assert _admission_errors("authorizationservers", server) == []
    assert _admission_errors("oauthclients", _client(secretName="web-oauth", clientName="Café ☕",
                                                     secretTemplate={"clientIdKey": "CLIENT_ID"})) == []


CRD_NAME_FIELDS = [("oauthclients", "spec.serverRef.name", _client), ("oauthclients", "spec.secretName", _client),
                   ("authorizationservers", "spec.initialAccessToken.secretKeyRef.name", _server),
                   ("clusterauthorizationservers", "spec.softwareStatement.secretKeyRef.name",
                    lambda: _server(kind="ClusterAuthorizationServer"))]


@pytest.mark.parametrize(("plural", "field", "document"), CRD_NAME_FIELDS,
                         ids=[f"{p}:{f}" for p, f, _ in CRD_NAME_FIELDS])
@pytest.mark.parametrize("name", TRAVERSALS, ids=ascii)
def test_the_crd_schema_refuses_a_bad_name(plural: str, field: str, document: Any, name: str) -> None:
    doc = document()
    if "secretKeyRef" in field:
        _set(doc, field.rsplit(".", 1)[0], {"name": name, "key": "token"})
    else:
        _set(doc, field, name)
    assert _admission_errors(plural, doc) == [field]


@pytest.mark.parametrize(("path", "value"), [
    ("spec.initialAccessToken.secretKeyRef.key", "../x"),
    ("spec.initialAccessToken.secretKeyRef.key", "x\n"),
])
def test_the_crd_schema_refuses_a_bad_secret_key(path: str, value: str) -> None:
    doc = _set(_server(), "spec.initialAccessToken.secretKeyRef", {"name": "iat", "key": value})
    assert _admission_errors("authorizationservers", doc) == [path]


@pytest.mark.parametrize(("spec", "path"), [
    ({"clientName": "Portal\u202e"}, "spec.clientName"),
    ({"clientName": "a" * 201}, "spec.clientName"),
    ({"contacts": ["x\n"]}, "spec.contacts.0"),
    ({"secretTemplate": {"clientIdKey": "a/b"}}, "spec.secretTemplate.clientIdKey"),
    ({"secretTemplate": {"labels": {"team": "a/b"}}}, "spec.secretTemplate.labels.team"),
    ({"secretTemplate": {"annotations": {"note": "\u2066x"}}}, "spec.secretTemplate.annotations.note"),
])
def test_the_crd_schema_refuses_bad_text(spec: dict[str, Any], path: str) -> None:
    assert _admission_errors("oauthclients", _client(**spec)) == [path]


def test_the_crd_checks_map_keys_with_cel() -> None:
    template = _crd_schema("oauthclients")["properties"]["spec"]["properties"]["secretTemplate"]["properties"]
    for name in ("labels", "annotations", "extraData"):
        rules = template[name]["x-kubernetes-validations"]
        assert rules and "self.all(k" in rules[0]["rule"] and template[name]["maxProperties"]


def test_the_crd_files_hold_no_invisible_characters() -> None:
    for path in CHART_CRDS.glob("*.yaml"):
        text = path.read_text()
        assert not set(FORMATTING) & set(text), path.name


# --- the Pulumi provider's argument checks ------------------------------------------------------------------

OWNER = "urn:pulumi:dev::proj::clientreg:index:OAuthClient::web"


def _pulumi_problems(**props: Any) -> dict[str, str]:
    base = {"issuer": "https://auth.example.com", "grant_types": ["client_credentials"],
            "kubernetes_secret_owner": OWNER}
    return dict(pulumi_args.problems({**base, **props}))


@pytest.mark.parametrize("name", TRAVERSALS, ids=ascii)
def test_pulumi_refuses_a_bad_secret_name_naming_the_argument(name: str) -> None:
    found = _pulumi_problems(kubernetes_secret={"name": name or None, "namespace": "apps"})
    assert "kubernetes_secret" in found
    assert found["kubernetes_secret"].startswith("name: ")
    assert "RFC 1123 subdomain" in found["kubernetes_secret"] or "name is required" in found["kubernetes_secret"]


@pytest.mark.parametrize("namespace", ["../kube-system", "kube-system/secrets", "Apps", "a.b", "x\n"], ids=ascii)
def test_pulumi_refuses_a_bad_secret_namespace(namespace: str) -> None:
    found = _pulumi_problems(kubernetes_secret={"name": "web", "namespace": namespace})
    assert found["kubernetes_secret"].startswith("namespace: ") and "RFC 1123 label" in found["kubernetes_secret"]


@pytest.mark.parametrize(("props", "argument", "words"), [
    ({"client_name": "Portal\u202e"}, "client_name", "bidirectional"),
    ({"software_id": "id\n"}, "software_id", "control characters"),
    ({"contacts": ["ops\u2066@example.com"]}, "contacts", "bidirectional"),
    ({"kubernetes_secret": {"name": "web", "client_id_key": "../id"}}, "kubernetes_secret", "client_id_key: "),
    ({"kubernetes_secret": {"name": "web", "extra_data": {"a/b": "x"}}}, "kubernetes_secret", "a Secret key"),
])
def test_pulumi_refuses_bad_text_naming_the_argument(props: dict[str, Any], argument: str, words: str) -> None:
    found = _pulumi_problems(**props)
    assert words in found[argument], found


# --- the CLI's own files ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "namespace", "field"), [
    ("../x", "default", "metadata.name"), ("web", "../../etc", "metadata.namespace"),
    ("a/b", "default", "metadata.name")])
def test_cli_secret_documents_follow_the_same_rules(name: str, namespace: str, field: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_secret({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                      "stringData": {"token": "t"}}, "secrets.yaml")
    assert caught.value.field == field


def test_cli_secret_documents_refuse_bad_keys() -> None:
    with pytest.raises(ConfigurationError, match="a Secret key"):
        parse_secret({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "iat"},
                      "stringData": {"../token": "t"}}, "secrets.yaml")


def test_the_state_dir_is_never_left_through_a_name(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state")
    for namespace, name in (("..", "x"), ("default", "../../escaped"), ("a/b", "x")):
        with pytest.raises(ConfigurationError):
            store.write(Entry(namespace, name, requests={"rotation": "now"}))
        with pytest.raises(ConfigurationError):
            store.load(namespace, name)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []
    store.write(Entry("default", "web", requests={"rotation": "now"}))
    (tmp_path / "state" / "records" / "default" / "Stray Copy.json").write_text("{}")
    assert [e.key for e in store.entries()] == ["default/web"]


# --- the operator's API client: a bad segment never becomes a request ------------------------------------

class RecordingApi:
    """Stands in for clientreg_kube.transport.KubeTransport: records what KubeCluster asks for, answers {}."""

    def __init__(self) -> None:
        self.paths: list[tuple[str, str]] = []

    def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.paths.append((method, path))
        return {}


CRAFTED = ["../../namespaces/tenant-a/authorizationservers/x", "../x", "x/status", "..%2fx", "x?dryRun=All",
           "X", "x\n", ""]
CALLS: dict[str, Any] = {
    "get_client": lambda c, ns, n: c.get_client(ns, n),
    "get_server(Cluster)": lambda c, ns, n: c.get_server("ClusterAuthorizationServer", None, n),
    "get_server(namespaced)": lambda c, ns, n: c.get_server("AuthorizationServer", ns, n),
    "get_secret": lambda c, ns, n: c.get_secret(ns, n),
    "list_secrets": lambda c, ns, n: c.list_secrets(ns if n == "ok" else n, "a=b"),
    "create_secret": lambda c, ns, n: c.create_secret(ns, {"metadata": {"name": n}}),
    "replace_secret": lambda c, ns, n: c.replace_secret(ns, n, {"metadata": {"name": n}}),
    "patch_secret": lambda c, ns, n: c.patch_secret(ns, n, {}),
    "delete_secret": lambda c, ns, n: c.delete_secret(ns, n),
    "patch_client_status": lambda c, ns, n: c.patch_client_status(ns, n, {}),
    "patch_server_status(Cluster)": lambda c, ns, n: c.patch_server_status("ClusterAuthorizationServer", None, n, {}),
    "patch_server_status(namespaced)": lambda c, ns, n: c.patch_server_status("AuthorizationServer", ns, n, {}),
    "list_deployments": lambda c, ns, n: c.list_deployments(ns if n == "ok" else n),
    "patch_deployment": lambda c, ns, n: c.patch_deployment(ns, n, {}),
}


@pytest.mark.parametrize("method", CALLS)
@pytest.mark.parametrize("name", CRAFTED, ids=ascii)
def test_kube_cluster_refuses_a_crafted_name_before_any_request(method: str, name: str) -> None:
    api = RecordingApi()
    with pytest.raises(ConfigurationError):
        CALLS[method](KubeCluster(api), "tenant-a", name)
    assert api.paths == []


# Cluster-scoped calls have no namespace in their path; for a namespaced server an empty namespace means
# "default" (as the reconciler always passes the client's own), so only the other spellings are tried there.
@pytest.mark.parametrize("method", [m for m in CALLS if "(Cluster)" not in m])
@pytest.mark.parametrize("namespace", ["../kube-system", "kube-system/secrets", "a.b", "Tenant", "", "x\n"], ids=ascii)
def test_kube_cluster_refuses_a_crafted_namespace_before_any_request(method: str, namespace: str) -> None:
    if not namespace and "(namespaced)" in method:
        namespace = "../default"
    api = RecordingApi()
    with pytest.raises(ConfigurationError):
        CALLS[method](KubeCluster(api), namespace, "ok")
    assert api.paths == []


def test_a_cluster_server_ref_only_ever_reaches_the_cluster_scoped_resource() -> None:
    api = RecordingApi()
    cluster = KubeCluster(api)
    cluster.get_server("ClusterAuthorizationServer", "tenant-a", "platform")
    cluster.get_secret("tenant-a", "web-oauth")
    cluster.patch_client_status("tenant-a", "web", {"ready": True})
    assert api.paths == [
        ("GET", "/apis/clientreg.dev/v1alpha1/clusterauthorizationservers/platform"),
        ("GET", "/api/v1/namespaces/tenant-a/secrets/web-oauth"),
        ("PATCH", "/apis/clientreg.dev/v1alpha1/namespaces/tenant-a/oauthclients/web/status"),
    ]


def test_an_event_for_a_crafted_object_is_not_posted() -> None:
    api = RecordingApi()
    with pytest.raises(ConfigurationError):
        KubeCluster(api).post_event({"metadata": {"name": "x", "namespace": "../kube-system"}}, warning=True,
                                    reason="R", message="m")
    assert api.paths == []
