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

from .errors import ConfigurationError
from .spec import AuthorizationServer, ClusterAuthorizationServer, Document, OAuthClient, parse_document

DEFAULT_NAMESPACE = "default"
# libyaml's loader when PyYAML was built with it: the same safe semantics, several times faster.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SUFFIXES = {".yaml", ".yml", ".json"}


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
            raw_docs = list(yaml.load_all(text, Loader=_LOADER))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise ConfigurationError(f"invalid YAML: {problem}", source=where) from None
        for index, raw in enumerate(raw_docs):
            if raw is None:
                continue
            source = f"{path} (document {index + 1})"
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
    data: dict[str, str] = {}
    for key, value in (raw.get("data") or {}).items():
        try:
            data[str(key)] = base64.b64decode(str(value), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigurationError("must be base64 of UTF-8 text (use stringData for plain text)",
                                     source=source, document=label, field=f"data.{key}") from None
    for key, value in (raw.get("stringData") or {}).items():
        data[str(key)] = str(value)
    return SecretDoc(namespace=meta.get("namespace") or DEFAULT_NAMESPACE, name=name, data=data)
