"""Local state: atomic 0600 files, a lock against concurrent applies, clear errors on corruption."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from clientreg.errors import StateError
from clientreg.record import RegistrationRecord
from clientreg.store import Entry, LocalStore


def record() -> RegistrationRecord:
    return RegistrationRecord(client_id="c1", client_secret=SecretStr("s3cr3t-value"),
                              registration_access_token=SecretStr("rat-value"),
                              registration_client_uri="https://as.example/register/c1")


def test_round_trip_keeps_secrets_and_mode(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write(Entry("ns", "web", record(), {"ready": True}))
    path = tmp_path / "records" / "ns" / "web.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = store.load("ns", "web")
    assert loaded.record is not None and loaded.record.client_secret is not None
    assert loaded.record.client_secret.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(loaded) and "rat-value" not in repr(loaded.record)
    assert not list(path.parent.glob(".*.tmp"))  # no temp file left behind


def test_corrupt_file_is_a_state_error_naming_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    path = tmp_path / "records" / "ns" / "web.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(StateError, match=r"web\.json"):
        store.load("ns", "web")


def test_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path)
    store.write(Entry("ns", "web", record()))

    def boom(*_a: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    changed = record()
    changed.client_id = "c2"
    with pytest.raises(OSError):
        store.write(Entry("ns", "web", changed))
    monkeypatch.undo()
    loaded = store.load("ns", "web").record
    assert loaded is not None and loaded.client_id == "c1"
    assert not list((tmp_path / "records" / "ns").glob(".*.tmp"))


def test_lock_refuses_a_second_process(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with store.locked(), pytest.raises(StateError, match="in use"), LocalStore(tmp_path).locked():
        pass


def test_delete_and_entries(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write(Entry("a", "one", record()))
    store.write(Entry("b", "two", record()))
    assert [e.key for e in store.entries()] == ["a/one", "b/two"]
    store.delete("a", "one")
    assert [e.key for e in store.entries()] == ["b/two"]


def test_the_deletion_policy_is_kept_and_an_unknown_one_is_stored_as_before(tmp_path: Path) -> None:
    unknown = record()
    assert unknown.deletion_policy is None
    assert "deletion_policy" not in unknown.to_storage(), "records of other front ends must not change shape"
    store = LocalStore(tmp_path)
    store.write(Entry("ns", "web", record().model_copy(update={"deletion_policy": "Orphan"})))
    loaded = store.load("ns", "web").record
    assert loaded is not None and loaded.deletion_policy == "Orphan"
    store.write(Entry("ns", "old", unknown))
    assert store.load("ns", "old").record.deletion_policy is None  # type: ignore[union-attr]


def test_state_location_order(tmp_path: Path) -> None:
    from clientreg.store import POINTER_FILE, locate_state, write_pointers

    docs, cwd = tmp_path / "repo" / "clients", tmp_path / "cwd"
    docs.mkdir(parents=True)
    cwd.mkdir()
    assert locate_state(tmp_path / "given", [docs], cwd=cwd).root == tmp_path / "given"
    assert locate_state(None, [docs], cwd=cwd).how == "new"
    assert locate_state(None, [docs], cwd=cwd).root == cwd / ".clientreg"
    (cwd / ".clientreg").mkdir()
    assert locate_state(None, [docs], cwd=cwd).root == cwd / ".clientreg"
    (tmp_path / "repo" / ".clientreg").mkdir()  # nearer the documents than the working directory
    assert locate_state(None, [docs], cwd=cwd).root == tmp_path / "repo" / ".clientreg"
    (tmp_path / "elsewhere").mkdir()
    (docs / POINTER_FILE).write_text(f'{{"stateDir": "{tmp_path / "elsewhere"}"}}')
    with pytest.raises(StateError, match="never applied documents from"):  # planted: not that state's folder
        locate_state(None, [docs], cwd=cwd)
    assert write_pointers([docs], tmp_path / "elsewhere") == []  # the pointer is there; the state now lists docs
    assert locate_state(None, [docs], cwd=cwd).how == "pointer"
    (docs / POINTER_FILE).write_text('{"stateDir": "relative/path"}')
    with pytest.raises(StateError, match="absolute"):
        locate_state(None, [docs], cwd=cwd)
