"""Hostile input at every door: documents, OAuthClient resources, and what an AS answers.

Each catalog below is one parametrized test; a case passes when the bad input is refused with a message
that names the problem, nothing crashes (only the ClientregError hierarchy leaves the core, the CLI exits
with a code and no traceback), no secret used by the case appears in any output, and nothing is written
or sent that should not be. SSRF cases live in test_address_policy.py.

    pytest tests/unit/test_hostile_input.py tests/unit/test_address_policy.py -q
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from clientreg import rfc7591, rfc7592
from clientreg.cli import main
from clientreg.discovery import discover, registration_endpoint_of
from clientreg.documents import load_documents
from clientreg.errors import (
    ClientregError,
    ConfigurationError,
    DiscoveryError,
    PolicyViolation,
    ProtocolError,
    RateLimited,
    TransportError,
    describe,
)
from clientreg.http import HttpClient, HttpSettings
from clientreg.spec import parse_document

# --- a) documents through `clientreg apply` ------------------------------------------------------------------

IAT = "iat-SECRET-5b4a3c2d1e0f"
PASSWORD = "pw-SECRET-77aa88bb"

SERVER = f"""apiVersion: clientreg.dev/v1alpha1
kind: AuthorizationServer
metadata: {{name: dev, namespace: team}}
spec:
  issuer: http://127.0.0.1:9
  initialAccessToken: {{secretKeyRef: {{name: iat, key: token}}}}
  allowedRedirectHosts: ["*.example.com"]
---
apiVersion: v1
kind: Secret
metadata: {{name: iat, namespace: team}}
stringData: {{token: {IAT}}}
"""
HEAD = """apiVersion: clientreg.dev/v1alpha1
kind: OAuthClient
metadata: {name: bad, namespace: team}
spec:
  serverRef: {name: dev}
"""
M2M = HEAD + "  grantTypes: [client_credentials]\n"
WEB = HEAD + "  grantTypes: [authorization_code]\n"


def bomb(levels: int, where: str) -> str:
    anchors = ["  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        anchors.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "x-anchors:\n" + "\n".join(anchors) + "\n" + where.replace("BOMB", f"*a{levels - 1}")


def server(**spec: str) -> str:
    extra = "".join(f"  {k}: {v}\n" for k, v in spec.items())
    return SERVER.replace("  allowedRedirectHosts", extra + "  allowedRedirectHosts", 1)


# (id, files written over the defaults, words the message must contain)
CLI_CASES: list[tuple[str, dict[str, str | bytes], tuple[str, ...]]] = [
    # YAML itself
    ("unclosed-flow", {"clients.yaml": "kind: [unclosed\n"}, ("invalid YAML",)),
    ("tab-indent", {"clients.yaml": HEAD + "\tgrantTypes: [client_credentials]\n"}, ("invalid YAML", ":6:")),
    ("duplicate-key", {"clients.yaml": M2M + "  grantTypes: [authorization_code]\n"},
     ("duplicate key 'grantTypes'", ":7:")),
    ("duplicate-metadata-key", {"clients.yaml": M2M.replace("metadata: {name: bad, namespace: team}",
                                                             "metadata: {name: bad, name: other}")},
     ("duplicate key 'name'",)),
    ("billion-laughs-kind", {"clients.yaml": bomb(9, "apiVersion: clientreg.dev/v1alpha1\nkind: BOMB\n")},
     ("larger than", "aliases")),
    ("billion-laughs-metadata", {"clients.yaml": bomb(9, M2M + "  additionalMetadata: {x: BOMB}\n")},
     ("larger than", "aliases")),
    ("billion-laughs-secret", {"server.yaml": SERVER + "---\n" + bomb(
        8, "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {x: BOMB}\n")}, ("larger than",)),
    ("recursive-alias", {"clients.yaml": M2M + "  additionalMetadata: &self {x: *self}\n"},
     ("recursive",)),
    ("python-tag", {"clients.yaml": "!!python/object/apply:os.system ['echo pwned']\n"},
     ("invalid YAML", "python/object/apply")),
    ("unknown-tag", {"clients.yaml": M2M + "  clientName: !vault secret/x\n"}, ("invalid YAML", "!vault")),
    ("bad-timestamp", {"clients.yaml": M2M + "  additionalMetadata: {created: 2020-13-45}\n"},
     ("invalid YAML", "timestamp", ":7:")),
    ("huge-integer", {"clients.yaml": M2M + "  additionalMetadata: {n: " + "9" * 5000 + "}\n"},
     ("invalid YAML", "int")),
    ("bad-int-tag", {"clients.yaml": M2M + "  defaultMaxAge: !!int ten\n"}, ("invalid YAML", "int")),
    ("bad-float-tag", {"clients.yaml": M2M + "  additionalMetadata: {f: !!float pi}\n"}, ("invalid YAML", "float")),
    ("huge-document", {"clients.yaml": M2M + "  clientName: " + "A" * 1_600_000 + "\n"},
     ("larger than", "KiB")),
    ("deep-nesting", {"clients.yaml": "a: " + "[" * 5000 + "]" * 5000 + "\n"}, ("invalid YAML",)),
    ("non-utf8", {"clients.yaml": M2M.encode() + b"  clientName: caf\xe9\n"}, ("cannot read", "UnicodeDecodeError")),
    ("utf16", {"clients.yaml": M2M.encode("utf-16")}, ("cannot read",)),
    ("nul-byte", {"clients.yaml": M2M + "  clientName: a\x00b\n"}, ("invalid YAML",)),
    ("lone-surrogate", {"clients.yaml": M2M + '  clientName: "\\ud800"\n'}, ("invalid YAML",)),
    ("yaml-version", {"clients.yaml": "%YAML 9.9\n---\n" + M2M}, ("invalid YAML",)),
    ("unhashable-key", {"clients.yaml": M2M + "  ? [a, b]\n  : c\n"}, ("invalid YAML",)),
    # document shapes
    ("scalar-document", {"clients.yaml": "just a string\n"}, ("must be a mapping",)),
    ("list-document", {"clients.yaml": "- 1\n- 2\n"}, ("must be a mapping",)),
    ("empty-files", {"clients.yaml": "---\n---\n"}, ("no OAuthClient documents",)),
    ("missing-apiversion", {"clients.yaml": M2M.replace("apiVersion: clientreg.dev/v1alpha1\n", "")},
     ("apiVersion",)),
    ("wrong-apiversion", {"clients.yaml": M2M.replace("v1alpha1", "v9")}, ("apiVersion", "clientreg.dev/v9")),
    ("apiversion-list", {"clients.yaml": M2M.replace("apiVersion: clientreg.dev/v1alpha1",
                                                     "apiVersion: [clientreg.dev/v1alpha1]")}, ("apiVersion",)),
    ("wrong-kind", {"clients.yaml": M2M.replace("kind: OAuthClient", "kind: OAuthClients")},
     ("unknown kind 'OAuthClients'",)),
    ("kind-list", {"clients.yaml": M2M.replace("kind: OAuthClient", "kind: [OAuthClient]")},
     ("unknown kind a list",)),
    ("kind-mapping", {"clients.yaml": M2M.replace("kind: OAuthClient", "kind: {a: b}")}, ("unknown kind a dict",)),
    ("missing-spec", {"clients.yaml": HEAD.replace("spec:\n  serverRef: {name: dev}\n", "")},
     ("spec", "required")),
    ("spec-list", {"clients.yaml": HEAD.replace("spec:\n  serverRef: {name: dev}\n", "spec: [a]\n")}, ("spec",)),
    ("missing-server-ref", {"clients.yaml": HEAD.replace("  serverRef: {name: dev}\n",
                                                         "  grantTypes: [client_credentials]\n")},
     ("spec.serverRef",)),
    ("undefined-server", {"clients.yaml": M2M.replace("name: dev", "name: nope")}, ("serverRef", "nope")),
    ("server-ref-string", {"clients.yaml": M2M.replace("serverRef: {name: dev}", "serverRef: dev")},
     ("spec.serverRef",)),
    ("unknown-field", {"clients.yaml": M2M + "  clientNmae: x\n"}, ("spec.clientNmae", "unknown field")),
    ("unknown-top-level", {"clients.yaml": M2M + "specs: {}\n"}, ("specs",)),
    ("grant-types-string", {"clients.yaml": HEAD + "  grantTypes: client_credentials\n"},
     ("spec.grantTypes", "list")),
    ("unknown-grant", {"clients.yaml": HEAD + "  grantTypes: [password_please]\n"}, ("spec.grantTypes",)),
    ("client-name-list", {"clients.yaml": M2M + "  clientName: [a, b]\n"}, ("spec.clientName",)),
    ("name-int", {"clients.yaml": M2M.replace("name: bad,", "name: 12,")}, ("metadata.name",)),
    ("name-uppercase", {"clients.yaml": M2M.replace("name: bad,", "name: Bad_Name!,")},
     ("metadata.name", "RFC 1123 subdomain")),
    ("namespace-bad", {"clients.yaml": M2M.replace("namespace: team", "namespace: Team/..")},
     ("metadata.namespace",)),
    ("labels-not-strings", {"clients.yaml": M2M.replace("namespace: team}", "namespace: team, labels: {a: [1]}}")},
     ("metadata.labels",)),
    ("max-age-negative", {"clients.yaml": M2M + "  defaultMaxAge: -5\n"}, ("spec.defaultMaxAge",)),
    ("deletion-policy", {"clients.yaml": M2M + "  deletionPolicy: Shred\n"}, ("spec.deletionPolicy",)),
    ("auth-method", {"clients.yaml": M2M + "  tokenEndpointAuthMethod: carrier_pigeon\n"},
     ("spec.tokenEndpointAuthMethod",)),
    ("scope-bad-token", {"clients.yaml": M2M + '  scope: "api:read \\"x\\""\n'}, ("spec.scope", "RFC 6749")),
    ("rotation-bad", {"clients.yaml": M2M + "  rotation: {every: banana}\n"}, ("spec.rotation",)),
    ("rotation-duration", {"clients.yaml": M2M + "  rotation: {gracePeriod: forever}\n"},
     ("spec.rotation.gracePeriod",)),
    ("additional-clash", {"clients.yaml": M2M + "  additionalMetadata: {client_secret: " + IAT + "}\n"},
     ("spec.additionalMetadata", "client_secret")),
    ("jwks-and-uri", {"clients.yaml": M2M + "  jwks: {keys: []}\n  jwksUri: https://app.example.com/jwks\n"},
     ("jwks", "RFC 7591")),
    ("cimd-without-url", {"clients.yaml": M2M + "  registration: cimd\n"}, ("clientIdUrl",)),
    ("cimd-plain-http", {"clients.yaml": M2M + "  registration: cimd\n  tokenEndpointAuthMethod: none\n"
                                               "  clientIdUrl: http://app.example.com/c.json\n"},
     ("clientIdUrl",)),
    # redirect URIs
    ("redirect-fragment", {"clients.yaml": WEB + "  redirectUris: ['https://app.example.com/cb#x']\n"},
     ("spec.redirectUris", "fragment")),
    ("redirect-plain-http", {"clients.yaml": WEB + "  redirectUris: [http://app.example.com/cb]\n"},
     ("spec.redirectUris",)),
    ("redirect-javascript", {"clients.yaml": WEB + "  redirectUris: ['javascript:alert(1)']\n"},
     ("spec.redirectUris", "RFC 8252")),
    ("redirect-data", {"clients.yaml": WEB + "  redirectUris: ['data:text/html,<script>x</script>']\n"},
     ("spec.redirectUris",)),
    ("redirect-relative", {"clients.yaml": WEB + "  redirectUris: [/cb]\n"}, ("spec.redirectUris", "absolute")),
    ("redirect-userinfo", {"clients.yaml": WEB + f"  redirectUris: ['https://u:{PASSWORD}@app.example.com/cb']\n"},
     ("spec.redirectUris",)),
    ("redirect-crlf", {"clients.yaml": WEB + '  redirectUris: ["https://app.example.com/cb\\r\\nSet-Cookie: x"]\n'},
     ("spec.redirectUris",)),
    ("redirect-not-allowed-host", {"clients.yaml": WEB + "  redirectUris: [https://evil.example.org/cb]\n"},
     ("allowedRedirectHosts",)),
    ("redirect-missing", {"clients.yaml": WEB}, ("redirectUris is required",)),
    # several documents, Secrets, servers
    ("second-document-bad", {"clients.yaml": M2M + "---\n" + M2M.replace("name: bad,", "name: worse,")
                             + "  clientNmae: x\n"}, ("document 2", "spec.clientNmae")),
    ("defined-twice", {"clients.yaml": M2M + "---\n" + M2M}, ("defined twice",)),
    ("list-with-bad-item", {"clients.yaml": "apiVersion: v1\nkind: List\nitems:\n- "
                            + M2M.rstrip("\n").replace("\n", "\n  ") + "\n- {kind: OAuthClient}\n"},
     ("apiVersion",)),
    ("secret-not-base64", {"server.yaml": SERVER.replace(f"stringData: {{token: {IAT}}}",
                                                         "data: {token: '%%%not base64'}")},
     ("Secret/iat", "data.token", "base64")),
    ("secret-data-list", {"server.yaml": SERVER.replace(f"stringData: {{token: {IAT}}}", f"data: [{IAT}]")},
     ("Secret/iat", "data")),
    ("secret-string-data-string", {"server.yaml": SERVER.replace(f"stringData: {{token: {IAT}}}",
                                                                 f"stringData: {IAT}")},
     ("Secret/iat", "stringData")),
    ("secret-namespace-list", {"server.yaml": SERVER.replace("metadata: {name: iat, namespace: team}",
                                                             "metadata: {name: iat, namespace: [team]}")},
     ("Secret/iat", "metadata.namespace")),
    ("secret-without-name", {"server.yaml": SERVER.replace("metadata: {name: iat, namespace: team}",
                                                           "metadata: {namespace: team}")},
     ("Secret", "metadata.name")),
    ("issuer-ftp", {"server.yaml": SERVER.replace("issuer: http://127.0.0.1:9", "issuer: ftp://as.example.com")},
     ("spec.issuer",)),
    ("issuer-plain-http", {"server.yaml": SERVER.replace("issuer: http://127.0.0.1:9",
                                                         "issuer: http://as.example.com")},
     ("spec.issuer",)),
    ("issuer-userinfo", {"server.yaml": SERVER.replace("issuer: http://127.0.0.1:9",
                                                       f"issuer: 'https://admin:{PASSWORD}@as.example.com'")},
     ("spec.issuer",)),
    ("issuer-fragment", {"server.yaml": SERVER.replace("issuer: http://127.0.0.1:9",
                                                       "issuer: 'https://as.example.com/#x'")},
     ("has a fragment",)),
    ("issuer-and-nothing", {"server.yaml": SERVER.replace("  issuer: http://127.0.0.1:9\n", "")},
     ("issuer", "registrationEndpoint")),
    ("registration-endpoint-relative", {"server.yaml": SERVER.replace(
        "issuer: http://127.0.0.1:9", "registrationEndpoint: /register")}, ("spec.registrationEndpoint",)),
    ("timeout-negative", {"server.yaml": server(timeoutSeconds="-1")}, ("spec.timeoutSeconds",)),
    ("rps-zero", {"server.yaml": server(requestsPerSecond="0")}, ("spec.requestsPerSecond",)),
    ("ca-bundle-not-pem", {"server.yaml": server(caBundle="not-a-certificate")}, ("caBundle",)),
    ("iat-ref-missing-key", {"server.yaml": SERVER.replace("{secretKeyRef: {name: iat, key: token}}",
                                                           "{secretKeyRef: {name: iat}}")},
     ("spec.initialAccessToken",)),
]


@pytest.mark.parametrize(("files", "words"), [pytest.param(f, w, id=i) for i, f, w in CLI_CASES])
def test_cli_refuses_hostile_documents(tmp_path: Path, files: dict[str, str | bytes],
                                       words: tuple[str, ...]) -> None:
    folder, state = tmp_path / "docs", tmp_path / "state"
    folder.mkdir()
    for name, text in {"server.yaml": SERVER, "clients.yaml": M2M, **files}.items():
        (folder / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    result = CliRunner().invoke(main, ["apply", "-f", str(folder), "--state-dir", str(state)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    for word in words:
        assert word in result.output, (word, result.output[:2000])
    assert "Traceback" not in result.output
    assert IAT not in result.output and PASSWORD not in result.output
    assert not list(state.rglob("*.json")), "a record was written"


yaml_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=400)
yaml_fragments = st.lists(st.sampled_from(["a: ", "- ", "&x ", "*x ", "{", "}", "[", "]", ",", ":", "\n", "  ",
                                           "!!int ", "!!binary ", "!!timestamp ", "? ", "|", ">", "'", '"', "#",
                                           "<<: ", "---\n", "...\n", "%YAML 1.1\n", "\t", "2020-13-45", "1e9",
                                           "0x1F", "~", "null", "kind: OAuthClient", "apiVersion: v1"]),
                          max_size=40).map("".join)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
json_any = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)
SPEC_KEYS = ["serverRef", "clientName", "grantTypes", "responseTypes", "redirectUris", "scope", "contacts",
             "tokenEndpointAuthMethod", "jwks", "jwksUri", "additionalMetadata", "rotation", "secretName",
             "secretTemplate", "keyPair", "registration", "clientIdUrl", "deletionPolicy", "defaultMaxAge",
             "postLogoutRedirectUris", "applicationType"]


@given(st.one_of(yaml_text, yaml_fragments))
def test_any_text_loads_or_is_a_configuration_error(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "doc.yaml"
    path.write_text(M2M + "---\n" + text, encoding="utf-8")
    try:
        load_documents([path])
    except ConfigurationError as exc:
        assert "Traceback" not in str(exc)


@given(st.dictionaries(st.sampled_from(SPEC_KEYS), json_any, max_size=4),
       st.sampled_from(["metadata", "spec", "apiVersion", "kind", None]), json_any)
def test_any_field_values_parse_or_name_the_field(spec: dict[str, Any], top: str | None, value: Any) -> None:
    document: dict[str, Any] = {"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
                                "metadata": {"name": "fuzz", "namespace": "team"},
                                "spec": {"serverRef": {"name": "dev"}, **spec}}
    if top is not None:
        document[top] = value
    try:
        parse_document(document, source="fuzz.yaml").model_dump()
    except ConfigurationError as exc:
        assert exc.field or "document" in str(exc)
        assert "Traceback" not in str(exc)


# --- b) OAuthClient resources the operator reconciles ---------------------------------------------------------
# The API server checks the CRD's structural schema first; these bodies are what gets past it (rules a schema
# cannot express) and what an older CRD or a direct etcd write could let through.

SECRETISH = "hostile-SECRET-4d3c2b1a"
CR_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("spec-null", lambda b: b.update(spec=None), "spec"),
    ("spec-list", lambda b: b.update(spec=["x"]), "spec"),
    ("spec-string", lambda b: b.update(spec="x"), "spec"),
    ("spec-missing", lambda b: b.pop("spec"), "spec"),
    ("server-ref-string", lambda b: b["spec"].update(serverRef="as"), "spec.serverRef"),
    ("server-ref-no-name", lambda b: b["spec"].update(serverRef={}), "spec.serverRef.name"),
    ("grant-types-string", lambda b: b["spec"].update(grantTypes="client_credentials"), "spec.grantTypes"),
    ("no-redirect-for-code", lambda b: b["spec"].update(grantTypes=["authorization_code"]), "redirectUris"),
    ("redirect-javascript", lambda b: b["spec"].update(grantTypes=["authorization_code"],
                                                       redirectUris=["javascript:alert(1)"]), "spec.redirectUris"),
    ("redirect-fragment", lambda b: b["spec"].update(grantTypes=["authorization_code"],
                                                     redirectUris=["https://a.example.com/cb#f"]), "fragment"),
    ("redirect-plain-http", lambda b: b["spec"].update(grantTypes=["authorization_code"],
                                                       redirectUris=["http://a.example.com/cb"]), "plain http"),
    ("redirect-crlf", lambda b: b["spec"].update(grantTypes=["authorization_code"],
                                                 redirectUris=["https://a.example.com/cb\r\nX-Injected: 1"]),
     "control characters"),
    ("redirect-userinfo", lambda b: b["spec"].update(grantTypes=["authorization_code"],
                                                     redirectUris=[f"https://u:{SECRETISH}@a.example.com/cb"]),
     "user:password@"),
    ("jwks-uri-userinfo", lambda b: b["spec"].update(jwksUri=f"https://u:{SECRETISH}@keys.example.com/j"),
     "user:password@"),
    ("annotations-list", lambda b: b["metadata"].update(annotations=["x"]), "metadata.annotations"),
    ("labels-not-strings", lambda b: b["metadata"].update(labels={"a": 1}), "metadata.labels"),
    ("api-version", lambda b: b.update(apiVersion="clientreg.dev/v2"), "apiVersion"),
    ("kind-list", lambda b: b.update(kind=["OAuthClient"]), "kind"),
    ("additional-metadata-secret", lambda b: b["spec"].update(additionalMetadata={"client_secret": SECRETISH}),
     "spec.additionalMetadata"),
    ("unknown-field", lambda b: b["spec"].update(clientNmae="x"), "spec.clientNmae"),
    ("rotation-unknown-field", lambda b: b["spec"].update(rotation={"every": "1d"}), "spec.rotation.every"),
    ("rotation-bad-duration", lambda b: b["spec"].update(rotation={"gracePeriod": "a while"}), "gracePeriod"),
    ("scope-bad-token", lambda b: b["spec"].update(scope='a "b"'), "spec.scope"),
    ("jwks-and-jwks-uri", lambda b: b["spec"].update(jwks={"keys": []}, jwksUri="https://k.example.com/j"),
     "jwks"),
    ("cimd-shared-secret", lambda b: b["spec"].update(registration="cimd", clientIdUrl="https://a.example.com/c",
                                                      tokenEndpointAuthMethod="client_secret_basic"),
     "shared secret"),
    ("max-age-negative", lambda b: b["spec"].update(defaultMaxAge=-1), "spec.defaultMaxAge"),
]


@pytest.fixture(scope="module")
def world_type() -> Any:
    from test_operator_reconciler import World

    return World


@pytest.mark.parametrize(("change", "field"), [pytest.param(c, f, id=i) for i, c, f in CR_CASES])
def test_operator_reports_hostile_resources_without_crashing(world_type: Any, change: Callable[[dict[str, Any]], None],
                                                             field: str) -> None:
    w = world_type()
    w.add_client()
    change(w.cluster.client())
    result = w.reconcile()
    assert result.requeue_after is None  # a spec only an edit can fix is not retried
    conditions = {c["type"]: c for c in w.cluster.client()["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "InvalidSpec"
    assert field in conditions["Ready"]["message"]
    assert dict(w.fake.calls) == {}, "the AS was contacted for an invalid resource"
    visible = json.dumps(w.cluster.client()["status"]) + json.dumps(w.cluster.events)
    assert SECRETISH not in visible and "iat-value" not in visible and "Traceback" not in visible
    assert not {"\r", "\n"} & set(conditions["Ready"]["message"]), "a raw line break reached the status"


# --- c) what an authorization server answers --------------------------------------------------------------------

SENT = "sent-SECRET-rat-0123456789"        # the IAT or RAT clientreg sends
LEAK = "issued-SECRET-fedcba98765"         # a credential the AS puts somewhere it should not
ISSUER = "https://as.example.test"
ENDPOINT = f"{ISSUER}/register"
CLIENT_URI = f"{ISSUER}/register/c1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Drip(httpx.SyncByteStream):
    """Slowloris: one byte per read, each read 5 s apart on the fake clock (under any per-read timeout)."""

    def __init__(self, clock: FakeClock, limit: int = 10_000) -> None:
        self.clock, self.limit = clock, limit
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        yield b'{"client_id": "c1", "pad": "'
        while self.sent < self.limit:
            self.clock.now += 5.0
            self.sent += 1
            yield b"x"


def _json(status: int, data: Any, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(data).encode(), headers={"Content-Type": "application/json",
                                                                              **headers})


def _raw(status: int, content: bytes, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=content, headers=headers)


def _encoded(status: int, gzipped: bytes) -> httpx.Response:
    # A stream, not content=: httpx would decode content= on the spot, in the test rather than in clientreg.
    return httpx.Response(status, headers={"Content-Encoding": "gzip"}, stream=httpx.ByteStream(gzipped))


GOOD = {"client_id": "c1", "client_secret": LEAK, "registration_access_token": LEAK,
        "registration_client_uri": CLIENT_URI, "client_secret_expires_at": 0}

# (id, answer, error class expected from register/read, or None when the answer is usable)
ANSWERS: list[tuple[str, Callable[[], httpx.Response], type[ClientregError] | None]] = [
    ("not-json", lambda: _raw(201, b"client_id=c1&client_secret=" + LEAK.encode()), ProtocolError),
    ("html-page", lambda: _raw(201, b"<html><body><h1>Welcome</h1><p>token " + SENT.encode() + b"</p></body></html>",
                               **{"Content-Type": "text/html"}), ProtocolError),
    ("empty-body", lambda: _raw(201, b""), ProtocolError),
    ("whitespace-body", lambda: _raw(201, b" \r\n\t "), ProtocolError),
    ("binary-body", lambda: _raw(201, bytes(range(256)) * 4), ProtocolError),
    ("bad-utf8-json", lambda: _raw(201, b'{"client_id": "c\xff\xfe1"}'), ProtocolError),
    ("json-array", lambda: _json(201, [GOOD]), ProtocolError),
    ("json-string", lambda: _json(201, "c1"), ProtocolError),
    ("json-number", lambda: _json(201, 17), ProtocolError),
    ("json-null", lambda: _json(201, None), ProtocolError),
    ("json-true", lambda: _json(201, True), ProtocolError),
    ("nan-literal", lambda: _raw(201, b'{"client_id": "c1", "client_secret_expires_at": NaN, '
                                 b'"token_endpoint_auth_method": "none"}'), None),
    ("deeply-nested", lambda: _raw(201, b"[" * 100_000 + b"]" * 100_000), ProtocolError),
    ("huge-declared", lambda: _raw(201, b"{}", **{"Content-Length": str(10**12)}), ProtocolError),
    ("huge-streamed", lambda: httpx.Response(201, stream=httpx.ByteStream(b"[" + b"1," * 700_000 + b"1]")),
     ProtocolError),
    ("compression-bomb", lambda: _encoded(201, gzip.compress(b"\x00" * 8_000_000)), ProtocolError),
    ("broken-gzip", lambda: _encoded(201, b"not gzip at all"), ProtocolError),
    ("missing-client-id", lambda: _json(201, {k: v for k, v in GOOD.items() if k != "client_id"}), ProtocolError),
    ("client-id-null", lambda: _json(201, {**GOOD, "client_id": None}), ProtocolError),
    ("client-id-empty", lambda: _json(201, {**GOOD, "client_id": "  "}), ProtocolError),
    ("client-id-list", lambda: _json(201, {**GOOD, "client_id": ["c1"]}), ProtocolError),
    ("client-id-object", lambda: _json(201, {**GOOD, "client_id": {"id": "c1"}}), ProtocolError),
    ("client-id-bool", lambda: _json(201, {**GOOD, "client_id": True}), ProtocolError),
    ("client-id-float", lambda: _json(201, {**GOOD, "client_id": 1.5}), ProtocolError),
    # RFC 7591 §3.2.1: credentials are strings; one of another type is refused, never dropped (issue 11).
    ("client-id-int", lambda: _json(201, {**GOOD, "client_id": 17}), ProtocolError),
    ("secret-int", lambda: _json(201, {**GOOD, "client_secret": 12345}), ProtocolError),
    ("secret-list", lambda: _json(201, {**GOOD, "client_secret": [LEAK]}), ProtocolError),
    ("secret-object", lambda: _json(201, {**GOOD, "client_secret": {"value": LEAK}}), ProtocolError),
    ("rat-number", lambda: _json(201, {**GOOD, "registration_access_token": 99}), ProtocolError),
    ("expires-at-string", lambda: _json(201, {**GOOD, "client_secret_expires_at": "never"}), None),
    ("expires-at-negative", lambda: _json(201, {**GOOD, "client_secret_expires_at": -1}), None),
    ("expires-at-huge", lambda: _json(201, {**GOOD, "client_secret_expires_at": 1e308}), None),
    ("expires-at-bool", lambda: _json(201, {**GOOD, "client_secret_expires_at": True}), None),
    ("expires-at-digits", lambda: _raw(201, b'{"client_id": "c1", "client_secret_expires_at": 1' + b"0" * 5000
                                            + b"}"), ProtocolError),
    ("registration-uri-number", lambda: _json(201, {**GOOD, "registration_client_uri": 5}), ProtocolError),
    ("registration-uri-javascript", lambda: _json(201, {**GOOD, "registration_client_uri": "javascript:x"}),
     ProtocolError),
    ("secret-in-error-description", lambda: _json(400, {"error": "invalid_client_metadata",
                                                       "error_description": f"token {SENT} is bad"}),
     ClientregError),
    ("secret-in-error-code", lambda: _json(400, {"error": f"bad {SENT}"}), ClientregError),
    ("secret-in-html-error", lambda: _raw(500, f"<html><p>Authorization: Bearer {SENT}</p></html>".encode(),
                                          **{"Content-Type": "text/html"}), ClientregError),
    ("secret-in-challenge", lambda: _raw(401, b"", **{"WWW-Authenticate": f'Bearer error="invalid_token", '
                                                                         f'error_description="{SENT} expired"'}),
     ClientregError),
    ("issued-secret-in-error", lambda: _json(400, {"error": "invalid_client_metadata", "client_secret": LEAK,
                                                   "registration_access_token": LEAK}), ClientregError),
    ("redirect-other-host", lambda: _raw(307, b"", Location="https://evil.test/steal?t=1"), ProtocolError),
    ("redirect-same-host", lambda: _raw(308, b"", Location=f"{ISSUER}/register2"), ProtocolError),
    ("redirect-no-location", lambda: _raw(302, b""), ProtocolError),
    ("redirect-javascript", lambda: _raw(303, b"", Location="javascript:alert(1)"), ProtocolError),
    ("rate-limited-for-a-day", lambda: _raw(429, b"", **{"Retry-After": "86400"}), RateLimited),
    ("retry-after-garbage", lambda: httpx.Response(429, headers=[(b"Retry-After", b"\x00soon\xff")]),
     RateLimited),
    ("location-garbage", lambda: httpx.Response(302, headers=[(b"Location", b"https://\xff\x00/")]), ProtocolError),
    ("teapot", lambda: _json(418, {"error": "teapot"}), ProtocolError),
    ("status-299", lambda: _json(299, GOOD), ProtocolError),
]

Operation = Callable[[HttpClient], object]
OPERATIONS: dict[str, Operation] = {
    "register": lambda http: rfc7591.register(http, ENDPOINT, {"client_name": "x"},
                                              initial_access_token=SecretStr(SENT)),
    "read": lambda http: rfc7592.read(http, CLIENT_URI, SecretStr(SENT)),
}


def answering(answer: Callable[[], httpx.Response], **settings: Any) -> tuple[HttpClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer()

    http = HttpClient(HttpSettings(retries=settings.pop("retries", 1), **settings),
                      transport=httpx.MockTransport(handle), sleep=lambda _s: None)
    return http, seen


def assert_no_secret(exc: ClientregError) -> None:
    texts = [str(exc), repr(exc), json.dumps(describe(exc), default=str)]
    texts.extend(str(value) for value in vars(exc).values())
    for text in texts:
        assert SENT not in text and LEAK not in text, text[:500]
        assert "Traceback" not in text


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.parametrize(("answer", "expected"), [pytest.param(a, e, id=i) for i, a, e in ANSWERS])
def test_hostile_answers_end_in_a_clean_error_or_a_safe_result(
        answer: Callable[[], httpx.Response], expected: type[ClientregError] | None, operation: str) -> None:
    http, seen = answering(answer, max_body_bytes=1_000_000)
    if operation == "read" and answer().status_code in (200, 201) and expected is None:
        expected = ProtocolError  # RFC 7592 reads answer 200: a 201 is unexpected there
    try:
        info = OPERATIONS[operation](http)
    except ClientregError as exc:
        assert expected is not None, f"a usable answer was refused: {exc}"
        assert isinstance(exc, expected), f"{type(exc).__name__}: {exc}"
        assert_no_secret(exc)
    except Exception as exc:  # pragma: no cover - the failure this catalog exists to catch
        pytest.fail(f"{type(exc).__name__} escaped: {exc}")
    else:
        assert expected is None, f"accepted: {info!r}"
        assert isinstance(info, rfc7591.ClientInformation) and info.client_id.strip()
        assert LEAK not in repr(info) and LEAK not in str(info)
        assert info.client_secret_expires_at is None or info.client_secret_expires_at >= 0
    # Never followed, whatever the Location: every request went to the AS's own host.
    assert {r.url.host for r in seen} == {"as.example.test"}


def test_a_dripping_body_is_cut_at_the_deadline_and_a_post_is_not_repeated() -> None:
    clock = FakeClock()
    drip = Drip(clock)
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, stream=drip)

    http = HttpClient(HttpSettings(retries=3, deadline=60.0, timeout=10.0), transport=httpx.MockTransport(handle),
                      sleep=lambda _s: None, monotonic=clock)
    with pytest.raises(TransportError, match="not complete after 60s") as caught:
        rfc7591.register(http, ENDPOINT, {"client_name": "x"}, initial_access_token=SecretStr(SENT))
    assert len(seen) == 1 and drip.sent < 20
    assert "not retried" in str(caught.value)
    assert_no_secret(caught.value)


def test_a_dripping_discovery_document_is_retried_then_given_up() -> None:
    clock = FakeClock()
    streams: list[Drip] = []

    def handle(request: httpx.Request) -> httpx.Response:
        streams.append(Drip(clock))
        return httpx.Response(200, stream=streams[-1])

    http = HttpClient(HttpSettings(retries=2, deadline=30.0), transport=httpx.MockTransport(handle),
                      sleep=lambda _s: None, monotonic=clock)
    with pytest.raises(TransportError, match="not complete after 30s"):
        discover(http, ISSUER)
    assert len(streams) == 3 and all(s.sent < 10 for s in streams)


def _metadata(**fields: Any) -> dict[str, Any]:
    return {"issuer": ISSUER, "registration_endpoint": ENDPOINT, "token_endpoint": f"{ISSUER}/token", **fields}


# (id, discovery document served at every well-known URL, what must happen)
DISCOVERY: list[tuple[str, Callable[[httpx.Request], httpx.Response], type[ClientregError]]] = [
    ("issuer-mismatch", lambda r: _json(200, _metadata(issuer="https://evil.test")), DiscoveryError),
    ("issuer-trailing-slash", lambda r: _json(200, _metadata(issuer=ISSUER + "/")), DiscoveryError),
    ("issuer-missing", lambda r: _json(200, {"registration_endpoint": ENDPOINT}), DiscoveryError),
    ("issuer-number", lambda r: _json(200, _metadata(issuer=5)), DiscoveryError),
    ("metadata-array", lambda r: _json(200, [_metadata()]), DiscoveryError),
    ("metadata-html", lambda r: _raw(200, b"<html>login</html>", **{"Content-Type": "text/html"}), DiscoveryError),
    ("metadata-redirect-elsewhere", lambda r: _raw(302, b"", Location="https://evil.test/.well-known/x"),
     DiscoveryError),
    ("registration-endpoint-plain-http", lambda r: _json(200, _metadata(registration_endpoint="http://evil.test/r")),
     PolicyViolation),
    ("registration-endpoint-javascript", lambda r: _json(200, _metadata(registration_endpoint="javascript:x")),
     ClientregError),
    ("registration-endpoint-userinfo", lambda r: _json(200, _metadata(
        registration_endpoint=f"https://u:{LEAK}@as.example.test/r")), ClientregError),
    ("registration-endpoint-missing", lambda r: _json(200, {"issuer": ISSUER}), ClientregError),
    ("registration-endpoint-list", lambda r: _json(200, _metadata(registration_endpoint=[ENDPOINT])),
     ClientregError),
]


@pytest.mark.parametrize(("serve", "expected"), [pytest.param(s, e, id=i) for i, s, e in DISCOVERY])
def test_hostile_discovery_documents_are_not_trusted(serve: Callable[[httpx.Request], httpx.Response],
                                                     expected: type[ClientregError]) -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return serve(request)

    http = HttpClient(HttpSettings(retries=0), transport=httpx.MockTransport(handle), sleep=lambda _s: None)
    with pytest.raises(ClientregError) as caught:
        found = discover(http, ISSUER)
        endpoint = registration_endpoint_of(found)
        rfc7591.register(http, endpoint, {"client_name": "x"}, initial_access_token=SecretStr(SENT))
    assert isinstance(caught.value, expected), f"{type(caught.value).__name__}: {caught.value}"
    assert_no_secret(caught.value)
    # Nothing was ever sent anywhere but the issuer's host, and the IAT never left.
    assert {r.url.host for r in seen} == {"as.example.test"}
    assert all("authorization" not in r.headers for r in seen)
