"""The CustomResourceDefinitions, generated from the pydantic models that the CLI and Pulumi use too.

``clientreg-operator crds`` prints them; ``charts/clientreg/crds/`` holds the same text, and a unit test
fails when the two drift apart. The core's :func:`clientreg.openapi.openapi_schema` gives a structural
schema; this module polishes it for the API server (OpenAPI v3.0 spellings, no ``additionalProperties:
false``), adds what only Kubernetes understands (CEL rules, list types, printer columns) and fills in
``kubectl explain`` text for the RFC 7591 fields that have none.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from clientreg.names import BIDI_CONTROLS, LINE_SEPARATORS, QUALIFIED_NAME, SECRET_KEY, NameRule
from clientreg.openapi import openapi_schema
from clientreg.redirects import MAX_URI_LENGTH
from clientreg.spec import (
    GROUP,
    SET_VALUED,
    VERSION,
    WIRE_NAMES,
    AuthorizationServerSpec,
    ClusterAuthorizationServerSpec,
    OAuthClientSpec,
)

# kubectl explain text for registration metadata the models leave undescribed (RFC 7591 §2, OIDC
# Registration §2). The models' own descriptions win when present.
_WIRE_DOCS: dict[str, str] = {
    "client_name": "Human-readable name of the client, shown to users at consent.",
    "redirect_uris": "Redirection URIs for redirect-based flows (RFC 7591 §2). https, loopback http or a "
                     "private-use scheme; no fragment.",
    "grant_types": "OAuth grant types the client may use. Default at most servers: [authorization_code].",
    "response_types": "OAuth response types the client may use. Default: [code].",
    "scope": "Space-separated scope values the client may request (RFC 6749 §3.3).",
    "token_endpoint_auth_method": "How the client authenticates at the token endpoint. Default: "
                                  "client_secret_basic.",
    "contacts": "E-mail addresses of people responsible for this client.",
    "client_uri": "Web page with information about the client.",
    "logo_uri": "Logo of the client.",
    "tos_uri": "Terms of service of the client.",
    "policy_uri": "Privacy policy of the client.",
    "jwks_uri": "URL of the client's JSON Web Key Set (for private_key_jwt). Mutually exclusive with jwks.",
    "jwks": "The client's JSON Web Key Set, by value. Mutually exclusive with jwksUri.",
    "software_id": "Identifier of the client software, the same across instances (RFC 7591 §2).",
    "software_version": "Version of the client software.",
    "post_logout_redirect_uris": "Where the AS may send the user after logout (OIDC RP-Initiated Logout).",
    "application_type": "OIDC: web or native.",
    "subject_type": "OIDC: public or pairwise subject identifiers.",
    "id_token_signed_response_alg": "OIDC: JWS algorithm for ID tokens issued to this client.",
    "token_endpoint_auth_signing_alg": "JWS algorithm for private_key_jwt / client_secret_jwt assertions.",
    "default_max_age": "OIDC: default maximum authentication age, in seconds.",
    "require_auth_time": "OIDC: whether the auth_time claim is required in ID tokens.",
    "initiate_login_uri": "OIDC: URI a third party can use to initiate a login by the client.",
    "sector_identifier_uri": "OIDC: URL of a JSON list of redirect URIs, for pairwise identifiers.",
}

_DURATION_PATTERN = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"
_SCOPE_PATTERN = r"^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$"
# Bounds the API server needs to estimate the cost of CEL rules over lists.
_MAX_LIST_ITEMS = 64

# Redirect URIs at admission: the part of clientreg.redirects' rules a regex states, so that a GitOps sync
# fails at once instead of the resource turning Degraded later. Each refuses only what
# clientreg.redirects.parse_redirect_uri refuses too (a unit test holds them to it); the operator checks
# the rest (hosts, ports, percent-encoding, the server's allowedRedirectHosts and allowedRedirectSchemes).
# RFC 3986 §2 characters, without '#' (which gets its own message): no whitespace, backslash or non-ASCII.
REDIRECT_URI_CHARS = r"^[-A-Za-z0-9._~:/?\[\]@!$&'()*+,;=%]*$"
# https; http to a loopback host (RFC 8252 §7.3); a private-use scheme, a reverse domain name (§7.1).
REDIRECT_URI_SCHEME = (r"(?i)^(https:|http://(localhost|127\.[0-9.]+|\[[0-9a-f:.]+\])([:/?]|$)"
                       r"|[a-z][-a-z0-9+]*(\.[-a-z0-9+]+)+:)")
REDIRECT_URI_RULES: list[dict[str, str]] = [
    {"rule": "!self.contains('#')", "message": "a redirect URI must not include a fragment (RFC 6749 §3.1.2)"},
    {"rule": f'self.matches(r"{REDIRECT_URI_CHARS}")',
     "message": "a redirect URI holds only the characters RFC 3986 §2 allows: no whitespace, backslash or "
                "non-ASCII (percent-encode them in a path or query, write a host as its A-label xn--…)"},
    {"rule": f'self.matches(r"{REDIRECT_URI_SCHEME}")',
     "message": "a redirect URI is https, http to a loopback host (127.0.0.1, [::1], localhost; RFC 8252 §7.3) "
                "or a private-use scheme that is a reverse domain name such as com.example.app:/cb (§7.1)"},
]
# A transition rule at the root, where status is visible: the server may change until a client exists there.
SERVER_REF_RULE = {
    "rule": "self.spec.serverRef == oldSelf.spec.serverRef || !has(oldSelf.status) || "
            "!has(oldSelf.status.clientId)",
    "message": "spec.serverRef cannot change once a client is registered (status.clientId is set): the client "
               "lives at that server; create a new OAuthClient to register elsewhere",
}


def _polish(node: Any) -> Any:
    """OpenAPI 3.0 as the API server reads it, from the JSON Schema pydantic writes."""
    if isinstance(node, list):
        return [_polish(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title":
            continue
        if key == "additionalProperties" and value is False:
            continue  # the API server prunes unknown fields already, and rejects `false` next to properties
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
            continue
        if key == "properties":
            out[key] = {name: _polish(sub) for name, sub in value.items()}
            continue
        out[key] = _polish(value)
    if "description" in out:
        out["description"] = " ".join(out["description"].replace("``", "").split())
    return out


def _keys_rule(rule: NameRule) -> dict[str, str]:
    return {"rule": f"self.all(k, size(k) <= {rule.max_length} && k.matches(r'{rule.pattern}'))",
            "message": f"every key must be {rule.text}"}


def _camel(wire: str) -> str:
    return next(c for c, w in WIRE_NAMES.items() if w == wire)


def _oauthclient_spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = _polish(openapi_schema(OAuthClientSpec))
    props = schema["properties"]
    for wire, text in _WIRE_DOCS.items():
        props[_camel(wire)].setdefault("description", text)
    for wire in SET_VALUED | {"grant_types"}:
        field = props[_camel(wire)]
        field["x-kubernetes-list-type"] = "set"
        field["maxItems"] = _MAX_LIST_ITEMS
    for name in ("redirectUris", "postLogoutRedirectUris"):
        props[name]["items"]["maxLength"] = MAX_URI_LENGTH
        props[name]["items"]["x-kubernetes-validations"] = copy.deepcopy(REDIRECT_URI_RULES)
    props["scope"]["pattern"] = _SCOPE_PATTERN
    rotation = props["rotation"]["properties"]
    for name in ("rotateBefore", "period", "gracePeriod"):
        rotation[name]["pattern"] = _DURATION_PATTERN
    template = props["secretTemplate"]["properties"]
    # Values carry their pattern from the models; keys of a map only a CEL rule can check.
    for name, rule in (("labels", QUALIFIED_NAME), ("annotations", QUALIFIED_NAME), ("extraData", SECRET_KEY)):
        template[name]["maxProperties"] = _MAX_LIST_ITEMS
        template[name]["x-kubernetes-validations"] = [_keys_rule(rule)]
    for name in ("issuerKey", "tokenEndpointKey"):
        # null drops the key from the Secret (server-side apply only: client-side apply drops the null, and
        # omitKeys says it for every apply mode); without nullable the API server would default it back.
        template[name]["nullable"] = True
        template[name]["description"] = (f"Secret key for the {name[:-3]}. To leave it out, list {name[:-3]} in "
                                         "omitKeys (null works with server-side apply only).")
    template["omitKeys"]["x-kubernetes-list-type"] = "set"
    template["omitKeys"]["maxItems"] = 2
    template["clientIdKey"]["description"] = "Secret key for the client ID."
    template["clientSecretKey"]["description"] = "Secret key for the client secret."
    template["labels"]["description"] = "Labels added to the Secret."
    template["annotations"]["description"] = "Annotations added to the Secret."
    props["serverRef"]["properties"]["name"]["description"] = "Name of the server resource."
    props["serverRef"]["properties"]["kind"]["description"] = (
        "AuthorizationServer (same namespace) or ClusterAuthorizationServer.")
    schema["x-kubernetes-validations"] = [
        {"rule": "!(has(self.jwks) && has(self.jwksUri))",
         "message": "jwks and jwksUri must not both be set (RFC 7591 §2)"},
        {"rule": "!has(self.registration) || self.registration != 'cimd' || has(self.clientIdUrl)",
         "message": "registration: cimd needs clientIdUrl"},
        {"rule": "(has(self.registration) && self.registration == 'cimd') || !has(self.clientIdUrl)",
         "message": "clientIdUrl is only for registration: cimd"},
        {"rule": "(has(self.registration) && self.registration == 'cimd') "
                 "|| (has(self.redirectUris) && size(self.redirectUris) > 0) "
                 "|| (has(self.grantTypes) && size(self.grantTypes) > 0 "
                 "&& !self.grantTypes.exists(g, g == 'authorization_code' || g == 'implicit'))",
         "message": "redirectUris is required for the authorization_code and implicit grants (RFC 7591 §2); "
                    "for machine-to-machine clients set grantTypes: [client_credentials]"},
    ]
    return schema


def _server_spec_schema(model: type[AuthorizationServerSpec]) -> dict[str, Any]:
    schema: dict[str, Any] = _polish(openapi_schema(model))
    for field in ("allowedRedirectHosts", "allowedRedirectSchemes"):
        schema["properties"][field]["maxItems"] = _MAX_LIST_ITEMS
        schema["properties"][field]["items"]["maxLength"] = 253
    # RFC 8252 §7.1 / RFC 3986 §3.1; the full rules (IDNA hosts, wildcards) are the core's, in the operator.
    schemes = schema["properties"]["allowedRedirectSchemes"]["items"]
    schemes["pattern"] = r"^[A-Za-z][A-Za-z0-9+\-]*(\.[A-Za-z0-9+\-]+)+$"
    schema["x-kubernetes-validations"] = [{
        "rule": "has(self.issuer) || has(self.registrationEndpoint)",
        "message": "set issuer (discovered) or registrationEndpoint (given directly)",
    }]
    return schema


def _cluster_server_spec_schema() -> dict[str, Any]:
    schema = _server_spec_schema(ClusterAuthorizationServerSpec)
    selector = schema["properties"]["allowedNamespaces"]["properties"]["selector"]
    # The models' rules, so that the API server refuses such a document at once.
    selector["x-kubernetes-validations"] = [{
        "rule": "(has(self.matchLabels) && size(self.matchLabels) > 0) || "
                "(has(self.matchExpressions) && size(self.matchExpressions) > 0)",
        "message": "an empty selector would match every namespace: give matchLabels or matchExpressions, or "
                   "leave allowedNamespaces unset to allow every namespace",
    }]
    selector["properties"]["matchExpressions"]["items"]["x-kubernetes-validations"] = [{
        "rule": "self.operator in ['Exists', 'DoesNotExist'] ? (!has(self.values) || size(self.values) == 0) "
                ": (has(self.values) && size(self.values) > 0)",
        "message": "In and NotIn need values; Exists and DoesNotExist take none",
    }]
    return schema


def _crd(kind: str, plural: str, *, scope: str, short_names: list[str], description: str,
         spec: dict[str, Any], status: dict[str, Any], columns: list[dict[str, Any]],
         rules: list[dict[str, str]] | None = None) -> dict[str, Any]:
    root: dict[str, Any] = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if rules:
        root["x-kubernetes-validations"] = rules
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "clientreg", "app.kubernetes.io/part-of": "clientreg"},
        },
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower(),
                      "shortNames": short_names, "categories": ["clientreg"]},
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": root},
            }],
        },
    }


def _ready_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Reason", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'},
    ]


def crds(*, client_status: dict[str, Any], server_status: dict[str, Any]) -> list[dict[str, Any]]:
    """The three CRDs, as dicts ready for the API server. The status schemas (JSON Schema) are the writer's,
    the operator's: this layer knows the specs and the Kubernetes conventions, not what a controller
    reports."""
    client_spec = _oauthclient_spec_schema()
    client_spec["description"] = "The client to register and keep in shape."
    server_spec = _server_spec_schema(AuthorizationServerSpec)
    age = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    message = {"name": "Message", "type": "string", "priority": 1,
               "jsonPath": '.status.conditions[?(@.type=="Ready")].message'}
    client_columns = [
        *_ready_columns(),
        {"name": "Client ID", "type": "string", "jsonPath": ".status.clientId"},
        {"name": "Server", "type": "string", "jsonPath": ".spec.serverRef.name"},
        # string, not date: kubectl prints a future date column as <invalid> (it renders dates as an age).
        {"name": "Expires", "type": "string", "jsonPath": ".status.secretExpiresAt"},
        {"name": "Secret", "type": "string", "priority": 1, "jsonPath": ".status.secretName"},
        {"name": "Next Rotation", "type": "string", "priority": 1, "jsonPath": ".status.nextRotation"},
        message, age,
    ]
    server_columns = [
        *_ready_columns(),
        {"name": "Issuer", "type": "string", "jsonPath": ".spec.issuer"},
        message, age,
    ]
    server_doc = ("An OAuth authorization server where OAuthClients register through RFC 7591 Dynamic "
                  "Client Registration. {scope}")
    return [
        _crd("OAuthClient", "oauthclients", scope="Namespaced", short_names=["oauthc", "oac"],
             description="An OAuth client registered through Dynamic Client Registration (RFC 7591) and kept "
                         "in shape through RFC 7592; its credentials are published in a Secret of the same "
                         "namespace.",
             spec=client_spec, status=_polish(client_status), columns=client_columns, rules=[SERVER_REF_RULE]),
        _crd("AuthorizationServer", "authorizationservers", scope="Namespaced",
             short_names=["authserver", "oas"],
             description=server_doc.format(scope="Usable by OAuthClients of its own namespace; its Secrets "
                                           "are read from that namespace."),
             spec=copy.deepcopy(server_spec), status=_polish(server_status),
             columns=server_columns),
        _crd("ClusterAuthorizationServer", "clusterauthorizationservers", scope="Cluster",
             short_names=["clusterauthserver", "coas"],
             description=server_doc.format(scope="Usable by OAuthClients of the namespaces "
                                           "spec.allowedNamespaces admits (every namespace when unset); its "
                                           "Secrets are read from the operator's cluster resource namespace."),
             spec=_cluster_server_spec_schema(), status=_polish(server_status),
             columns=server_columns),
    ]


HEADER = ("# Generated by `clientreg-operator crds` from the clientreg.spec models. Do not edit:\n"
          "# regenerate with `clientreg-operator crds --output-dir charts/clientreg/crds`.\n")


# Characters a reader of the file would not see (or would see as a line break): written as \uXXXX escapes.
_INVISIBLE = BIDI_CONTROLS | LINE_SEPARATORS


class _Dumper(yaml.SafeDumper):
    """Writes strings holding invisible formatting characters (the display-text patterns) double-quoted
    and escaped, so that the file reads as it parses: a literal U+2028 would even break the line."""

    def choose_scalar_style(self) -> str:
        value = getattr(self.event, "value", None)
        if isinstance(value, str) and _INVISIBLE & set(value):
            return '"'
        return str(super().choose_scalar_style())

    def write_double_quoted(self, text: str, split: bool = True) -> None:
        allow_unicode = self.allow_unicode
        self.allow_unicode = allow_unicode and not _INVISIBLE & set(text)
        try:
            super().write_double_quoted(text, split=False)
        finally:
            self.allow_unicode = allow_unicode


def render(crd: dict[str, Any]) -> str:
    return HEADER + yaml.dump(crd, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


def files(*, client_status: dict[str, Any], server_status: dict[str, Any]) -> dict[str, str]:
    """File name → YAML text, one CRD per file (Helm installs everything under crds/)."""
    return {f"{c['spec']['names']['plural']}.{GROUP}.yaml": render(c)
            for c in crds(client_status=client_status, server_status=server_status)}
