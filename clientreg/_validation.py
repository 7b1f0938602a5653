"""Turning a decoded document into a model, or into an error that names the field and the rule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import ConfigurationError, redact
from .names import SUBDOMAIN

__all__ = ["parse_kind", "shown", "validation_message"]


def validation_message(exc: ValidationError) -> tuple[str, str]:
    """(field path, rule) of the first error, with camelCase field names as the user wrote them."""
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown field (check the spelling; registration metadata without a typed field goes in " \
              "spec.additionalMetadata by wire name)"
    elif first["type"] == "missing":
        msg = "required field is missing"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if msg.startswith((".", "[")) and ": " in msg:  # a validator naming a member below the field (jwks.py)
        loc, msg = loc + msg.split(": ", 1)[0], msg.split(": ", 1)[1]
    more = len(exc.errors()) - 1
    if more:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    return loc or "(document)", msg


def shown(value: Any) -> str:
    """A value the user wrote where a string belongs, fit for a message (a container only by its type)."""
    if isinstance(value, str | float | bool) or value is None or (isinstance(value, int) and value.bit_length() < 64):
        return redact(repr(value), 80)
    return f"a {type(value).__name__}"

def parse_kind(data: Any, kinds: Mapping[str, type[BaseModel]], *, api_version: str,
               source: str | None = None) -> BaseModel:
    """Validate one decoded document as the model its ``kind`` names, raising ConfigurationError that names
    the field and the rule."""
    if not isinstance(data, dict):
        raise ConfigurationError("a document must be a mapping with apiVersion, kind, metadata and spec", source=source)
    kind = data.get("kind")
    name = (data.get("metadata") or {}).get("name") if isinstance(data.get("metadata"), dict) else None
    # Only a known kind and a valid name make a label: anything else could hold anything (a YAML alias bomb,
    # control characters for the terminal); the error about it escapes it.
    label_kind = kind if isinstance(kind, str) and kind in kinds else None
    label = f"{label_kind}/{name}" if label_kind and SUBDOMAIN.problem(name) is None else label_kind
    if not isinstance(kind, str) or kind not in kinds:
        raise ConfigurationError(f"unknown kind {shown(kind)}; expected one of {', '.join(kinds)} (or v1 Secret)",
                                 source=source, document=label, field="kind")
    if data.get("apiVersion") != api_version:
        raise ConfigurationError(f"apiVersion must be {api_version}, got {shown(data.get('apiVersion'))}",
                                 source=source, document=label, field="apiVersion")
    try:
        return kinds[kind].model_validate(data)
    except ValidationError as exc:
        field, rule = validation_message(exc)
        raise ConfigurationError(rule, source=source, document=label, field=field, rule=rule) from None
