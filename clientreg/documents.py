"""Loading a folder of YAML documents, the way ``kubectl apply -f`` reads it.

``v1/Secret`` documents stand in for Kubernetes Secrets (initial access tokens), so one folder works
with both ``kubectl apply`` and ``clientreg apply``. Every error names the file, the document and the
field.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigurationError, redact
from .names import LABEL, SECRET_KEY, SUBDOMAIN
from .spec import AuthorizationServer, ClusterAuthorizationServer, Document, OAuthClient, parse_document

DEFAULT_NAMESPACE = "default"
# libyaml's loader when PyYAML was built with it: the same safe semantics, several times faster.
_BASE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SUFFIXES = {".yaml", ".yml", ".json"}
#: Kubernetes stores no object larger than about 1.5 MiB (etcd's request limit): a document that could not be
#: applied with kubectl is refused here too, measured with YAML aliases expanded (a "billion laughs" is tiny
#: as text and enormous once its aliases are followed).
MAX_DOCUMENT_SIZE = 1_572_864
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(_BASE_LOADER):  # type: ignore[misc,valid-type]
    """Safe YAML, stricter where PyYAML is silently lenient or crashes.

    A duplicate key is an error (PyYAML keeps the last one, so a second ``redirectUris`` would quietly win;
    kubectl refuses it too), and a scalar that cannot become its type (``2020-13-45``, ``!!int abc``, an
    integer of 5000 digits) is a YAML error with a position instead of a ValueError from deep inside PyYAML.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[tuple[str, str]] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key {redact(repr(key_node.value), 80)}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)  # type: ignore[no-any-return]

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, ArithmeticError, LookupError, AttributeError) as exc:
            # PyYAML's constructors trip over odd scalars in all these ways (``!!int`` alone: IndexError).
            # The value itself stays out of the message: it may be a Secret's.
            what = str(node.tag).rsplit(":", 1)[-1]
            detail = str(exc)
            quoted = isinstance(node, yaml.ScalarNode) and node.value and node.value in detail
            shown = f" ({redact(detail, 80)})" if detail and not quoted else ""
            raise yaml.constructor.ConstructorError(None, None, f"this value is not a valid {what}{shown}",
                                                    node.start_mark) from None


def _expanded_size(root: Any) -> int | None:
    """About the length of ``root`` as JSON once every alias is followed, computed without following them;
    None when it contains itself (a recursive alias)."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if not isinstance(node, dict | list) or id(node) in sizes:
            continue
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        if not children_done:
            if id(node) in open_:
                return None
            open_.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children if isinstance(child, dict | list))
            continue
        open_.discard(id(node))
        total = 2 + len(children)
        for child in children:
            if isinstance(child, dict | list):
                if id(child) not in sizes:
                    return None  # reached again while still open: a cycle
                total += sizes[id(child)]
            else:
                total += len(child) if isinstance(child, str | bytes) else 8
        # Capped: nine levels of nine aliases would otherwise make a 30-digit number for nothing.
        sizes[id(node)] = min(total, MAX_DOCUMENT_SIZE + 1)
    if isinstance(root, dict | list):
        return sizes[id(root)]
    return len(root) if isinstance(root, str | bytes) else 8


@dataclass
class SecretDoc:
    namespace: str
    name: str
    data: dict[str, str]

    def __repr__(self) -> str:  # values are credentials
        return f"SecretDoc({self.namespace}/{self.name}, keys={sorted(self.data)})"


@dataclass
class DocumentSet:
    """Every document of one apply, indexed the way references resolve."""

    clients: dict[tuple[str, str], OAuthClient] = field(default_factory=dict)
    servers: dict[tuple[str, str], AuthorizationServer] = field(default_factory=dict)
    cluster_servers: dict[str, ClusterAuthorizationServer] = field(default_factory=dict)
    secrets: dict[tuple[str, str], SecretDoc] = field(default_factory=dict)
    sources: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def add(self, doc: Document | SecretDoc, source: str) -> None:
        if isinstance(doc, SecretDoc):
            key = ("Secret", doc.namespace, doc.name)
            target: dict[Any, Any] = self.secrets
            index: Any = (doc.namespace, doc.name)
        elif isinstance(doc, ClusterAuthorizationServer):
            key = ("ClusterAuthorizationServer", "", doc.metadata.name)
            target, index = self.cluster_servers, doc.metadata.name
        else:
            ns = doc.metadata.namespace or DEFAULT_NAMESPACE
            key = (doc.kind, ns, doc.metadata.name)
            target = self.clients if isinstance(doc, OAuthClient) else self.servers
            index = (ns, doc.metadata.name)
        if key in self.sources:
            raise ConfigurationError(
                f"{key[0]} {'/'.join(p for p in key[1:] if p)} is defined twice (also in {self.sources[key]})",
                source=source, rule="names are unique per kind and namespace")
        self.sources[key] = source
        target[index] = doc


def iter_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # Hidden folders (.git, the default .clientreg state dir) are never documents.
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in _SUFFIXES and p.is_file()
                                and not any(part.startswith(".") for part in p.relative_to(path).parts)))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigurationError(f"{path}: no such file or directory")
    return files


def load_documents(paths: Iterable[str | Path]) -> DocumentSet:
    docs = DocumentSet()
    for path in iter_files(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read: {exc.__class__.__name__}", source=str(path)) from None
        try:
            raw_docs = list(yaml.load_all(text, Loader=_Loader))
        except RecursionError:
            raise ConfigurationError("invalid YAML: nested too deeply", source=str(path)) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise ConfigurationError(f"invalid YAML: {problem}", source=where) from None
        for index, raw in enumerate(raw_docs):
            if raw is None:
                continue
            source = f"{path} (document {index + 1})"
            size = _expanded_size(raw)
            if size is None:
                raise ConfigurationError("the document contains itself (a recursive YAML alias)", source=source,
                                         rule="no recursive aliases")
            if size > MAX_DOCUMENT_SIZE:
                raise ConfigurationError(
                    f"the document is larger than {MAX_DOCUMENT_SIZE // 1024} KiB with its YAML aliases expanded, "
                    "more than Kubernetes stores for one object", source=source, rule="size")
            if isinstance(raw, Mapping) and raw.get("kind") == "List" and isinstance(raw.get("items"), list):
                for item in raw["items"]:
                    docs.add(_parse(item, source), source)
            else:
                docs.add(_parse(raw, source), source)
    return docs


def _parse(raw: Any, source: str) -> Document | SecretDoc:
    if isinstance(raw, Mapping) and raw.get("kind") == "Secret" and raw.get("apiVersion") == "v1":
        return parse_secret(raw, source)
    return parse_document(raw, source=source)


def parse_secret(raw: Mapping[str, Any], source: str) -> SecretDoc:
    meta = raw.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or not name:
        raise ConfigurationError("required field is missing", source=source, document="Secret",
                                 field="metadata.name")
    label = f"Secret/{name}"
    namespace = meta.get("namespace") or DEFAULT_NAMESPACE
    if not isinstance(namespace, str):
        raise ConfigurationError("must be a string", source=source, document=label, field="metadata.namespace")
    for rule, value, where in ((SUBDOMAIN, name, "metadata.name"), (LABEL, namespace, "metadata.namespace")):
        if (problem := rule.problem(value)) is not None:  # as the API server would refuse it
            raise ConfigurationError(problem, source=source, document="Secret", field=where, rule=rule.text)
    for section in ("data", "stringData"):
        if not isinstance(raw.get(section) or {}, Mapping):
            # The values are credentials: the message names the field, never what is in it.
            raise ConfigurationError("must be a mapping of key to value", source=source, document=label,
                                     field=section)
    data: dict[str, str] = {}
    for key, value in (raw.get("data") or {}).items():
        try:
            data[str(key)] = base64.b64decode(str(value), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigurationError("must be base64 of UTF-8 text (use stringData for plain text)",
                                     source=source, document=label, field=f"data.{key}") from None
    for key, value in (raw.get("stringData") or {}).items():
        data[str(key)] = str(value)
    if (bad := next((k for k in data if SECRET_KEY.problem(k) is not None), None)) is not None:
        raise ConfigurationError(f"key {SECRET_KEY.problem(bad)}", source=source, document=label,
                                 field="data", rule=SECRET_KEY.text)
    return SecretDoc(namespace=namespace, name=name, data=data)
