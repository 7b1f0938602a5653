"""A 401 to the RFC 7592 read against the real dev AS (Authlib endpoints over HTTP, in-process): a client
whose registration access token someone else rotated with a PUT is kept and reported, never replaced; a
client deleted out of band is proven gone by the token endpoint and registered anew."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from support.cli_world import at_server
from support.cli_world import documents as worker_documents

from clientreg.cli import main
from clientreg.devserver import DevServer, DevServerSettings

pytestmark = pytest.mark.interop
#: clientreg apply's exit code when a client needs a person (docs/cli.md "Exit codes").
ATTENTION = 7


@pytest.fixture
def server() -> Iterator[DevServer]:
    with DevServer(DevServerSettings()) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _no_state_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLIENTREG_STATE_DIR", raising=False)


def documents(folder: Path, issuer: str) -> Path:
    return worker_documents(folder, issuer, extra="  clientName: Worker\n")


def apply(folder: Path, state: Path) -> tuple[Result, list[dict[str, Any]]]:
    result = CliRunner().invoke(main, ["apply", "-f", str(folder), "--state-dir", str(state), "-o", "json"])
    return result, json.loads(result.stdout) if result.stdout.strip() else []


def stored_record(state: Path) -> dict[str, Any]:
    record = json.loads((state / "records" / "team" / "worker.json").read_text())["record"]
    assert isinstance(record, dict)
    return record


def test_a_put_behind_clientregs_back_keeps_the_client_and_asks_for_a_person(tmp_path: Path,
                                                                             server: DevServer) -> None:
    folder, state = documents(tmp_path / "docs", server.issuer), tmp_path / "state"
    first, _ = apply(folder, state)
    assert first.exit_code == 0, first.output
    record = stored_record(state)
    client_id, uri = record["client_id"], record["registration_client_uri"]
    # Someone else edits the client with the registration access token: the AS rotates it (RFC 7592 §2.2).
    rat = {"Authorization": f"Bearer {record['registration_access_token']}"}
    current = httpx.get(uri, headers=rat, timeout=10).json()
    edited = {k: v for k, v in current.items() if k not in {
        "registration_access_token", "registration_client_uri", "client_secret_expires_at", "client_id_issued_at",
        "client_secret"}}
    edited["client_name"] = "Edited elsewhere"
    put = httpx.put(uri, headers=rat, json=edited, timeout=10)
    assert put.status_code == 200 and put.json()["registration_access_token"] != record["registration_access_token"]

    again, results = apply(folder, state)
    assert again.exit_code == ATTENTION, again.output
    assert at_server(server) == [client_id]  # no second client
    assert results[0]["reason"] == "RegistrationAccessTokenRevoked" and results[0]["ready"] is True
    assert client_id in results[0]["message"] and "clientreg adopt worker" in results[0]["message"]
    assert stored_record(state)["client_id"] == client_id
    assert record["client_secret"] not in again.output and record["registration_access_token"] not in again.output

    # Adopted with the token the PUT handed out: the next apply reads the client and restores the spec.
    token_file = tmp_path / "rat"
    token_file.write_text(put.json()["registration_access_token"] + "\n")
    adopted = CliRunner().invoke(main, ["adopt", "worker", "-n", "team", "--state-dir", str(state),
                                        "--registration-access-token-file", str(token_file)])
    assert adopted.exit_code == 0, adopted.output
    assert put.json()["registration_access_token"] not in adopted.output
    healed, results = apply(folder, state)
    assert healed.exit_code == 0, healed.output
    assert results[0]["reason"] == "DriftAtServer" and at_server(server) == [client_id]
    assert httpx.get(uri, headers={"Authorization": f"Bearer {stored_record(state)['registration_access_token']}"},
                     timeout=10).json()["client_name"] == "Worker"


def test_adopt_refuses_a_file_that_holds_no_token(tmp_path: Path, server: DevServer) -> None:
    folder, state = documents(tmp_path / "docs", server.issuer), tmp_path / "state"
    assert apply(folder, state)[0].exit_code == 0
    before = stored_record(state)["registration_access_token"]
    bad = tmp_path / "rat"
    bad.write_text("two words\n")
    refused = CliRunner().invoke(main, ["adopt", "worker", "--state-dir", str(state),
                                        "--registration-access-token-file", str(bad)])
    assert refused.exit_code == 2 and "RFC 6750" in refused.output
    assert stored_record(state)["registration_access_token"] == before


def test_a_client_deleted_out_of_band_is_registered_anew(tmp_path: Path, server: DevServer) -> None:
    folder, state = documents(tmp_path / "docs", server.issuer), tmp_path / "state"
    first, _ = apply(folder, state)
    assert first.exit_code == 0, first.output
    record = stored_record(state)
    deleted = httpx.delete(record["registration_client_uri"],
                           headers={"Authorization": f"Bearer {record['registration_access_token']}"}, timeout=10)
    assert deleted.status_code == 204 and at_server(server) == []

    again, results = apply(folder, state)
    assert again.exit_code == 0, again.output
    assert results[0]["reason"] == "ClientGoneAtServer"
    assert len(at_server(server)) == 1 and at_server(server) != [record["client_id"]]
