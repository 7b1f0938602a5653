"""The Pulumi package schema of ``clientreg``, generated from the core's spec models (never hand-written).

Every argument the dynamic provider accepts (:mod:`clientreg_pulumi.args`) becomes a camelCase input of
``clientreg:index:OAuthClient``, typed and described by the pydantic field it is validated with; the
outputs are the dynamic provider's (:mod:`clientreg_pulumi.resource`). Secrets are marked ``secret`` so
that every language's SDK (and Pulumi YAML) keeps them encrypted in state. ``schema.json`` beside this
module is this function's output, committed so that ``pulumi package gen-sdk`` and readers need no
Python; ``tests/unit/test_pulumi_plugin_schema.py`` fails when it is out of date.

    python -m clientreg_pulumi.plugin.schema > provider/clientreg_pulumi/plugin/schema.json
"""

from __future__ import annotations

import importlib.metadata
import json
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from clientreg.spec import AuthorizationServerSpec, KeyPair, OAuthClientSpec, Rotation, SecretTemplate

from .. import args
from ..argnames import camel
from ..resource import COMPUTED_OUTPUTS, SECRET_OUTPUTS

PACKAGE = "clientreg"
RESOURCE = f"{PACKAGE}:index:OAuthClient"
GET_CLIENT = f"{PACKAGE}:index:getClient"
KUBERNETES_SECRET_TYPE = f"{PACKAGE}:index:KubernetesSecret"
KEY_PAIR_TYPE = f"{PACKAGE}:index:KeyPair"
SCHEMA_FILE = Path(__file__).with_name("schema.json")
#: The package's version is clientreg's: the plugin ships inside it.
VERSION = importlib.metadata.version("clientreg")

#: Inputs that are credentials: secret in the schema, so every SDK marks them secret in state.
SECRET_INPUTS = frozenset(args.SECRET_ARGS)
#: Provider configuration: the server every OAuthClient without its own issuer/registrationEndpoint uses.
CONFIG_ARGS: tuple[str, ...] = (*args.SERVER_ARGS, "initial_access_token", "software_statement")
#: Provider configuration that only `pulumi import` reads: a client is reachable through RFC 7592 only
#: with the registration access token its registration returned (an ID alone opens nothing).
IMPORT_CONFIG: dict[str, dict[str, Any]] = {
    "import_registration_client_uri": {
        "type": "string",
        "description": "`pulumi import` only: the registration_client_uri of the client to import (RFC 7592). "
                       "Default: the registration endpoint followed by the client ID."},
    "import_registration_access_token": {
        "type": "string", "secret": True,
        "description": "`pulumi import` only: the registration access token of the client to import. Dynamic "
                       "Client Registration cannot read, update or delete a client without it, and the AS never "
                       "hands it out again: keep it from the original registration."},
}

_OUTPUT_TYPES: dict[str, dict[str, Any]] = {
    "client_id": {"type": "string"},
    "client_secret": {"type": "string"},
    "client_secret_expires_at": {"type": "integer"},
    "client_id_issued_at": {"type": "integer"},
    "registration_client_uri": {"type": "string"},
    "registration_access_token": {"type": "string"},
    "registered_metadata": {"type": "object", "additionalProperties": {"$ref": "pulumi.json#/Any"}},
    "retiring_client_ids": {"type": "array", "items": {"type": "string"}},
    "last_rotation": {"type": "string"},
    "next_action_at": {"type": "string"},
    "status": {"type": "string"},
    "status_message": {"type": "string"},
    "private_key": {"type": "string"},
    "key_id": {"type": "string"},
    "key_algorithm": {"type": "string"},
    "published_documents": {"type": "object", "additionalProperties": {"type": "string"}},
    "record": {"$ref": "pulumi.json#/Any"},
}
_OUTPUT_DOCS: dict[str, str] = {
    "client_secret_expires_at": "Seconds since the epoch when the secret stops working; 0 when it never expires.",
    "registered_metadata": "The client metadata as the AS holds it (wire names).",
    "retiring_client_ids": "Old clients of a rotation, deleted by the first `up` after their grace period.",
    "next_action_at": "When the next time-driven action (rotation, deletion of an old client) falls due.",
    "status": "InSync, or the core's reason (DriftAtServer after a refresh, ServerRefusedValue, ...).",
    "status_message": "The state the status stands for, in words.",
    "private_key": "keyPair only: the current private key, PKCS#8 PEM.",
    "key_id": "keyPair only: the kid of privateKey, for the client assertion's JWS header.",
    "published_documents": "URL -> JSON text to serve there (CIMD document, JWKS). Public keys only.",
    "record": "The registration record the provider keeps between runs (every credential: secret).",
}
_EXTRA_INPUTS: dict[str, dict[str, Any]] = {
    "initial_access_token": {"type": "string", "description": "RFC 7591 §3 initial access token, sent as a "
                             "Bearer token on registration. Default: the provider's initialAccessToken."},
    "software_statement": {"type": "string", "description": "RFC 7591 §2.3 software statement (a signed JWT) "
                           "sent with every registration."},
    "rotation_trigger": {"$ref": "pulumi.json#/Any", "description": "Any value: a new value rotates the "
                         "client's credentials on the next `up`."},
    "adopt_client_id": {"type": "string", "description": "Take over a client registered elsewhere, on create."},
    "adopt_registration_client_uri": {"type": "string", "description": "The adopted client's "
                                      "registration_client_uri (RFC 7592)."},
    "adopt_registration_access_token": {"type": "string", "description": "The adopted client's registration "
                                        "access token (RFC 7592)."},
    "kubernetes_secret": {"$ref": f"#/types/{KUBERNETES_SECRET_TYPE}", "description": "A Kubernetes Secret "
                          "holding the credentials, shaped like the operator's secretTemplate."},
    "key_pair": {"$ref": f"#/types/{KEY_PAIR_TYPE}", "description": "private_key_jwt only: a key pair "
                 "clientreg generates and rotates; its private key is the privateKey output."},
}


def _type_of(annotation: Any) -> dict[str, Any]:
    """A Pulumi schema type for a pydantic field annotation."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_of(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _type_of(inner[0]) if len(inner) == 1 else {"$ref": "pulumi.json#/Any"}
    if origin is typing.Literal:
        values = typing.get_args(annotation)
        return {"type": "integer" if all(isinstance(v, int) for v in values) else "string"}
    if origin is list:
        return {"type": "array", "items": _type_of(typing.get_args(annotation)[0])}
    if origin is dict:
        value = typing.get_args(annotation)[1]
        items = {"$ref": "pulumi.json#/Any"} if value is Any else _type_of(value)
        return {"type": "object", "additionalProperties": items}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if annotation in simple:
        return {"type": simple[annotation]}
    return {"$ref": "pulumi.json#/Any"}


def _property(field: FieldInfo, *, secret: bool = False) -> dict[str, Any]:
    prop = _type_of(field.annotation)
    if field.description:
        prop["description"] = field.description
    if secret:
        prop["secret"] = True
    return prop


def _field(model: type[BaseModel], name: str) -> FieldInfo:
    return model.model_fields[name]


def client_inputs() -> dict[str, dict[str, Any]]:
    """Every OAuthClient argument, snake_case name → schema property."""
    found: dict[str, dict[str, Any]] = {}
    for name in args.SPEC_ARGS:
        if name not in _EXTRA_INPUTS:
            found[name] = _property(_field(OAuthClientSpec, name))
    for name, field in args.ROTATION_ARGS.items():
        found[name] = _property(_field(Rotation, field))
    for name in args.SERVER_ARGS:
        found[name] = _property(_field(AuthorizationServerSpec, name))
    for name, prop in _EXTRA_INPUTS.items():
        found[name] = {**prop, **({"secret": True} if name in SECRET_INPUTS else {})}
    return found


def _camel_props(props: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {camel(name): prop for name, prop in sorted(props.items(), key=lambda kv: camel(kv[0]))}


def _object(model_fields: dict[str, dict[str, Any]], description: str, required: list[str]) -> dict[str, Any]:
    return {"type": "object", "description": description, "properties": _camel_props(model_fields),
            "required": required}


def types_() -> dict[str, Any]:
    place = {"name": {"type": "string", "description": "The Secret's name."},
             "namespace": {"type": "string", "description": "The Secret's namespace (default: default)."},
             "kubeconfig": {"type": "string", "description": "Path of the kubeconfig reaching the cluster."},
             "context": {"type": "string", "description": "The kubeconfig context to use."}}
    template = {name: _property(field) for name, field in SecretTemplate.model_fields.items()}
    key_pair = {name: _property(field) for name, field in KeyPair.model_fields.items()}
    return {
        KUBERNETES_SECRET_TYPE: _object({**place, **template}, "A Kubernetes Secret holding the client's "
                                        "credentials, kept current by every `up`.", ["name"]),
        KEY_PAIR_TYPE: _object(key_pair, "A key pair clientreg generates for private_key_jwt (RFC 7523).", []),
    }


def outputs() -> dict[str, dict[str, Any]]:
    found = dict(client_inputs())
    for name in COMPUTED_OUTPUTS:
        prop = dict(_OUTPUT_TYPES.get(name, {"$ref": "pulumi.json#/Any"}))
        if name in _OUTPUT_DOCS:
            prop["description"] = _OUTPUT_DOCS[name]
        found[name] = prop
    for name in SECRET_OUTPUTS:
        found[name] = {**found[name], "secret": True}
    return found


def config_variables() -> dict[str, dict[str, Any]]:
    inputs = client_inputs()
    found = {name: {**inputs[name], "description": f"Default for every OAuthClient that names no issuer or "
                    f"registrationEndpoint of its own: {inputs[name].get('description', name)}"}
             for name in CONFIG_ARGS}
    return {**found, **IMPORT_CONFIG}


def schema() -> dict[str, Any]:
    client_outputs = outputs()
    get_client_inputs: dict[str, dict[str, Any]] = {
        "registration_client_uri": {"type": "string", "description": "The client's registration_client_uri "
                                    "(RFC 7592)."},
        "registration_access_token": {"type": "string", "secret": True, "description": "The client's "
                                      "registration access token (RFC 7592)."},
        "ca_bundle": client_outputs["ca_bundle"]}
    get_client_outputs: dict[str, dict[str, Any]] = {"client_id": {"type": "string"},
                          "client_secret": {"type": "string", "secret": True},
                          "client_secret_expires_at": {"type": "integer"},
                          "registration_client_uri": {"type": "string"},
                          "metadata": {"type": "object", "additionalProperties": {"$ref": "pulumi.json#/Any"},
                                       "description": "The client metadata the AS holds (wire names)."}}
    return {
        "name": PACKAGE,
        "displayName": "clientreg",
        "version": VERSION,
        "description": "OAuth clients registered and kept in shape through Dynamic Client Registration "
                       "(RFC 7591/7592).",
        "keywords": ["oauth", "openid-connect", "dynamic-client-registration", "category/security"],
        "license": "Apache-2.0",
        "meta": {"moduleFormat": "(.*)"},
        "language": {
            "nodejs": {"packageName": "@clientreg/pulumi", "respectSchemaVersion": True},
            "python": {"packageName": "pulumi_clientreg", "respectSchemaVersion": True},
            "go": {"importBasePath": "example.com/clientreg/sdk/go/clientreg", "respectSchemaVersion": True},
        },
        "config": {"variables": _camel_props(config_variables())},
        "provider": {"description": "The clientreg provider: the default authorization server of its clients.",
                     "inputProperties": _camel_props(config_variables())},
        "types": types_(),
        "resources": {RESOURCE: {
            "description": "An OAuth client registered at an authorization server by Dynamic Client Registration "
                           "(RFC 7591), kept in shape (RFC 7592), rotated and deleted by the clientreg core.",
            "inputProperties": _camel_props(client_inputs()),
            "properties": _camel_props(client_outputs),
            "required": sorted(camel(n) for n in ("client_id", "status", "status_message")),
        }},
        "functions": {GET_CLIENT: {
            "description": "Read a client's registered metadata through RFC 7592 (its registration access token "
                           "is the only key: Dynamic Client Registration has no lookup by client ID alone).",
            "inputs": {"properties": _camel_props(get_client_inputs),
                       "required": ["registrationAccessToken", "registrationClientUri"]},
            "outputs": {"properties": _camel_props(get_client_outputs),
                        "required": ["clientId", "metadata"]},
        }},
    }


def render() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
