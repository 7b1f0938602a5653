"""Equality- and set-based label selectors, evaluated locally.

The API server filters the OAuthClient watch by the shard's selector; Secret events carry no labels
of their owner, so the owner is checked here with the same selector.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_SET = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


@dataclass(frozen=True)
class _Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        return not present or value not in self.values  # "!=" and "notin"


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[_Requirement, ...] = ()

    @property
    def everything(self) -> bool:
        return not self.requirements

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        requirements = []
        for part in _split(text or ""):
            if m := _SET.match(part):
                values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
                requirements.append(_Requirement(m.group(1), m.group(2), values))
            elif "!=" in part:
                key, value = part.split("!=", 1)
                requirements.append(_Requirement(key.strip(), "!=", frozenset({value.strip()})))
            elif "=" in part:
                key, value = part.split("==", 1) if "==" in part else part.split("=", 1)
                requirements.append(_Requirement(key.strip(), "=", frozenset({value.strip()})))
            elif part.startswith("!"):
                requirements.append(_Requirement(part[1:].strip(), "!exists"))
            else:
                requirements.append(_Requirement(part, "exists"))
        return cls(tuple(requirements))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)
