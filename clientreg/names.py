"""Names of Kubernetes objects, Secret keys and the free text of a spec, checked before anything uses them.

Every string in a spec is hostile until checked. A name that reaches an API path unchecked
(``../../kube-system/secrets/x``) reads another tenant's objects; a bidi override in a client name
shows a consent screen one thing and the logs another. So each name is validated as what it is
(Kubernetes' own rules, ``k8s.io/apimachinery/pkg/util/validation``) and quoted when it becomes a
path segment, and display text refuses control and bidirectional formatting characters.

The same rules serve every front end: the models in :mod:`clientreg.spec` (and so the CLI and the
Pulumi provider) use the ``Annotated`` types below, the CRDs carry their ``pattern`` and
``maxLength`` (so the API server refuses a bad document at admission), and the operator's API client
builds every path through :func:`path_segment`.

Patterns are written for three regex dialects at once (Go's RE2 in the API server, ECMA-262 as the
CRD documentation says, Python's ``re`` here): anchors, classes and ``\\xNN`` escapes only. Python's
``$`` also matches before a final newline, so the checks here use ``fullmatch``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import AfterValidator, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from .errors import ConfigurationError

DNS1123_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
# Label and annotation keys: [prefix/]name, the prefix a DNS-1123 subdomain (validation.IsQualifiedName).
_QUALIFIED_NAME_PART = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QUALIFIED_NAME_PATTERN = (r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                          + _QUALIFIED_NAME_PART + "$")
LABEL_VALUE_PATTERN = r"^(" + _QUALIFIED_NAME_PART + ")?$"

#: Unicode bidirectional formatting characters (UAX #9): LRE, RLE, PDF, LRO, RLO (U+202A to U+202E),
#: LRI, RLI, FSI, PDI (U+2066 to U+2069), LRM, RLM (U+200E, U+200F), ALM (U+061C). They make text
#: display in another order than it is stored ("Trojan Source", CVE-2021-42574).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
#: Line and paragraph separators: they split a log line as a newline would.
LINE_SEPARATORS = frozenset("\u2028\u2029")
# C0 (with DEL) and C1 controls as regex escapes; the other characters literally (see crds.py for the YAML).
DISPLAY_TEXT_PATTERN = ("^[^\\x00-\\x1f\\x7f-\\x9f"
                        + "".join(sorted(BIDI_CONTROLS | LINE_SEPARATORS)) + "]*$")


@dataclass(frozen=True)
class NameRule:
    """One of Kubernetes' naming rules: what it is called, its regex and its length limit."""

    text: str
    pattern: str
    max_length: int
    allow_empty: bool = False

    def problem(self, value: object) -> str | None:
        """Why ``value`` breaks this rule, or None."""
        if not isinstance(value, str):
            return f"expected a string, got a {type(value).__name__}; must be {self.text}"
        if not value and self.allow_empty:
            return None
        if len(value) > self.max_length:
            return f"{_shown(value)} is {len(value)} characters long; must be {self.text}"
        if not _compiled(self.pattern).fullmatch(value):
            return f"{_shown(value)} must be {self.text}"
        return None


SUBDOMAIN = NameRule("a lowercase RFC 1123 subdomain: a-z, 0-9, '-', '.', at most 253 characters",
                     DNS1123_SUBDOMAIN_PATTERN, 253)
LABEL = NameRule("a lowercase RFC 1123 label: a-z, 0-9, '-', at most 63 characters", DNS1123_LABEL_PATTERN, 63)
SECRET_KEY = NameRule("a Secret key: letters, digits, '-', '_', '.', at most 253 characters",
                      SECRET_KEY_PATTERN, 253)
QUALIFIED_NAME = NameRule(
    "a Kubernetes label or annotation key: an optional lowercase DNS subdomain prefix and '/', then a name of "
    "letters, digits, '-', '_', '.' that starts and ends with a letter or digit (at most 63 characters)",
    QUALIFIED_NAME_PATTERN, 253 + 1 + 63)
LABEL_VALUE = NameRule("a Kubernetes label value: empty, or letters, digits, '-', '_', '.' starting and ending "
                       "with a letter or digit, at most 63 characters", LABEL_VALUE_PATTERN, 63, allow_empty=True)

_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    if pattern not in _PATTERNS:
        _PATTERNS[pattern] = re.compile(pattern)
    return _PATTERNS[pattern]


def _shown(value: str) -> str:
    """A hostile value fit for a message: repr escapes control and bidi characters; long ones are cut."""
    return repr(value) if len(value) <= 80 else repr(value[:60]) + f"… ({len(value)} characters)"


def _check(rule: NameRule, value: object, field: str) -> str:
    problem = rule.problem(value)
    if problem is not None:
        raise ConfigurationError(problem, field=field, rule=rule.text)
    assert isinstance(value, str)
    return value


def check_dns1123_subdomain(value: object, *, field: str) -> str:
    """``value`` when it is a valid object name (Secrets, ConfigMaps, custom resources…)."""
    return _check(SUBDOMAIN, value, field)


def check_dns1123_label(value: object, *, field: str) -> str:
    """``value`` when it is a valid DNS-1123 label (namespaces)."""
    return _check(LABEL, value, field)


def check_secret_key(value: object, *, field: str) -> str:
    """``value`` when it is a valid key of a Secret's data."""
    return _check(SECRET_KEY, value, field)


def check_qualified_name(value: object, *, field: str) -> str:
    """``value`` when it is a valid label or annotation key."""
    return _check(QUALIFIED_NAME, value, field)


def check_label_value(value: object, *, field: str) -> str:
    """``value`` when it is a valid label value."""
    return _check(LABEL_VALUE, value, field)


def path_segment(value: object, *, kind: Literal["name", "namespace"] = "name") -> str:
    """``value`` as one segment of a Kubernetes API path: validated as an object name (``kind="name"``,
    a DNS-1123 subdomain) or a namespace (a DNS-1123 label), then percent-quoted all the same.

    The check is what keeps ``../`` out of a path; the quoting makes sure that no later change to the
    rules can let a ``/``, ``?`` or ``%`` through. Raises ConfigurationError before any request exists.
    """
    rule = LABEL if kind == "namespace" else SUBDOMAIN
    return quote(_check(rule, value, f"{kind} in a Kubernetes API path"), safe="")


# --- display text ------------------------------------------------------------------------------------

def display_text_problem(value: str, *, max_length: int | None = None) -> str | None:
    """Why ``value`` is not fit to be shown to people and written to logs, or None."""
    for position, char in enumerate(value):
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            return (f"must not contain control characters (U+{code:04X} at position {position}): "
                    "they rewrite terminals and split log lines")
        if char in BIDI_CONTROLS or char in LINE_SEPARATORS:
            return (f"must not contain Unicode bidirectional or line-separator formatting characters (U+{code:04X} "
                    f"at position {position}): they make text display other than it reads")
    if max_length is not None and len(value) > max_length:
        return f"is {len(value)} characters long; at most {max_length} are allowed"
    return None


def check_display_text(value: object, *, field: str, max_length: int | None = None) -> str:
    """``value`` when it is a string free of control and bidi formatting characters (and not too long).

    For names, descriptions, contacts… anything a person reads; URIs add their own rules on top.
    """
    if not isinstance(value, str):
        raise ConfigurationError(f"expected a string, got a {type(value).__name__}", field=field, rule="a string")
    problem = display_text_problem(value, max_length=max_length)
    if problem is not None:
        raise ConfigurationError(f"{_shown(value)} {problem}", field=field, rule=problem)
    return value


def check_display_values(value: Any, *, field: str, max_length: int | None = None) -> Any:
    """Every string (and mapping key) inside a JSON value passes :func:`check_display_text`."""
    if isinstance(value, str):
        check_display_text(value, field=field, max_length=max_length)
    elif isinstance(value, dict):
        for key, item in value.items():
            # The key is checked before it becomes part of a field path in a message.
            check_display_text(key, field=field or "(key)", max_length=max_length)
            check_display_values(item, field=f"{field}.{key}" if field else key, max_length=max_length)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_display_values(item, field=f"{field}[{index}]", max_length=max_length)
    return value


# --- pydantic types --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JsonSchemaExtra:
    """Adds ``pattern``/``maxLength`` to the JSON schema of a string (and so to the CRDs) without making
    pydantic check them itself: the validators below give the clearer message."""

    values: tuple[tuple[str, Any], ...]

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
                                     ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema.update(dict(self.values))
        return schema


def _rule_validator(rule: NameRule) -> Callable[[str], str]:
    def check(value: str) -> str:
        problem = rule.problem(value)
        if problem is not None:
            raise ValueError(problem)  # pydantic adds the field's location; parse_document names it
        return value
    return check


def _display_validator(max_length: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        problem = display_text_problem(value, max_length=max_length)
        if problem is not None:
            raise ValueError(f"{_shown(value)} {problem}")
        return value
    return check


def _display_values_validator(value: dict[str, Any]) -> dict[str, Any]:
    try:
        check_display_values(value, field="", max_length=TEXT_MAX)
    except ConfigurationError as exc:
        raise ValueError(str(exc)) from None  # "key.sub[0]: …": pydantic prefixes the mapping's own location
    return value


def _name_schema(rule: NameRule) -> JsonSchemaExtra:
    return JsonSchemaExtra((("pattern", rule.pattern), ("maxLength", rule.max_length)))


def _display_schema(max_length: int) -> JsonSchemaExtra:
    return JsonSchemaExtra((("pattern", DISPLAY_TEXT_PATTERN), ("maxLength", max_length)))


def key_validator(rule: NameRule) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An after-validator for a mapping whose keys follow ``rule`` (the key named in the message)."""
    def check(value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            problem = rule.problem(key)
            if problem is not None:
                raise ValueError(f"key {problem}")
        return value
    return check


# Spelled out (not built by a function) so that type checkers see them as ``str``.
#: The name of a Kubernetes object (Secret, custom resource): a DNS-1123 subdomain.
KubeName = Annotated[str, AfterValidator(_rule_validator(SUBDOMAIN)), _name_schema(SUBDOMAIN)]
#: A namespace: a DNS-1123 label.
KubeLabel = Annotated[str, AfterValidator(_rule_validator(LABEL)), _name_schema(LABEL)]
#: A key of a Secret's data.
SecretKey = Annotated[str, AfterValidator(_rule_validator(SECRET_KEY)), _name_schema(SECRET_KEY)]
#: A label value.
LabelValue = Annotated[str, AfterValidator(_rule_validator(LABEL_VALUE)), _name_schema(LABEL_VALUE)]

#: Lengths of free text: generous for what people write, far below what would hurt a log line or a screen.
NAME_TEXT_MAX, SHORT_TEXT_MAX, TEXT_MAX = 200, 256, 4096
#: A name people read (client_name).
DisplayName = Annotated[str, AfterValidator(_display_validator(NAME_TEXT_MAX)), _display_schema(NAME_TEXT_MAX)]
#: A short identifier or word (software_id, a contact, a response type, an algorithm).
ShortText = Annotated[str, AfterValidator(_display_validator(SHORT_TEXT_MAX)), _display_schema(SHORT_TEXT_MAX)]
#: Longer free text (scope, annotation values).
Text = Annotated[str, AfterValidator(_display_validator(TEXT_MAX)), _display_schema(TEXT_MAX)]

#: Labels of an object: qualified-name keys, label values.
Labels = Annotated[dict[str, LabelValue], AfterValidator(key_validator(QUALIFIED_NAME))]
#: Annotations of an object: qualified-name keys, display-text values.
Annotations = Annotated[dict[str, Text], AfterValidator(key_validator(QUALIFIED_NAME))]
#: More keys of a Secret's data: Secret-key names, any text (a value may hold a whole config file).
SecretData = Annotated[dict[str, str], AfterValidator(key_validator(SECRET_KEY))]
#: Free-form JSON (registration metadata by wire name): every string in it, keys included, is display text.
DisplayValues = Annotated[dict[str, Any], AfterValidator(_display_values_validator)]
