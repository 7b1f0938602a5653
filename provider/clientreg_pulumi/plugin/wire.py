"""Property values on the wire of Pulumi's provider protocol: ``google.protobuf.Struct`` ↔ Python values.

The engine sends secrets (once the provider said it accepts them) and values not known yet (preview) as
special objects inside the Struct; the provider's logic works on plain values. :func:`unwrap` returns the
plain values and the names of the top-level properties that arrived secret, so that :func:`wrap` can send
them back secret: a secret input stays a secret output, and the schema's secret outputs are always wrapped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import json_format, struct_pb2

from ..args import UNKNOWN

#: Pulumi's signature key and the signature of a secret value (sdk/go/common/resource/sig).
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def to_python(struct: struct_pb2.Struct | None) -> dict[str, Any]:
    if struct is None:
        return {}
    value = _integral(json_format.MessageToDict(struct))
    return value if isinstance(value, dict) else {}


def _integral(value: Any) -> Any:
    """A Struct holds every number as a double: 3600.0 back to 3600, so that the core's models (Literal
    key sizes, whole seconds) see what the program wrote."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def to_struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(_jsonable(value))
    return struct


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def is_secret(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get(SIG_KEY) == SECRET_SIG


def reveal(value: Any) -> Any:
    """The plain value, secrets unwrapped at any depth."""
    if is_secret(value):
        return reveal(value.get("value"))
    if isinstance(value, Mapping):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def unwrap(struct: struct_pb2.Struct | None) -> tuple[dict[str, Any], set[str]]:
    """Plain properties, and the top-level names that held a secret (anywhere inside them)."""
    props = to_python(struct)
    secret = {name for name, value in props.items() if _holds_secret(value)}
    return {name: reveal(value) for name, value in props.items()}, secret


def _holds_secret(value: Any) -> bool:
    if is_secret(value):
        return True
    if isinstance(value, Mapping):
        return any(_holds_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_secret(v) for v in value)
    return False


def secret(value: Any) -> dict[str, Any]:
    return {SIG_KEY: SECRET_SIG, "value": value}


def wrap(props: Mapping[str, Any], secret_names: Iterable[str]) -> struct_pb2.Struct:
    """A Struct of ``props`` with the named top-level properties sent as secrets (None values left out)."""
    names = set(secret_names)
    return to_struct({k: (secret(v) if k in names and v is not None and v != UNKNOWN else v)
                      for k, v in props.items()})
