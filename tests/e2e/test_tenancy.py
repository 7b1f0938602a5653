"""Issue 11 end to end: hostile tenants against the real API server, the chart's RBAC and the operator.

Two tenants, each a namespace admin in the usual sense: a ServiceAccount bound to a Role of their namespace
that may create and edit OAuthClients, AuthorizationServers and Secrets there (like the built-in
admin/edit ClusterRoles). Every attack is made with that identity, never as cluster admin; the admin
client is used only to set the stage (namespaces, the platform's ClusterAuthorizationServers, a victim
Secret in kube-system) and to look at the outcome.

Each tenant's AuthorizationServer is a recorder on 127.0.0.1 (tests/support/recorder_as.py) that keeps
every request: "nothing leaked" is asserted as "the value never arrived there", not inferred from a count.
Attacks are tallied (tests/support/attacks.py) and the tally is printed at the end of the session.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from kubernetes.client.exceptions import ApiException
from support.attacks import TALLY
from support.operator_process import OPERATOR_NAMESPACE, OperatorProcess
from support.recorder_as import RecorderAS
from support.tenants import Tenant, make_tenant

pytestmark = pytest.mark.e2e

GROUP, VERSION = "clientreg.dev", "v1alpha1"
Kube = Any  # tests/e2e/conftest.py's Kube; this folder is not a package
A, B = "tenancy-a", "tenancy-b"
VICTIM = f"VICTIM-{secrets.token_hex(8)}"  # the value of a kube-system Secret no tenant may ever obtain
PLATFORM_IAT = f"PLATFORM-IAT-{secrets.token_hex(8)}"
M2M = {"grantTypes": ["client_credentials"], "tokenEndpointAuthMethod": "client_secret_basic"}
#: The document host: "localhost" resolves from /etc/hosts (no DNS query leaves the machine) and nothing
#: listens on port 9, so the operator's own publication check can never succeed or reach anything else.
A_DOCUMENT = "http://localhost:9/tenancy-a/app.json"
# A Ready=False reason that means "refused by policy" (the redirects branch names it NotPermitted).
POLICY_REASONS = {"NotPermitted", "PolicyViolation", "InvalidSpec"}


@pytest.fixture(scope="module")
def stage(kube: Kube, control_plane: Any, operator: OperatorProcess,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two tenants with a recorder AS each, the platform's ClusterAuthorizationServers, a victim Secret."""
    kube.secret("kube-system", "victim-iat", {"token": VICTIM})
    kube.secret(OPERATOR_NAMESPACE, "tenancy-platform-iat", {"token": PLATFORM_IAT})
    with RecorderAS(initial_access_token="iat-a", name="a") as rec_a, \
            RecorderAS(initial_access_token="iat-b", name="b") as rec_b, \
            RecorderAS(initial_access_token=PLATFORM_IAT, name="platform") as rec_p:
        folder = tmp_path_factory.mktemp("tenants")
        tenants = {namespace: make_tenant(kube, control_plane, namespace, recorder, folder, type(kube))
                   for namespace, recorder in ((A, rec_a), (B, rec_b))}
        # The "gold" tier is a namespace label only the platform (cluster admin) sets.
        kube.core.patch_namespace(A, {"metadata": {"labels": {"tenancy.clientreg.dev/tier": "gold"}}})
        for namespace, hosts in ((A, ["*.tenancy-a.example.com", "localhost"]), (B, ["*.tenancy-b.example.com"])):
            tenant = tenants[namespace]
            tenant.kube.secret(namespace, "iat", {"token": f"iat-{namespace[-1]}"})
            tenant.create("authorizationservers", "rec", {
                "issuer": tenant.recorder.issuer, "allowedRedirectHosts": hosts,
                "initialAccessToken": {"secretKeyRef": {"name": "iat", "key": "token"}}})
        platform = {"issuer": rec_p.issuer,
                    "initialAccessToken": {"secretKeyRef": {"name": "tenancy-platform-iat", "key": "token"}}}
        for name, allowed in (("tenancy-listed", {"names": [A]}),
                              ("tenancy-gold", {"selector": {"matchLabels": {"tenancy.clientreg.dev/tier": "gold"}}})):
            kube.custom.create_cluster_custom_object(GROUP, VERSION, "clusterauthorizationservers", {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterAuthorizationServer",
                "metadata": {"name": name}, "spec": {**platform, "allowedNamespaces": allowed}})
        try:
            yield {"a": tenants[A], "b": tenants[B], "platform": rec_p, "operator": operator}
        finally:
            for name in ("tenancy-listed", "tenancy-gold"):
                with contextlib.suppress(ApiException):
                    kube.custom.delete_cluster_custom_object(GROUP, VERSION, "clusterauthorizationservers", name)
            for tenant in tenants.values():
                tenant.close()
            for recorder in (rec_a, rec_b, rec_p):
                assert not recorder.saw(VICTIM), f"the kube-system Secret's value reached {recorder.name}'s AS"


def _nothing_leaked(stage: dict[str, Any]) -> None:
    for recorder in (stage["a"].recorder, stage["b"].recorder):
        assert not recorder.saw(VICTIM), f"the victim Secret's value reached tenant AS {recorder.name}"
        assert not recorder.saw(PLATFORM_IAT), f"the platform's initial access token reached {recorder.name}"


def _ready(kube: Kube, namespace: str, name: str, eventually: Callable[..., Any]) -> dict[str, Any]:
    """The Ready condition once the operator has looked at this generation of the client."""
    def look() -> dict[str, Any] | None:
        body = kube.get_client(namespace, name) or {}
        status = body.get("status") or {}
        cond = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
        return cond if cond and status.get("observedGeneration") == body["metadata"]["generation"] else None
    return eventually(look, f"a Ready condition on OAuthClient {namespace}/{name}", timeout=90)


# --- 1. traversal through every name field: refused at admission ------------------------------------------

NAME_SPELLINGS = ["../../kube-system/secrets/victim-iat", "..%2F..%2Fkube-system%2Fsecrets%2Fvictim-iat",
                  "%2e%2e/victim-iat", "a/b", "Victim-IAT", "victim-iat.", "victim-\u00efat", "..", "a\\b",
                  "victim-iat?watch=true", "x" * 254, " victim-iat", "victim-iat\n", "victim\u202eiat"]
KEY_SPELLINGS = ["../../token", "..%2Ftoken", "a/b", "\u043a\u043b\u044e\u0447", "k y", "token\n", "x" * 254, "a\\b"]


def _server(iat: dict[str, str] | None = None, statement: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"issuer": "http://127.0.0.1:9"}
    if iat:
        spec["initialAccessToken"] = {"secretKeyRef": iat}
    if statement:
        spec["softwareStatement"] = {"secretKeyRef": statement}
    return spec


def _client(**extra: Any) -> dict[str, Any]:
    return {"serverRef": {"name": "rec"}, **M2M, **extra}


# field → (plural, spec builder, the field path the API server's refusal must name, spellings)
TRAVERSAL: dict[str, tuple[str, Callable[[str], dict[str, Any]], str, list[str]]] = {
    "AuthorizationServer initialAccessToken.secretKeyRef.name": (
        "authorizationservers", lambda v: _server(iat={"name": v, "key": "token"}),
        "spec.initialAccessToken.secretKeyRef.name", NAME_SPELLINGS),
    "AuthorizationServer softwareStatement.secretKeyRef.name": (
        "authorizationservers", lambda v: _server(statement={"name": v, "key": "jwt"}),
        "spec.softwareStatement.secretKeyRef.name", NAME_SPELLINGS),
    "AuthorizationServer initialAccessToken.secretKeyRef.key": (
        "authorizationservers", lambda v: _server(iat={"name": "iat", "key": v}),
        "spec.initialAccessToken.secretKeyRef.key", KEY_SPELLINGS),
    "OAuthClient serverRef.name (AuthorizationServer)": (
        "oauthclients", lambda v: _client(serverRef={"name": v}), "spec.serverRef.name", NAME_SPELLINGS),
    "OAuthClient serverRef.name (ClusterAuthorizationServer)": (
        "oauthclients", lambda v: _client(serverRef={"kind": "ClusterAuthorizationServer", "name": v}),
        "spec.serverRef.name", NAME_SPELLINGS),
    "OAuthClient secretName": ("oauthclients", lambda v: _client(secretName=v), "spec.secretName", NAME_SPELLINGS),
    "OAuthClient secretTemplate.clientIdKey": (
        "oauthclients", lambda v: _client(secretTemplate={"clientIdKey": v}), "spec.secretTemplate.clientIdKey",
        KEY_SPELLINGS),
    "OAuthClient secretTemplate.clientSecretKey": (
        "oauthclients", lambda v: _client(secretTemplate={"clientSecretKey": v}),
        "spec.secretTemplate.clientSecretKey", KEY_SPELLINGS),
    "OAuthClient secretTemplate.issuerKey": (
        "oauthclients", lambda v: _client(secretTemplate={"issuerKey": v}), "spec.secretTemplate.issuerKey",
        KEY_SPELLINGS),
    "OAuthClient secretTemplate.tokenEndpointKey": (
        "oauthclients", lambda v: _client(secretTemplate={"tokenEndpointKey": v}),
        "spec.secretTemplate.tokenEndpointKey", KEY_SPELLINGS),
    "OAuthClient secretTemplate.extraData key": (
        "oauthclients", lambda v: _client(secretTemplate={"extraData": {v: "{clientId}"}}),
        "spec.secretTemplate.extraData", KEY_SPELLINGS),
}


def _refused_at_admission(tenant: Tenant, plural: str, name: str, spec: dict[str, Any], path: str) -> None:
    try:
        tenant.create(plural, name, spec)
    except ApiException as exc:
        assert exc.status == 422, f"HTTP {exc.status}, not a schema refusal"
        assert path in (exc.body or ""), f"refused for another reason: {exc.body}"
        return
    # Admitted: take it away at once (the operator would act on it), then fail.
    tenant.custom.delete_namespaced_custom_object(GROUP, VERSION, tenant.namespace, plural, name)
    raise AssertionError("admitted")


@pytest.mark.parametrize("field", sorted(TRAVERSAL))
def test_traversal_through_a_name_field_is_refused_at_admission(stage: dict[str, Any], field: str) -> None:
    """Every spelling is refused by the CRD schema (422) naming the field: no object, so nothing reaches the
    operator. (The Kubernetes layer's own refusal, for objects that predate the schema, is unit-tested.)"""
    tenant: Tenant = stage["b"]
    plural, build, path, spellings = TRAVERSAL[field]
    failures = []
    for index, spelling in enumerate(spellings):
        name = f"trav-{sorted(TRAVERSAL).index(field)}-{index}"
        spec = build(spelling)
        if "issuer" in spec:  # were it admitted, whatever it read would go to the tenant's recorder
            spec["issuer"] = tenant.recorder.issuer
        try:
            with TALLY.attack("traversal", field, repr(spelling)):
                _refused_at_admission(tenant, plural, name, spec, path)
        except AssertionError as exc:
            failures.append(f"{spelling!r}: {exc}")
    assert not failures, f"{field}: " + "; ".join(failures)
    _nothing_leaked(stage)


# --- 2. the cluster-server ref --------------------------------------------------------------------------

@pytest.mark.parametrize("server", ["tenancy-listed", "tenancy-gold"])
def test_a_cluster_server_that_excludes_the_namespace_sends_nothing(stage: dict[str, Any], kube: Kube,
                                                                   eventually: Any, server: str) -> None:
    a, b, platform = stage["a"], stage["b"], stage["platform"]
    ref = {"serverRef": {"kind": "ClusterAuthorizationServer", "name": server}}
    # The control: the allowed namespace registers with the platform's token (so the setup can fail).
    a.create("oauthclients", f"ok-{server}", {**ref, **M2M, "clientName": f"a-{server}"})
    kube.wait_ready(A, f"ok-{server}")
    assert any(r.get("client_name") == f"a-{server}" for r in platform.registrations())
    with TALLY.attack("cluster server ref", server):
        b.create("oauthclients", f"steal-{server}", {**ref, **M2M, "clientName": f"b-{server}"})
        ready = _ready(kube, B, f"steal-{server}", eventually)
        assert (ready["status"], ready["reason"]) == ("False", "NamespaceNotAllowed"), ready
        assert not [r for r in platform.registrations() if r.get("client_name") == f"b-{server}"]
        assert b.kube.read_secret(B, f"steal-{server}-oauth") is None
    _nothing_leaked(stage)


# --- 3. the redirect-host policy ------------------------------------------------------------------------

REDIRECT_ATTACKS = {
    "backslash host": {"redirectUris": ["https://evil.test\\.tenancy-b.example.com/cb"]},
    "userinfo before an allowed host": {"redirectUris": ["https://evil.test@app.tenancy-b.example.com/cb"]},
    "allowed host as userinfo": {"redirectUris": ["https://app.tenancy-b.example.com@evil.test/cb"]},
    "percent-encoded host": {"redirectUris": ["https://evil.test%2F.tenancy-b.example.com/cb"]},
    "NFKC slash in host": {"redirectUris": ["https://evil.test\uff0f.tenancy-b.example.com/cb"]},
    "private-use scheme": {"redirectUris": ["com.evil.app:/cb"], "applicationType": "native"},
    "CIMD client": {"registration": "cimd", "clientIdUrl": "http://localhost:9/tenancy-b/evil.json",
                    "redirectUris": ["https://evil.test/cb"]},
}


def test_the_redirect_policy_control_registers(stage: dict[str, Any], kube: Kube) -> None:
    """Without it the refusals below could come from a broken setup."""
    stage["b"].create("oauthclients", "web-ok", {"serverRef": {"name": "rec"}, "grantTypes": ["authorization_code"],
                                                 "redirectUris": ["https://app.tenancy-b.example.com/cb"]})
    kube.wait_ready(B, "web-ok")
    assert any(r.get("redirect_uris") == ["https://app.tenancy-b.example.com/cb"]
               for r in stage["b"].recorder.registrations())


@pytest.mark.parametrize("attack", sorted(REDIRECT_ATTACKS))
def test_a_redirect_outside_the_allow_list_is_refused_before_any_request(
        stage: dict[str, Any], kube: Kube, eventually: Any, attack: str) -> None:
    b: Tenant = stage["b"]
    name = "redir-" + "".join(c if c.isalnum() else "-" for c in attack.lower())
    spec = {"serverRef": {"name": "rec"}, "grantTypes": ["authorization_code"], "tokenEndpointAuthMethod": "none",
            **REDIRECT_ATTACKS[attack]}
    with TALLY.attack("redirect policy", attack):
        try:
            b.create("oauthclients", name, spec)
        except ApiException as exc:
            assert exc.status == 422, exc.body  # refused at admission: stricter still
        else:
            ready = _ready(kube, B, name, eventually)
            assert ready["status"] == "False" and ready["reason"] in POLICY_REASONS, ready
        uris = set(spec["redirectUris"])
        assert not [r for r in b.recorder.registrations() if uris & set(r.get("redirect_uris") or [])]
        if "clientIdUrl" in spec:
            assert _document(stage["operator"], spec["clientIdUrl"]) is None, "a refused CIMD document is served"


# --- 4. a stolen registration access token ----------------------------------------------------------------

def test_the_registration_access_token_is_out_of_the_tenants_reach(stage: dict[str, Any], kube: Kube) -> None:
    a: Tenant = stage["a"]
    a.create("oauthclients", "rat", {"serverRef": {"name": "rec"}, **M2M, "clientName": "rat"})
    body = kube.wait_ready(A, "rat")
    rat = a.recorder.rats[body["status"]["clientId"]]
    uid = body["metadata"]["uid"]
    with TALLY.attack("stolen RAT", "read the record Secret in the operator's namespace"):
        assert not a.can("get", "secrets", OPERATOR_NAMESPACE, name=f"clientreg-record-{uid}")
        assert not a.can("list", "secrets", OPERATOR_NAMESPACE)
        with pytest.raises(ApiException) as info:
            a.core.read_namespaced_secret(f"clientreg-record-{uid}", OPERATOR_NAMESPACE)
        assert info.value.status == 403
    with TALLY.attack("stolen RAT", "list every Secret of the tenant's namespace"):
        assert not [v for v in a.secret_values() if rat in v], "the RAT is readable in the tenant's namespace"
    with TALLY.attack("stolen RAT", "status and Events"):
        assert rat not in str(a.kube.get_client(A, "rat"))
        assert rat not in str([(e.reason, e.message) for e in a.kube.events(A, "rat")])


# --- 5. the document server ---------------------------------------------------------------------------

def _document(operator: OperatorProcess, url: str) -> bytes | None:
    from clientreg import publish

    answer = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/documents/{publish.static_path(url)}", timeout=5)
    return answer.content if answer.status_code == 200 else None


def _cimd(name: str, url: str, redirect: str) -> dict[str, Any]:
    return {"serverRef": {"name": "rec"}, "registration": "cimd", "clientIdUrl": url, "clientName": name,
            "tokenEndpointAuthMethod": "none", "grantTypes": ["authorization_code"], "redirectUris": [redirect]}


def test_another_tenant_cannot_displace_a_published_document(stage: dict[str, Any], kube: Kube,
                                                              eventually: Any) -> None:
    a, b, operator = stage["a"], stage["b"], stage["operator"]
    a.create("oauthclients", "doc", _cimd("a-document", A_DOCUMENT, "https://app.tenancy-a.example.com/cb"))
    original = eventually(lambda: _document(operator, A_DOCUMENT), "tenant A's document served")
    assert b'"a-document"' in original
    stage["a-document"] = original  # looked at again at the end of the module, long after every claim
    # B claims A's exact host and path: through its own server (which grants only B's hosts), through a
    # server of its own with no allow-list at all, and through one that copies A's grant.
    b.create("authorizationservers", "open", {"issuer": b.recorder.issuer,
                                              "initialAccessToken": {"secretKeyRef": {"name": "iat", "key": "token"}}})
    b.create("authorizationservers", "copycat", {
        "issuer": b.recorder.issuer, "allowedRedirectHosts": ["*.tenancy-b.example.com", "localhost"],
        "initialAccessToken": {"secretKeyRef": {"name": "iat", "key": "token"}}})
    for server in ("rec", "open", "copycat"):
        name = f"impostor-{server}"
        with TALLY.attack("document server", f"claim A's path through B's {server} server"):
            spec = _cimd("b-impostor", A_DOCUMENT, "https://app.tenancy-b.example.com/cb")
            b.create("oauthclients", name, {**spec, "serverRef": {"name": server}})
            _ready(kube, B, name, eventually)
            assert _document(operator, A_DOCUMENT) == original, "tenant A's document was replaced or withdrawn"
    with TALLY.attack("document server", "B's document under A's host"):
        url = "http://localhost:9/tenancy-a/b.json"
        b.create("oauthclients", "squatter", _cimd("b-squatter", url, "https://app.tenancy-b.example.com/cb"))
        _ready(kube, B, "squatter", eventually)
        assert _document(operator, url) is None, "B publishes under a host granted to A"
        assert _document(operator, A_DOCUMENT) == original


# --- 6. RBAC between tenants ----------------------------------------------------------------------------

RBAC_ATTEMPTS: list[tuple[str, str, str, str | None, str]] = [
    # (what, verb, resource, namespace, group)
    ("read A's OAuthClients", "get", "oauthclients", A, GROUP),
    ("list A's OAuthClients", "list", "oauthclients", A, GROUP),
    ("edit A's OAuthClients", "patch", "oauthclients", A, GROUP),
    ("delete A's OAuthClients", "delete", "oauthclients", A, GROUP),
    ("point A at another server", "update", "authorizationservers", A, GROUP),
    ("read A's Secrets", "get", "secrets", A, ""),
    ("list A's Secrets", "list", "secrets", A, ""),
    ("write A's Secrets", "create", "secrets", A, ""),
    ("create a ClusterAuthorizationServer", "create", "clusterauthorizationservers", None, GROUP),
    ("edit a ClusterAuthorizationServer", "patch", "clusterauthorizationservers", None, GROUP),
    ("read kube-system Secrets", "get", "secrets", "kube-system", ""),
    ("read the platform's Secrets", "get", "secrets", OPERATOR_NAMESPACE, ""),
    ("forge its own client's status", "patch", "oauthclients/status", B, GROUP),
    ("relabel its namespace into a tier", "patch", "namespaces", None, ""),
]


def test_tenant_b_cannot_reach_tenant_a(stage: dict[str, Any], kube: Kube) -> None:
    a, b = stage["a"], stage["b"]
    a.create("oauthclients", "private", {"serverRef": {"name": "rec"}, **M2M})
    kube.wait_ready(A, "private")
    for what, verb, resource, namespace, group in RBAC_ATTEMPTS:
        with TALLY.attack("rbac", what):
            plural, _, sub = resource.partition("/")
            assert not b.can(verb, plural, namespace, group, subresource=sub), f"B may {verb} {resource} in {namespace}"
    # And the real requests, not only the review: each is 403.
    with TALLY.attack("rbac", "GET A's credentials Secret and OAuthClient as B"):
        for call in (lambda: b.core.read_namespaced_secret("private-oauth", A),
                     lambda: b.custom.get_namespaced_custom_object(GROUP, VERSION, A, "oauthclients", "private"),
                     lambda: b.core.read_namespaced_secret("victim-iat", "kube-system")):
            with pytest.raises(ApiException) as info:
                call()
            assert info.value.status == 403
    assert b.can("create", "oauthclients", B, GROUP)  # the tenant's own namespace works: the Role is real


def test_no_secret_value_ever_reached_a_tenant_server(stage: dict[str, Any]) -> None:
    """Last in the module: after every attack above, neither tenant's AS ever saw the kube-system Secret nor
    the platform's initial access token."""
    with TALLY.attack("exfiltration", "victim and platform token at tenant servers"):
        _nothing_leaked(stage)
    if "a-document" in stage:
        # Replicas refresh documents from the record Secrets on an interval: by now every claim above has
        # been through several refreshes, and A's document is still A's.
        assert _document(stage["operator"], A_DOCUMENT) == stage["a-document"]
