"""Comparing what the user declared with what the AS holds.

Only declared fields count; lists that are sets on the wire compare as sets and ``scope`` as a set
of words, so a server that reorders or adds defaults is in sync. Values the AS rewrote right after we
sent them are refusals (recorded once), not drift.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .spec import SET_VALUED

#: How a refusal records a field the AS dropped altogether.
ABSENT: dict[str, Any] = {}


def normalize(field: str, value: Any) -> Any:
    if field == "scope" and isinstance(value, str):
        return frozenset(value.split())
    if field in SET_VALUED and isinstance(value, list):
        return frozenset(json.dumps(v, sort_keys=True) for v in value)
    # A JWK Set is a set of keys (RFC 7517 §5: order carries no meaning); "keys" is that member of a
    # JWKS document served at a jwks_uri.
    if field == "jwks" and isinstance(value, dict) and isinstance(value.get("keys"), list) and len(value) == 1:
        return frozenset(json.dumps(k, sort_keys=True) for k in value["keys"])
    if field == "keys" and isinstance(value, list):
        return frozenset(json.dumps(k, sort_keys=True) for k in value)
    return json.dumps(value, sort_keys=True)


def same(field: str, declared: Any, observed: Any) -> bool:
    return bool(normalize(field, declared) == normalize(field, observed))


def differences(declared: Mapping[str, Any], observed: Mapping[str, Any]) -> dict[str, Any]:
    """Declared fields whose observed value differs, mapped to the refusal form of what was observed."""
    out: dict[str, Any] = {}
    for field, want in declared.items():
        if field not in observed:
            out[field] = ABSENT
        elif not same(field, want, observed[field]):
            out[field] = {"value": observed[field]}
    return out


def drifted(declared: Mapping[str, Any], observed: Mapping[str, Any],
            refused: Mapping[str, Any]) -> dict[str, Any]:
    """Differences that are not the AS's known refusals: these call for an update."""
    out = {}
    for field, seen in differences(declared, observed).items():
        known = refused.get(field)
        if known is None:
            out[field] = seen
            continue
        if known == ABSENT and seen == ABSENT:
            continue
        if known != ABSENT and seen != ABSENT and same(field, known["value"], seen["value"]):
            continue
        out[field] = seen
    return out


def describe_refusals(declared: Mapping[str, Any], refused: Mapping[str, Any]) -> str:
    parts = []
    for field, seen in sorted(refused.items()):
        kept = "dropped it" if seen == ABSENT else f"kept {seen['value']!r}"
        parts.append(f"{field}: asked for {declared.get(field)!r}, the AS {kept}")
    return "; ".join(parts)
