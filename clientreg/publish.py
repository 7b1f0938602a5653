"""Documents an AS reads from the web instead of from a registration, and how they get there.

Two kinds exist: a Client ID Metadata Document (served at the ``client_id`` URL itself) and the JWK Set
of a client that registered ``jwks_uri`` with keys clientreg holds. The registration record is the
source of both; each front end publishes them its own way and the engine checks what is served:

- CLI: ``clientreg apply --publish-dir DIR`` writes ``DIR/<host>/<path>`` (:func:`write_tree`) for any
  static host (a bucket, GitHub Pages, nginx);
- operator: serves :func:`documents` of every client from its HTTP endpoint;
- Pulumi: exports them as outputs for the stack to upload.

A document is Ready only when what the URL serves matches (:func:`differences`): until then the AS
would see an old key set, or no client at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from .drift import same
from .errors import ConfigurationError
from .jwks import check_public
from .record import RegistrationRecord

__all__ = ["differences", "documents", "render", "static_path", "write_tree"]

#: What a static host must send for these files; a ``.json`` suffix makes most of them do it.
MEDIA_TYPE = "application/json"


def documents(record: RegistrationRecord | None) -> dict[str, dict[str, Any]]:
    """URL → the JSON document that must be served there, for one client."""
    if record is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    if record.registration == "cimd":
        out[record.client_id] = dict(record.server_metadata)
    jwks_uri = record.server_metadata.get("jwks_uri")
    if record.keys and isinstance(jwks_uri, str):
        out[jwks_uri] = record.public_jwks()
    return out


def render(document: Mapping[str, Any]) -> bytes:
    """Stable bytes (sorted keys) so that re-publishing an unchanged document changes no file.

    Refuses (ConfigurationError) a document holding a private or symmetric JWK anywhere: the models refuse
    one in ``spec.jwks`` already, and this keeps a record written before that check from ever serving it."""
    check_public(document, what="the published document")
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def static_path(url: str) -> PurePosixPath:
    """Where ``url`` lives below a static-hosting root: ``<host[:port]>/<path>``."""
    parts = urlsplit(url)
    if parts.query:
        raise ConfigurationError(f"{url!r} has a query string, which a static host cannot serve; use a plain "
                                 "path (CIMD §3 also advises against query strings)", field="spec.clientIdUrl")
    host = parts.netloc.lower()
    path = unquote(parts.path)
    if path.endswith("/"):
        path += "index.json"
    segments = [s for s in path.split("/") if s]
    if not host or not segments or any(s in (".", "..") or "\\" in s for s in [host, *segments]) or "/" in host:
        raise ConfigurationError(f"{url!r} does not map to a file below the publish directory",
                                 field="spec.clientIdUrl")
    return PurePosixPath(host, *segments)


def write_tree(root: Path, docs: Mapping[str, Mapping[str, Any]]) -> list[Path]:
    """Write each document below ``root``; returns the files that changed. World-readable on purpose:
    these documents are public by definition (no private key ever reaches them)."""
    changed: list[Path] = []
    for url, document in sorted(docs.items()):
        target = root / Path(*static_path(url).parts)
        body = render(document)
        if target.is_file() and target.read_bytes() == body:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o644)
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        changed.append(target)
    return changed


def differences(expected: Mapping[str, Any], served: Any) -> list[str]:
    """Top-level fields where ``served`` differs from ``expected`` (set-valued fields compare as sets,
    a JWK Set as a set of keys); extra served fields count too: the AS would read them."""
    if not isinstance(served, Mapping):
        return ["(not a JSON object)"]
    fields = set(expected) | set(served)
    return sorted(f for f in fields if f not in expected or f not in served or not same(f, expected[f], served[f]))
