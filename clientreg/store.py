"""Local state for the CLI: one JSON file per resource, written atomically, readable by the owner only.

Layout: ``<state-dir>/records/<namespace>/<name>.json`` holding the registration record (with its
credentials: hence 0600), the last status, and pending requests (a rotation asked for by
``clientreg rotate``). A lock file keeps two ``clientreg`` processes from applying at once.

Finding the state (:func:`locate_state`) works the way git finds ``.git``: a state folder given
(``--state-dir``, ``$CLIENTREG_STATE_DIR``) is used as is; else a pointer file ``.clientreg-state`` in
a documents' folder (written by ``apply`` when the state it used is not found from there by walking
up) names it, if that state lists the folder among those it applied; else the nearest ``.clientreg``
folder owned by this user, walking up from the documents' folders, then from the working directory;
else a new ``.clientreg`` in the working directory. A pointer naming a state that is gone is an error:
the documents were applied, and registering them again would leave the first clients orphaned at the AS.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .errors import StateError
from .names import LABEL, SUBDOMAIN, check_dns1123_label, check_dns1123_subdomain
from .record import RegistrationRecord

DEFAULT_STATE_DIR = ".clientreg"
#: In a documents' folder: which state folder applied them (JSON ``{"stateDir": "/abs/path"}``). Hidden, so
#: never read as a document.
POINTER_FILE = ".clientreg-state"
#: In a state folder: the documents' folders it applied (a JSON list of absolute paths; no ``.json`` suffix, as
#: every ``*.json`` in a state folder is a record).
APPLIED_FILE = "applied-from"
HOW_TO_POINT = "point at it with --state-dir PATH or CLIENTREG_STATE_DIR=PATH"


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


# --- finding the state ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Located:
    """The state folder a command uses and how it was found (said on stderr unless it was given)."""

    root: Path
    how: str  # "given", "pointer", "found", "new"


def document_folders(paths: Iterable[Path]) -> list[Path]:
    """The folders documents were read from: a folder itself, a file's parent; in order, once each."""
    folders: list[Path] = []
    for path in paths:
        folder = (path if path.is_dir() else path.parent).resolve()
        if folder not in folders:
            folders.append(folder)
    return folders


def find_state_dir(starts: Iterable[Path], *, uid: int | None = None) -> Path | None:
    """The nearest ``.clientreg`` folder owned by ``uid`` (this user) at or above each start, in order.

    The walk stops at a filesystem boundary (as git does): a folder someone else owns, or one on another
    mount, could hold anyone's credentials and is not ours to write into.
    """
    uid = os.getuid() if uid is None else uid
    for start in starts:
        folder = start.resolve()
        device = _device(folder)
        while True:
            candidate = folder / DEFAULT_STATE_DIR
            with contextlib.suppress(OSError):
                info = candidate.lstat()
                if stat.S_ISDIR(info.st_mode) and info.st_uid == uid:
                    return candidate
            parent = folder.parent
            if parent == folder or _device(parent) != device:
                break
            folder = parent
    return None


def _device(path: Path) -> int | None:
    try:
        return path.stat().st_dev
    except OSError:
        return None


def read_pointer(folder: Path) -> Path | None:
    path = folder / POINTER_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateError(f"{path}: unreadable ({type(exc).__name__}); delete it, then {HOW_TO_POINT}") from None
    target = data.get("stateDir") if isinstance(data, dict) else None
    if not isinstance(target, str) or not Path(target).is_absolute():
        raise StateError(f"{path}: stateDir is not an absolute path; delete it, then {HOW_TO_POINT}")
    return Path(target)


def applied_folders(root: Path) -> set[Path]:
    """The documents' folders a state folder applied (its side of a pointer)."""
    try:
        listed = json.loads((root / APPLIED_FILE).read_text())
    except (OSError, ValueError):
        return set()
    return {Path(p) for p in listed if isinstance(p, str)} if isinstance(listed, list) else set()


def write_pointers(folders: Iterable[Path], root: Path) -> list[Path]:
    """Leave a pointer in each folder from which ``root`` would not be found: later runs find the state,
    or refuse instead of registering the documents again. A folder we cannot write to is skipped.

    The state lists the folders it applied, and a pointer is followed only when its target lists the
    pointer's folder: a pointer in someone else's documents cannot aim them at your state.
    """
    root = root.resolve()
    folders = list(folders)
    known = applied_folders(root)
    if not set(folders) <= known:
        try:
            _atomic_write(root / APPLIED_FILE, json.dumps(sorted(map(str, known | set(folders))), indent=2))
        except OSError:
            return []  # an unconfirmed pointer would only be refused later
    written: list[Path] = []
    for folder in folders:
        if find_state_dir([folder]) == root:
            continue
        with contextlib.suppress(StateError):
            if read_pointer(folder) == root:
                continue
        with contextlib.suppress(OSError):
            path = folder / POINTER_FILE
            path.write_text(json.dumps({"stateDir": str(root)}) + "\n")
            written.append(path)
    return written


def locate_state(given: Path | None, document_paths: Iterable[Path] = (), *, cwd: Path | None = None) -> Located:
    """Which state folder a command uses: see the module docstring for the order."""
    if given is not None:
        return Located(given, "given")
    folders = document_folders(document_paths)
    pointed = {folder: target for folder in folders if (target := read_pointer(folder)) is not None}
    for folder, target in pointed.items():
        if not target.is_dir():
            raise StateError(
                f"the documents in {folder} were applied with the state folder {target} (says "
                f"{folder / POINTER_FILE}), which does not exist: {HOW_TO_POINT}; applying them without it would "
                f"register every client again. If they really were never applied, delete {folder / POINTER_FILE}")
    if len(set(pointed.values())) > 1:
        raise StateError(f"the documents' folders point at different state folders "
                         f"({', '.join(sorted(map(str, set(pointed.values()))))}): {HOW_TO_POINT}")
    for folder, target in pointed.items():
        if folder not in applied_folders(target):
            raise StateError(
                f"{folder / POINTER_FILE} points at the state folder {target}, which never applied documents from "
                f"{folder}: {HOW_TO_POINT} if it is really theirs, or delete {folder / POINTER_FILE}")
    if pointed:
        return Located(next(iter(pointed.values())), "pointer")
    found = find_state_dir([*folders, Path.cwd() if cwd is None else cwd])
    if found is not None:
        return Located(found, "found")
    return Located(Path(DEFAULT_STATE_DIR) if cwd is None else cwd / DEFAULT_STATE_DIR, "new")
