"""Which namespaces may use a ClusterAuthorizationServer: ``spec.allowedNamespaces``.

A ClusterAuthorizationServer carries the platform's initial access token and its allow-lists. Without a
restriction every namespace may spend that token; with ``allowedNamespaces`` set, a namespace is admitted
when its name is listed OR its labels match the selector (External Secrets' ClusterSecretStore
``conditions``, Kubernetes' own ``namespaceSelector``). Unset: every namespace, as before.

The selector is a Kubernetes LabelSelector (``matchLabels`` and ``matchExpressions`` with In, NotIn,
Exists, DoesNotExist), evaluated here for every front end. Only the operator knows a namespace's labels;
the CLI's documents carry namespace names alone, so there only ``names`` can admit one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

__all__ = ["AllowedNamespaces", "NamespaceLabels", "NamespaceSelector", "SelectorRequirement",
           "namespace_refusal"]

# Kubernetes validation (apimachinery validation.IsQualifiedName / IsValidLabelValue), as CRD patterns.
_DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_LABEL_KEY = (r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
              r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"

NamespaceName = Annotated[str, Field(pattern=_DNS1123_LABEL, max_length=63)]
LabelKey = Annotated[str, Field(pattern=_LABEL_KEY, max_length=317)]  # prefix (253) + "/" + name (63)
LabelValue = Annotated[str, Field(pattern=_LABEL_VALUE, max_length=63)]

#: namespace name → its labels, or None when the namespace does not exist.
NamespaceLabels = Callable[[str], Mapping[str, str] | None]


def _check_label_key(key: str) -> str:
    prefix, _, name = key.rpartition("/")
    # Lengths first, the cheap check: map keys reach here unbounded (a CRD cannot constrain them).
    if len(prefix) > 253 or len(name) > 63 or not re.fullmatch(_LABEL_KEY, key):
        raise ValueError(f"{key[:80]!r} is not a label key: [prefix/]name, the prefix a DNS subdomain of at most "
                         "253 characters, the name at most 63 of [A-Za-z0-9-_.] starting and ending alphanumeric")
    return key


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class SelectorRequirement(_Model):
    """One ``matchExpressions`` entry (metav1.LabelSelectorRequirement)."""

    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[LabelValue] = Field(default_factory=list, max_length=256)

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        return _check_label_key(v)

    @model_validator(mode="after")
    def _values_fit_the_operator(self) -> SelectorRequirement:
        # The same rule as the API server's: In/NotIn need values, Exists/DoesNotExist take none.
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        if self.operator == "In":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values  # NotIn, as Kubernetes reads it


class NamespaceSelector(_Model):
    """A Kubernetes LabelSelector over namespace labels: every requirement must hold."""

    match_labels: dict[str, LabelValue] = Field(default_factory=dict, max_length=64)
    match_expressions: list[SelectorRequirement] = Field(default_factory=list, max_length=64)

    @field_validator("match_labels")
    @classmethod
    def _keys(cls, v: dict[str, str]) -> dict[str, str]:
        # CRDs cannot constrain map keys (no patternProperties): the operator checks them here.
        for key in v:
            _check_label_key(key)
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> NamespaceSelector:
        # Kubernetes reads an empty selector as "everything": here that would silently admit every namespace.
        if not self.match_labels and not self.match_expressions:
            raise ValueError("an empty selector would match every namespace: give matchLabels or "
                             "matchExpressions, or leave allowedNamespaces unset to allow every namespace")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and \
            all(r.matches(labels) for r in self.match_expressions)


class AllowedNamespaces(_Model):
    """Namespaces whose OAuthClients may register at this ClusterAuthorizationServer."""

    names: list[NamespaceName] = Field(default_factory=list, max_length=1024,
                                       description="Namespaces allowed by name.")
    selector: NamespaceSelector | None = Field(
        None, description="Namespaces allowed by their labels (a Kubernetes label selector; matchLabels and "
        "matchExpressions with In, NotIn, Exists, DoesNotExist). Operator only: the CLI knows no labels.")


def namespace_refusal(allowed: AllowedNamespaces | None, namespace: str,
                      labels: NamespaceLabels | None) -> str | None:
    """Why ``namespace`` may not use a server with ``allowed``, or None when it may.

    ``labels`` is called only when a selector could still admit the namespace (never for a listed name);
    None means the front end knows no labels, and then only ``names`` admits. The reason names the rule,
    never the list: another tenant's namespace names are none of this one's business.
    """
    if allowed is None or namespace in allowed.names:
        return None
    if allowed.selector is None:
        return "the namespace is not in spec.allowedNamespaces.names"
    if labels is None:
        return ("the namespace is not in spec.allowedNamespaces.names, and namespace labels are not known here "
                "(spec.allowedNamespaces.selector applies in Kubernetes only)")
    found = labels(namespace)
    if found is None:
        return "the namespace does not exist"
    if allowed.selector.matches(found):
        return None
    return ("the namespace is not in spec.allowedNamespaces.names and its labels do not match "
            "spec.allowedNamespaces.selector")

