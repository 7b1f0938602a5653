"""CLI semantics of issue 12: delete honours the declared deletionPolicy, state is found the way git finds
``.git``, a bad serverRef elsewhere in the folder does not block the named clients, and ``get`` shows the
state after the run. Against the real dev AS on loopback (in-process)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support.cli_world import at_server, documents

from clientreg.cli import main
from clientreg.devserver import DevServer, DevServerSettings
from clientreg.store import LocalStore


@pytest.fixture
def server() -> Iterator[DevServer]:
    with DevServer(DevServerSettings()) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _no_state_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLIENTREG_STATE_DIR", raising=False)


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def applied(folder: Path, state: Path) -> Result:
    result = cli("apply", "-f", str(folder), "--state-dir", str(state))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


# --- 1. delete by name honours the declared deletionPolicy -----------------------------------------------

def test_delete_by_name_keeps_a_client_declared_orphan(tmp_path: Path, server: DevServer) -> None:
    folder, state = documents(tmp_path / "docs", server.issuer, policy="Orphan"), tmp_path / "state"
    applied(folder, state)
    kept = at_server(server)
    assert len(kept) == 1
    result = cli("delete", "team/worker", "--state-dir", str(state))
    assert result.exit_code == 0, (result.output, result.exception)
    assert at_server(server) == kept, "a client declared deletionPolicy: Orphan was deleted at the AS"
    assert LocalStore(state).entries() == [], "an orphaned client is forgotten locally"
    assert "kept at the AS" in result.output


def test_delete_by_name_deletes_a_client_declared_delete(tmp_path: Path, server: DevServer) -> None:
    folder, state = documents(tmp_path / "docs", server.issuer), tmp_path / "state"
    applied(folder, state)
    assert LocalStore(state).load("team", "worker").record.deletion_policy == "Delete"  # type: ignore[union-attr]
    result = cli("delete", "team/worker", "--state-dir", str(state))
    assert result.exit_code == 0, (result.output, result.exception)
    assert at_server(server) == []


def test_the_documents_policy_wins_over_the_recorded_one(tmp_path: Path, server: DevServer) -> None:
    state = tmp_path / "state"
    applied(documents(tmp_path / "docs", server.issuer, policy="Delete"), state)
    kept = at_server(server)
    orphan = documents(tmp_path / "docs", server.issuer, policy="Orphan")
    result = cli("delete", "-f", str(orphan), "--state-dir", str(state))
    assert result.exit_code == 0, (result.output, result.exception)
    assert at_server(server) == kept


def _forget_policy(state: Path) -> None:
    """A record written before the record kept the policy: no deletion_policy key at all."""
    path = state / "records" / "team" / "worker.json"
    data = json.loads(path.read_text())
    del data["record"]["deletion_policy"]
    path.write_text(json.dumps(data))


def test_an_old_record_without_a_policy_is_not_deleted_without_an_explicit_choice(
        tmp_path: Path, server: DevServer) -> None:
    state = tmp_path / "state"
    applied(documents(tmp_path / "docs", server.issuer), state)
    _forget_policy(state)
    kept = at_server(server)
    assert LocalStore(state).load("team", "worker").record.deletion_policy is None  # type: ignore[union-attr]
    refused = cli("delete", "team/worker", "--state-dir", str(state))
    assert refused.exit_code == 2, refused.output
    assert "--delete-at-server" in refused.output and "--orphan" in refused.output
    assert at_server(server) == kept and len(LocalStore(state).entries()) == 1
    deleted = cli("delete", "team/worker", "--delete-at-server", "--state-dir", str(state))
    assert deleted.exit_code == 0, deleted.output
    assert at_server(server) == []


def test_orphan_flag_forgets_without_deleting(tmp_path: Path, server: DevServer) -> None:
    state = tmp_path / "state"
    applied(documents(tmp_path / "docs", server.issuer), state)
    kept = at_server(server)
    result = cli("delete", "team/worker", "--orphan", "--state-dir", str(state))
    assert result.exit_code == 0, result.output
    assert at_server(server) == kept and LocalStore(state).entries() == []


def test_delete_flags_exclude_each_other_and_documents(tmp_path: Path, server: DevServer) -> None:
    folder = documents(tmp_path / "docs", server.issuer)
    both = cli("delete", "team/worker", "--orphan", "--delete-at-server", "--state-dir", str(tmp_path / "s"))
    assert both.exit_code == 2 and "--orphan" in both.output
    with_docs = cli("delete", "-f", str(folder), "--orphan", "--state-dir", str(tmp_path / "s"))
    assert with_docs.exit_code == 2 and "deletionPolicy" in with_docs.output


# --- 2. state is found up the tree, not only in the working directory ------------------------------------

def test_apply_from_another_folder_finds_the_state_above_the_documents(
        tmp_path: Path, server: DevServer, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    folder = documents(project / "clients", server.issuer)
    monkeypatch.chdir(project)
    first = cli("apply", "-f", "clients")
    assert first.exit_code == 0, (first.output, first.exception)
    assert (project / ".clientreg" / "records" / "team" / "worker.json").exists()
    registered = at_server(server)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    again = cli("apply", "-f", str(folder))
    assert again.exit_code == 0, (again.output, again.exception)
    assert at_server(server) == registered, "the same documents were registered a second time"
    assert not (elsewhere / ".clientreg").exists()
    assert f"using state {project / '.clientreg'}" in again.output  # said on stderr (mixed in by CliRunner)
    shown = cli("plan", "-f", str(folder))
    assert f"using state {project / '.clientreg'}" in shown.output and "Register" not in shown.output


def test_commands_without_documents_walk_up_from_the_working_directory(
        tmp_path: Path, server: DevServer, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    documents(project / "clients", server.issuer)
    monkeypatch.chdir(project)
    assert cli("apply", "-f", "clients").exit_code == 0
    monkeypatch.chdir(project / "clients")
    shown = cli("get", "-o", "json")
    assert shown.exit_code == 0, shown.output
    assert [row["name"] for row in json.loads(shown.stdout)] == ["worker"]


def test_the_environment_variable_names_the_state(tmp_path: Path, server: DevServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    folder = documents(tmp_path / "docs", server.issuer)
    monkeypatch.setenv("CLIENTREG_STATE_DIR", str(tmp_path / "env-state"))
    monkeypatch.chdir(tmp_path)
    assert cli("apply", "-f", str(folder)).exit_code == 0
    assert (tmp_path / "env-state" / "records" / "team" / "worker.json").exists()


def test_documents_applied_with_state_elsewhere_refuse_to_register_again(
        tmp_path: Path, server: DevServer, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = documents(tmp_path / "docs", server.issuer)
    (tmp_path / "run1").mkdir()
    monkeypatch.chdir(tmp_path / "run1")
    state = tmp_path / "somewhere" / "state"
    assert cli("apply", "-f", str(folder), "--state-dir", str(state)).exit_code == 0
    registered = at_server(server)
    # The state folder moved away (another machine, a lost env var): nothing must be registered again.
    state.rename(tmp_path / "somewhere" / "moved")
    (tmp_path / "run2").mkdir()
    monkeypatch.chdir(tmp_path / "run2")
    refused = cli("apply", "-f", str(folder))
    assert refused.exit_code == 6, refused.output
    assert str(state) in refused.output and "--state-dir" in refused.output \
        and "CLIENTREG_STATE_DIR" in refused.output
    assert at_server(server) == registered


def test_a_pointer_to_an_existing_state_is_followed(tmp_path: Path, server: DevServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    folder = documents(tmp_path / "docs", server.issuer)
    state = tmp_path / "somewhere" / "state"
    monkeypatch.chdir(tmp_path)
    assert cli("apply", "-f", str(folder), "--state-dir", str(state)).exit_code == 0
    registered = at_server(server)
    again = cli("apply", "-f", str(folder))
    assert again.exit_code == 0, again.output
    assert at_server(server) == registered and f"using state {state}" in again.output


def test_a_state_folder_someone_else_owns_is_not_used(tmp_path: Path) -> None:
    from clientreg.store import find_state_dir

    (tmp_path / "a" / ".clientreg").mkdir(parents=True)
    (tmp_path / "a" / "b").mkdir()
    assert find_state_dir([tmp_path / "a" / "b"], uid=os.getuid() + 1) is None
    assert find_state_dir([tmp_path / "a" / "b"]) == tmp_path / "a" / ".clientreg"


# --- 3. references are checked for the selected clients only ----------------------------------------------

BROKEN = """---
apiVersion: clientreg.dev/v1alpha1
kind: OAuthClient
metadata: {name: broken, namespace: team}
spec: {serverRef: {name: nowhere}, grantTypes: [client_credentials]}
"""


def test_apply_by_name_ignores_a_bad_server_ref_of_another_client(tmp_path: Path, server: DevServer) -> None:
    folder = documents(tmp_path / "docs", server.issuer, extra=BROKEN)
    result = cli("apply", "-f", str(folder), "worker", "--state-dir", str(tmp_path / "s"))
    assert result.exit_code == 0, result.output
    assert len(at_server(server)) == 1
    everything = cli("apply", "-f", str(folder), "--state-dir", str(tmp_path / "s"))
    assert everything.exit_code == 2 and "nowhere" in everything.output


# --- 4. get shows the state after the run ------------------------------------------------------------------

def test_get_shows_what_apply_ended_with(tmp_path: Path, server: DevServer) -> None:
    folder, state = documents(tmp_path / "docs", server.issuer, grace="0s"), tmp_path / "state"
    applied(folder, state)
    assert cli("rotate", "team/worker", "--state-dir", str(state)).exit_code == 0
    ran = cli("apply", "-f", str(folder), "--state-dir", str(state), "-o", "json")
    assert ran.exit_code == 0, ran.output
    shown = cli("get", "team/worker", "--state-dir", str(state), "-o", "json")
    last, now = json.loads(ran.stdout)[0], json.loads(shown.stdout)[0]
    assert {k: now[k] for k in ("reason", "message", "clientId", "ready")} == \
        {k: last[k] for k in ("reason", "message", "clientId", "ready")}
    # The status describes the state after the run: a client it says is being deleted is still at the AS
    # only while the record still holds it as retiring.
    record = LocalStore(state).load("team", "worker").record
    assert record is not None
    if not record.retiring:
        assert "deleting it" not in now["message"]


def test_an_apply_with_a_zero_grace_period_converges_and_get_says_so(tmp_path: Path, server: DevServer) -> None:
    folder, state = documents(tmp_path / "docs", server.issuer, grace="0s"), tmp_path / "state"
    applied(folder, state)
    assert cli("rotate", "team/worker", "--state-dir", str(state)).exit_code == 0
    ran = cli("apply", "-f", str(folder), "--state-dir", str(state), "-o", "json")
    assert ran.exit_code == 0, ran.output
    new_id = json.loads(ran.stdout)[0]["clientId"]
    record = LocalStore(state).load("team", "worker").record
    assert record is not None and record.retiring == [], "the old client outlived a 0s grace period"
    assert at_server(server) == [new_id]
    shown = json.loads(cli("get", "team/worker", "--state-dir", str(state), "-o", "json").stdout)[0]
    assert "deleting" not in shown["message"] and shown["clientId"] == new_id


# --- plan shows every policy that fired, not only the first --------------------------------------------------

def test_plan_lists_every_policy_that_fired_and_which_acted(tmp_path: Path, server: DevServer) -> None:
    folder, state = documents(tmp_path / "docs", server.issuer), tmp_path / "state"
    applied(folder, state)
    assert cli("rotate", "team/worker", "--state-dir", str(state)).exit_code == 0
    documents(folder, server.issuer, extra="  clientName: renamed\n")  # and the spec changed too
    result = cli("plan", "-f", str(folder), "--state-dir", str(state), "-o", "json")
    assert result.exit_code == 0, (result.output, result.exception)
    [planned] = json.loads(result.output)
    fired = {p["policy"]: p["acted"] for p in planned["policies"]}
    # The requested rotation registers a replacement carrying the new spec; the spec change is still shown.
    assert fired.get("RotationRequested") is True, planned["policies"]
    assert fired.get("SpecChanged") is False, planned["policies"]
    table = cli("plan", "-f", str(folder), "--state-dir", str(state)).output
    assert "RotationRequested" in table and "SpecChanged (not acted on)" in table
