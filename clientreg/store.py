"""Local state for the CLI: one JSON file per resource, written atomically, readable by the owner only.

Layout: ``<state-dir>/records/<namespace>/<name>.json`` holding the registration record (with its
credentials: hence 0600), the last status, and pending requests (a rotation asked for by
``clientreg rotate``). A lock file keeps two ``clientreg`` processes from applying at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .errors import StateError
from .names import LABEL, SUBDOMAIN, check_dns1123_label, check_dns1123_subdomain
from .record import RegistrationRecord

DEFAULT_STATE_DIR = ".clientreg"


@dataclass
class Entry:
    namespace: str
    name: str
    record: RegistrationRecord | None = None
    status: dict[str, Any] = field(default_factory=dict)
    requests: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class LocalStore:
    def __init__(self, root: str | Path = DEFAULT_STATE_DIR) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _path(self, namespace: str, name: str) -> Path:
        # Names become file names: the same rules as for API paths keep "../" out of the state dir.
        check_dns1123_label(namespace, field="namespace")
        check_dns1123_subdomain(name, field="name")
        return self.root / "records" / namespace / f"{name}.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive use of the state dir for one command; a second process fails fast, not late."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.root / ".lock", "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StateError(f"{self.root} is in use by another clientreg process; try again when it "
                                 "finishes") from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def load(self, namespace: str, name: str) -> Entry:
        path = self._path(namespace, name)
        if not path.exists():
            return Entry(namespace, name)
        try:
            data = json.loads(path.read_text())
            record = RegistrationRecord.from_storage(data["record"]) if data.get("record") else None
            return Entry(namespace, name, record, dict(data.get("status") or {}), dict(data.get("requests") or {}))
        except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
            raise StateError(f"{path}: unreadable state ({type(exc).__name__}); restore it from a backup or "
                             "delete it (the client at the AS is then orphaned)") from None

    def entries(self) -> list[Entry]:
        base = self.root / "records"
        if not base.exists():
            return []
        # A file no valid name could have written is not ours to read (a stray copy, an editor's backup).
        return [self.load(p.parent.name, p.stem) for p in sorted(base.glob("*/*.json"))
                if LABEL.problem(p.parent.name) is None and SUBDOMAIN.problem(p.stem) is None]

    def write(self, entry: Entry) -> None:
        path = self._path(entry.namespace, entry.name)
        if entry.record is None and not entry.requests:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        payload = {
            "record": entry.record.to_storage() if entry.record else None,
            "status": entry.status,
            "requests": entry.requests,
        }
        _atomic_write(path, json.dumps(payload, indent=2, sort_keys=True))

    def delete(self, namespace: str, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(namespace, name).unlink()


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # The rename itself must survive a crash, not only the file's bytes.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
