"""The OAuthClient resource's arguments and how they become the core's models.

Arguments are the core spec's fields in snake_case, flattened: the registration metadata of
:class:`clientreg.spec.OAuthClientSpec`, the :class:`clientreg.spec.AuthorizationServerSpec` to
register at, the rotation settings, and the few values only Pulumi needs (a rotation trigger, the
credentials of a client to adopt). Everything here is pure: no I/O, no Pulumi engine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr, ValidationError

from clientreg.drift import same
from clientreg.engine import Desired
from clientreg.errors import ConfigurationError, PolicyViolation
from clientreg.names import check_dns1123_label, check_dns1123_subdomain
from clientreg.redirects import POLICY_FIELDS, check_redirects
from clientreg.spec import (
    WIRE_NAMES,
    AuthorizationServerSpec,
    OAuthClientSpec,
    SecretTemplate,
    ServerRef,
)

from . import argnames

# The engine's marker for a value not known before `up` (pulumi.runtime.rpc.UNKNOWN). Spelled out so
# that this module imports without the Pulumi SDK (the unit tests and the core do not need it).
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

#: Registration metadata with a typed field in the core spec, by Python name (client_name, …).
METADATA_ARGS: tuple[str, ...] = tuple(
    name for name, field in OAuthClientSpec.model_fields.items() if field.alias in WIRE_NAMES)
#: Arguments handed to OAuthClientSpec as they are.
SPEC_ARGS: tuple[str, ...] = (*METADATA_ARGS, "additional_metadata", "registration", "client_id_url",
                              "deletion_policy", "key_pair")
#: Flat rotation arguments → fields of the core's Rotation.
ROTATION_ARGS: dict[str, str] = {"rotate_before": "rotate_before", "rotation_period": "period",
                                 "grace_period": "grace_period"}
#: Arguments handed to AuthorizationServerSpec as they are.
SERVER_ARGS: tuple[str, ...] = ("issuer", "registration_endpoint", "token_endpoint", "ca_bundle",
                                "timeout_seconds", "allowed_redirect_hosts", "allowed_redirect_schemes")
ROTATION_TRIGGER = "rotation_trigger"
#: A client registered elsewhere, taken over on create (Pulumi cannot import dynamic resources).
ADOPT_ARGS: tuple[str, ...] = ("adopt_client_id", "adopt_registration_client_uri",
                               "adopt_registration_access_token")
#: Credentials given as inputs: always stored as Pulumi secrets, never echoed into outputs.
SECRET_ARGS: tuple[str, ...] = ("initial_access_token", "software_statement", "adopt_registration_access_token")

#: The Kubernetes Secret to publish the credentials in, and the stable name of its owner (set by OAuthClient).
KUBERNETES_SECRET = "kubernetes_secret"
KUBERNETES_SECRET_OWNER = "kubernetes_secret_owner"

#: Kept in the outputs as declared, so that `diff` (which only sees old outputs) can compare them.
ECHOED_ARGS: tuple[str, ...] = (*SPEC_ARGS, *ROTATION_ARGS, *SERVER_ARGS, ROTATION_TRIGGER, KUBERNETES_SECRET)
#: Inputs the resource class sets itself (no argument of its own), echoed and compared like the others.
INTERNAL_ARGS: tuple[str, ...] = (KUBERNETES_SECRET_OWNER,)
#: Changing these means another client at another place: a new registration, then the old one's deletion.
REPLACE_ARGS: tuple[str, ...] = ("issuer", "registration_endpoint", "registration", "client_id_url")
#: Outputs that hold the discovered value when the argument is not set; compared only when declared.
DEFAULTED_ARGS: frozenset[str] = frozenset({"token_endpoint"})

_WIRE_OF_ARG: dict[str, str] = {
    name: WIRE_NAMES[field.alias] for name, field in OAuthClientSpec.model_fields.items()
    if field.alias in WIRE_NAMES}
_ARG_OF_WIRE: dict[str, str] = {wire: name for name, wire in _WIRE_OF_ARG.items()}

# The core's messages name fields as YAML writes them (redirectUris); Pulumi users write redirect_uris.
_CAMEL_NAMES: dict[str, str] = argnames.CORE_NAMES
_CAMEL_RE = argnames.CORE_NAME_RE


def in_pulumi_words(message: str) -> str:
    """Rewrite the core's field names (``redirectUris``, ``spec.caBundle``) into the resource's argument names."""
    return argnames.in_words(message)


def wire_name(arg: str) -> str | None:
    return _WIRE_OF_ARG.get(arg)


def arg_name(wire: str) -> str | None:
    return _ARG_OF_WIRE.get(wire)


def has_unknowns(value: Any) -> bool:
    if isinstance(value, str):
        return value == UNKNOWN
    if isinstance(value, Mapping):
        return any(has_unknowns(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_unknowns(v) for v in value)
    return False


def _given(props: Mapping[str, Any], names: tuple[str, ...] | dict[str, str]) -> dict[str, Any]:
    return {name: props[name] for name in names if props.get(name) is not None}


def client_spec(props: Mapping[str, Any]) -> OAuthClientSpec:
    """The core spec the arguments declare. Raises pydantic's ValidationError."""
    rotation = {field: props[arg] for arg, field in ROTATION_ARGS.items() if props.get(arg) is not None}
    # Passed as a mapping, not a Rotation, so that a bad value is reported at ("rotation", field).
    return OAuthClientSpec(server_ref=ServerRef(name="pulumi"), rotation=rotation or None,
                           **_given(props, SPEC_ARGS))


def server_spec(props: Mapping[str, Any]) -> AuthorizationServerSpec:
    return AuthorizationServerSpec(**_given(props, SERVER_ARGS))


def rotation_request(props: Mapping[str, Any]) -> str | None:
    """The rotation trigger as the text the record remembers; any JSON value is accepted."""
    trigger = props.get(ROTATION_TRIGGER)
    if trigger is None or trigger == "":
        return None
    return trigger if isinstance(trigger, str) else json.dumps(trigger, sort_keys=True, separators=(",", ":"))


def desired(props: Mapping[str, Any], *, deleting: bool = False) -> Desired:
    spec = client_spec(props)
    return Desired(key="pulumi", metadata=spec.wire_metadata(), spec_hash=spec.spec_hash(),
                   registration=spec.registration, client_id_url=spec.client_id_url, rotation=spec.rotation,
                   deletion_policy=spec.deletion_policy, deleting=deleting,
                   rotation_request=rotation_request(props), key_pair=spec.key_pair)


def secret(props: Mapping[str, Any], name: str) -> SecretStr | None:
    value = props.get(name)
    return SecretStr(str(value)) if value else None


# --- kubernetes_secret ----------------------------------------------------------------------------

#: Where the Secret goes: plain values only (a path and a context name, never a client).
SECRET_PLACE_FIELDS: tuple[str, ...] = ("name", "namespace", "kubeconfig", "context")
#: The operator's spec.secretTemplate, by its Python names.
SECRET_TEMPLATE_FIELDS: tuple[str, ...] = tuple(SecretTemplate.model_fields)


@dataclass(frozen=True)
class SecretPlace:
    """A credentials Secret: where it lives, how it is shaped, and whom to reach it through."""

    name: str
    namespace: str
    template: SecretTemplate
    kubeconfig: str | None = None
    context: str | None = None

    def same_place(self, other: SecretPlace) -> bool:
        return (self.name, self.namespace, self.kubeconfig, self.context) == (
            other.name, other.namespace, other.kubeconfig, other.context)


def secret_place(props: Mapping[str, Any]) -> SecretPlace | None:
    """The Secret ``kubernetes_secret`` declares, or None. Raises ValueError naming the field."""
    given = props.get(KUBERNETES_SECRET)
    if not given:
        return None
    if not isinstance(given, Mapping):
        raise ValueError("expected a KubernetesSecretArgs (or a dict of its fields)")
    unknown = sorted(set(given) - set(SECRET_PLACE_FIELDS) - set(SECRET_TEMPLATE_FIELDS))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field (expected {', '.join(SECRET_PLACE_FIELDS)} or "
                         f"{', '.join(SECRET_TEMPLATE_FIELDS)})")
    name, namespace = given.get("name"), given.get("namespace") or "default"
    if not isinstance(name, str) or not name:
        raise ValueError("name: the Secret's name is required")
    try:  # the same rules as the operator's models: these become segments of API paths
        check_dns1123_subdomain(name, field="name")
        check_dns1123_label(namespace, field="namespace")
    except ConfigurationError as exc:
        raise ValueError(str(exc)) from None
    # "" or None for issuer_key / token_endpoint_key: leave that key out of the Secret.
    shape = {k: (None if v == "" else v) for k, v in given.items() if k in SECRET_TEMPLATE_FIELDS}
    shape = {k: v for k, v in shape.items() if v is not None or k in ("issuer_key", "token_endpoint_key")}
    try:
        template = SecretTemplate(**shape)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ValueError(f"{where}: {_rule(error)}") from None
    # Each key is a valid Secret key already (SecretTemplate's types); together they must not collide.
    keys = [k for k in (template.client_id_key, template.client_secret_key, template.optional_key("issuer"),
                        template.optional_key("tokenEndpoint"), *template.extra_data) if k]
    if len(set(keys)) != len(keys):
        raise ValueError(f"the Secret's keys collide: {', '.join(sorted(k for k in set(keys) if keys.count(k) > 1))}")
    kubeconfig, context = given.get("kubeconfig"), given.get("context")
    return SecretPlace(name=name, namespace=namespace, template=template,
                       kubeconfig=str(kubeconfig) if kubeconfig else None, context=str(context) if context else None)


# --- check ------------------------------------------------------------------------------------------

def problems(props: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Field-level validation failures (argument name, rule) of a set of arguments.

    Values not known yet (preview, inputs from other resources) are left out; rules that span fields
    are then skipped too, as they would fail on a missing value: `up` checks again once all are known.
    """
    known = {k: v for k, v in props.items() if not has_unknowns(v)}
    partial = len(known) != len(props)
    found: list[tuple[str, str]] = []
    for build in (client_spec, server_spec):
        try:
            build(known)
        except ValidationError as exc:
            for error in exc.errors():
                where = _argument_of(error["loc"])
                if partial and where is None:
                    continue
                argument = re.split(r"[\[.]", where or _guess_argument(error["msg"]), maxsplit=1)[0]
                # The engine shows the argument's whole value; the rule says which item is wrong.
                rule = _rule(error) if where in (None, argument) else f"{where}: {_rule(error)}"
                rule = f"{where}{rule}" if rule.startswith((".", "[")) else rule  # a member below it (jwks)
                found.append((argument, rule))
    adopt = [name for name in ADOPT_ARGS if props.get(name)]
    if adopt and len(adopt) != len(ADOPT_ARGS):
        missing = sorted(set(ADOPT_ARGS) - set(adopt))
        found.append((missing[0], "adopting an existing client needs adopt_client_id, "
                      "adopt_registration_client_uri and adopt_registration_access_token together"))
    if not has_unknowns(props.get(KUBERNETES_SECRET)):
        try:
            secret_place(props)
        except ValueError as exc:
            found.append((KUBERNETES_SECRET, str(exc)))
    if props.get(KUBERNETES_SECRET) and not props.get(KUBERNETES_SECRET_OWNER):
        found.append((KUBERNETES_SECRET, "the owner of the Secret is unknown: declare the client with "
                      "clientreg_pulumi.OAuthClient, which sets kubernetes_secret_owner"))
    if adopt and known.get("registration") == "cimd":
        found.append(("adopt_client_id", "a Client ID Metadata Document client is not registered, so it "
                      "cannot be adopted: leave the adopt_* arguments out"))
    return found + _redirect_problems(known)


def _redirect_problems(known: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The server's redirect policy as `up` enforces it, shown at preview already (it needs no request).
    A value not known yet is left out, so only what is known can be refused; `up` checks everything."""
    try:
        client, server = client_spec(known), server_spec(known)
    except ValidationError:
        return []  # reported field by field above
    try:
        check_redirects(server, client.wire_metadata())
    except PolicyViolation as exc:
        field = exc.field or ""
        wire = next((w for w, f in POLICY_FIELDS.items() if field.startswith(f)), None)
        argument = (arg_name(wire) or "additional_metadata") if wire else "allowed_redirect_hosts"
        return [(argument, in_pulumi_words(exc.message))]
    return []


def _argument_of(loc: tuple[int | str, ...]) -> str | None:
    names = [p for p in loc if isinstance(p, str) and not p.startswith("function-")]
    if not names:
        return None
    if names[0] == "rotation" and len(names) > 1:
        return next((arg for arg, field in ROTATION_ARGS.items() if field == names[1]), names[1])
    if names[0] == "key_pair" and len(names) > 1:
        return f"key_pair.{names[1]}"  # the engine shows the whole key_pair: the rule names the field
    path = names[0] + "".join(f"[{p}]" for p in loc[1:] if isinstance(p, int))
    return path


def _guess_argument(message: str) -> str:
    # Rules that span fields name the one to change first ("redirectUris is required for …").
    match = _CAMEL_RE.search(message)
    return _CAMEL_NAMES[match.group(1)] if match else ""


def _rule(error: Any) -> str:
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        return "unknown argument"
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return in_pulumi_words(message)


# --- diff -------------------------------------------------------------------------------------------

def same_value(arg: str, old: Any, new: Any) -> bool:
    """Whether two values of one argument mean the same registration (sets as sets, scope as words)."""
    if old in (None, "", [], {}) and new in (None, "", [], {}):
        return True
    wire = wire_name(arg)
    if wire is not None and old is not None and new is not None:
        return same(wire, old, new)
    if arg == "additional_metadata" and isinstance(old, Mapping) and isinstance(new, Mapping):
        return old.keys() == new.keys() and all(same(k, old[k], new[k]) for k in old)
    return bool(json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True))


def changed_args(olds: Mapping[str, Any], news: Mapping[str, Any], names: tuple[str, ...]) -> list[str]:
    out = []
    for name in names:
        new = news.get(name)
        if has_unknowns(new):
            out.append(name)
        elif name in DEFAULTED_ARGS and new is None:
            continue
        elif not same_value(name, olds.get(name), new):
            out.append(name)
    return out
