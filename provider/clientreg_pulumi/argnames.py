"""The names a Pulumi user writes, for both front ends: the dynamic provider's snake_case arguments
(``redirect_uris``) and the plugin's schema names, camelCase as every Pulumi package spells them
(``redirectUris``), and how the core's messages are rewritten into them.

The core names fields the way a clientreg YAML file or a Kubernetes resource does (``redirectUris``,
``spec.issuer``, ``spec.initialAccessToken``, ``rotation.period``); a Pulumi user never wrote those, so
every message that reaches Pulumi names the argument instead. One table, so that the two front ends
cannot name one argument two ways. Pure: no Pulumi SDK, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from clientreg.spec import AuthorizationServerSpec, KeyPair, OAuthClientSpec, Rotation, SecretTemplate

Style = Literal["snake", "camel"]

#: Arguments whose value is a map of more arguments (converted one level down too).
NESTED_ARGS: frozenset[str] = frozenset({"kubernetes_secret", "key_pair"})
#: Values that are maps keyed by the user's or the AS's own names: never renamed.
OPAQUE_ARGS: frozenset[str] = frozenset({
    "additional_metadata", "jwks", "registered_metadata", "published_documents", "record", "rotation_trigger",
    "labels", "annotations", "extra_data"})

#: The core's field paths that are not spelled like the argument (the rotation block is flat in Pulumi).
_RENAMED: dict[str, str] = {"period": "rotation_period", "rotation.period": "rotation_period",
                            "rotation.rotateBefore": "rotate_before", "rotation.gracePeriod": "grace_period"}


def camel(name: str) -> str:
    """``redirect_uris`` → ``redirectUris``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def snake(name: str) -> str:
    """``redirectUris`` → ``redirect_uris`` (the inverse of :func:`camel` for argument names)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _core_names() -> dict[str, str]:
    """Core field path (as its messages spell it) → snake_case argument."""
    names: dict[str, str] = {}
    for model in (OAuthClientSpec, AuthorizationServerSpec, Rotation, KeyPair, SecretTemplate):
        for name, field in model.model_fields.items():
            if field.alias and field.alias != name:
                names[field.alias] = name
    for name, field in (*OAuthClientSpec.model_fields.items(), *AuthorizationServerSpec.model_fields.items()):
        names[f"spec.{field.alias or name}"] = name
    names.update(_RENAMED)
    return names


#: Core field path → snake_case argument name.
CORE_NAMES: dict[str, str] = _core_names()
# Whole words outside URLs and paths: a field name inside a redirect URI must stay as the user wrote it.
CORE_NAME_RE = re.compile(r"(?<![\w/.])(" + "|".join(sorted(map(re.escape, CORE_NAMES), key=len, reverse=True))
                          + r")(?![\w/])")
# snake_case arguments in the dynamic provider's messages (only names with an underscore change).
_SNAKE_RE = re.compile(r"(?<![\w/.#])([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?![\w/#])")


def argument(core_name: str, style: Style = "snake") -> str:
    """The argument a core field path stands for (``spec.caBundle`` → ``ca_bundle`` / ``caBundle``)."""
    name = CORE_NAMES.get(core_name, snake(core_name))
    return camel(name) if style == "camel" else name


def in_words(message: str, style: Style = "snake") -> str:
    """Rewrite the core's field names in ``message`` into the resource's argument names."""
    return CORE_NAME_RE.sub(lambda m: argument(m.group(1), style), message)


def snake_to_camel_words(message: str) -> str:
    """The dynamic provider's messages (snake_case arguments) as the plugin's users name them."""
    return _SNAKE_RE.sub(lambda m: camel(m.group(1)), message)


def props_in(style: Style, props: Mapping[str, Any]) -> dict[str, Any]:
    """A property map with its argument names in ``style`` (one level into :data:`NESTED_ARGS`)."""
    rename = camel if style == "camel" else snake
    out: dict[str, Any] = {}
    for key, value in props.items():
        plain = snake(key)
        if plain in NESTED_ARGS and isinstance(value, Mapping):
            # Their members' values (labels, extraData, …) are the user's own maps: untouched.
            value = {rename(k): v for k, v in value.items()}
        out[rename(key)] = value
    return out


__all__ = ["CORE_NAMES", "CORE_NAME_RE", "NESTED_ARGS", "OPAQUE_ARGS", "Style", "argument", "camel", "in_words",
           "props_in", "snake", "snake_to_camel_words"]
