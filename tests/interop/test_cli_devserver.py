"""The CLI contract, end to end against the real dev AS (Authlib endpoints over HTTP, in-process)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from clientreg.cli import main
from clientreg.devserver import DevServer, DevServerSettings

pytestmark = pytest.mark.interop
IAT = "iat-for-cli-tests"


@pytest.fixture
def server() -> Iterator[DevServer]:
    with DevServer(DevServerSettings(initial_access_token=IAT)) as srv:
        yield srv


def write_folder(folder: Path, issuer: str, *, clients: str = "", with_secret: bool = True,
                 grace: str = "0s") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    server_doc = f"""
apiVersion: clientreg.dev/v1alpha1
kind: AuthorizationServer
metadata: {{name: dev, namespace: team}}
spec:
  issuer: {issuer}
  initialAccessToken: {{secretKeyRef: {{name: iat, key: token}}}}
  allowedRedirectHosts: ["*.example.com", "127.0.0.1"]
"""
    if with_secret:
        server_doc += f"""---
apiVersion: v1
kind: Secret
metadata: {{name: iat, namespace: team}}
stringData: {{token: {IAT}}}
"""
    (folder / "server.yaml").write_text(server_doc)
    (folder / "clients.yaml").write_text(clients or f"""
apiVersion: clientreg.dev/v1alpha1
kind: OAuthClient
metadata: {{name: worker, namespace: team}}
spec:
  serverRef: {{name: dev}}
  clientName: Worker
  grantTypes: [client_credentials]
  scope: api:read
  rotation: {{gracePeriod: {grace}}}
---
apiVersion: clientreg.dev/v1alpha1
kind: OAuthClient
metadata: {{name: portal, namespace: team}}
spec:
  serverRef: {{name: dev}}
  clientName: Portal
  redirectUris: [https://portal.example.com/cb]
  grantTypes: [authorization_code, refresh_token]
  responseTypes: [code]
""")
    return folder


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def dev(server: DevServer, path: str) -> Any:
    return httpx.get(f"{server.issuer}/_dev/{path}").json()


def secrets_of(state: Path) -> list[str]:
    out = []
    for f in state.rglob("*.json"):
        rec = json.loads(f.read_text())["record"] or {}
        out += [v for v in (rec.get("client_secret"), rec.get("registration_access_token")) if v]
    return out


def test_apply_get_credentials_token(server: DevServer, tmp_path: Path) -> None:
    folder, state = write_folder(tmp_path / "f", server.issuer), tmp_path / "state"
    result = run("apply", "-f", folder, "--state-dir", state)
    assert result.exit_code == 0, result.output
    assert "NotRegistered" in result.output
    assert len(dev(server, "clients")) == 2
    files = list(state.rglob("*.json"))
    assert files and all(stat.S_IMODE(os.stat(f).st_mode) == 0o600 for f in files)

    got = run("get", "-o", "json", "--state-dir", state)
    rows = json.loads(got.output)
    assert {r["name"] for r in rows} == {"worker", "portal"}
    for row in rows:
        assert {"name", "namespace", "clientId", "ready", "reason", "message", "secretExpiresAt"} <= set(row)
        assert row["ready"] is True and row["namespace"] == "team"

    creds = json.loads(run("credentials", "team/worker", "--state-dir", state).output)
    assert creds["client_secret"] and creds["token_endpoint"].endswith("/token") and creds["issuer"] == server.issuer
    env = run("credentials", "worker", "-o", "env", "--state-dir", state).output
    assert f"CLIENT_ID='{creds['client_id']}'" in env

    token = run("token", "worker", "--state-dir", state)
    assert token.exit_code == 0 and "token obtained" in token.output

    # Secrets appear only where asked for by name.
    for secret in secrets_of(state):
        for output in (result.output, got.output, token.output):
            assert secret not in output


def test_reapply_is_reads_only(server: DevServer, tmp_path: Path) -> None:
    folder, state = write_folder(tmp_path / "f", server.issuer), tmp_path / "state"
    assert run("apply", "-f", folder, "--state-dir", state).exit_code == 0
    httpx.post(f"{server.issuer}/_dev/reset-counters")
    again = run("apply", "-f", folder, "--state-dir", state)
    assert again.exit_code == 0 and again.output.count("InSync") == 2
    counts = dev(server, "requests")
    assert sum(n for k, n in counts.items() if not k.startswith("GET")) == 0, counts
    assert sum(n for k, n in counts.items() if k.startswith("GET /register/")) == 2, counts


def test_plan_writes_nothing(server: DevServer, tmp_path: Path) -> None:
    folder, state = write_folder(tmp_path / "f", server.issuer), tmp_path / "state"
    result = run("plan", "-f", folder, "--state-dir", state, "-o", "json")
    assert result.exit_code == 0, result.output
    assert {p["reason"] for p in json.loads(result.output)} == {"NotRegistered"}
    assert dev(server, "clients") == []


def test_spec_change_reaches_the_server(server: DevServer, tmp_path: Path) -> None:
    folder, state = write_folder(tmp_path / "f", server.issuer), tmp_path / "state"
    assert run("apply", "-f", folder, "--state-dir", state).exit_code == 0
    text = (folder / "clients.yaml").read_text().replace("https://portal.example.com/cb",
                                                         "https://portal.example.com/callback2")
    (folder / "clients.yaml").write_text(text)
    result = run("apply", "-f", folder, "--state-dir", state)
    assert result.exit_code == 0 and "SpecChanged" in result.output
    creds = json.loads(run("credentials", "portal", "--state-dir", state).output)
    record = json.loads((state / "records" / "team" / "portal.json").read_text())["record"]
    read = httpx.get(record["registration_client_uri"],
                     headers={"Authorization": f"Bearer {record['registration_access_token']}"}).json()
    assert read["client_id"] == creds["client_id"]
    assert read["redirect_uris"] == ["https://portal.example.com/callback2"]


def test_rotate_then_apply_replaces_and_deletes_old(server: DevServer, tmp_path: Path) -> None:
    folder, state = write_folder(tmp_path / "f", server.issuer), tmp_path / "state"
    assert run("apply", "-f", folder, "--state-dir", state).exit_code == 0
    old = json.loads(run("credentials", "worker", "--state-dir", state).output)["client_id"]
    assert "rotation requested" in run("rotate", "worker", "--state-dir", state).output
    result = run("apply", "-f", folder, "--state-dir", state)
    assert result.exit_code == 0
    new = json.loads(run("credentials", "worker", "--state-dir", state).output)["client_id"]
    assert new != old
    run("apply", "-f", folder, "--state-dir", state)  # grace 0s: the old one goes now
    clients = dev(server, "clients")
    assert old not in clients and new in clients and len(clients) == 2
    assert run("token", "worker", "--state-dir", state).exit_code == 0


def test_delete_by_name_and_by_file(server: DevServer, tmp_path: Path) -> None:
    folder, state = write_folder(tmp_path / "f", server.issuer), tmp_path / "state"
    assert run("apply", "-f", folder, "--state-dir", state).exit_code == 0
    result = run("delete", "worker", "--state-dir", state)
    assert result.exit_code == 0, result.output
    assert len(dev(server, "clients")) == 1
    assert run("delete", "-f", folder, "--state-dir", state).exit_code == 0
    assert dev(server, "clients") == []
    assert json.loads(run("get", "-o", "json", "--state-dir", state).output) == []


def test_missing_iat_secret_is_waiting_and_registers_nothing(server: DevServer, tmp_path: Path) -> None:
    folder, state = write_folder(tmp_path / "f", server.issuer, with_secret=False), tmp_path / "state"
    result = run("apply", "-f", folder, "--state-dir", state)
    assert result.exit_code == 3, result.output
    assert "waiting for Secret team/iat" in result.output
    assert dev(server, "clients") == []


CLIENT_HEAD = """apiVersion: clientreg.dev/v1alpha1
kind: OAuthClient
metadata: {name: bad, namespace: team}
spec:
  serverRef: {name: dev}
"""


@pytest.mark.parametrize(("clients", "words"), [
    ("kind: [unclosed\n", "invalid YAML"),
    (CLIENT_HEAD + "  grantTypes: [client_credentials]\n  clientNmae: x\n", "spec.clientNmae"),
    (CLIENT_HEAD + "  redirectUris: [http://evil.example.org/cb]\n", "spec.redirectUris"),
    (CLIENT_HEAD + "  redirectUris: [https://evil.example.org/cb]\n", "allowedRedirectHosts"),
    (CLIENT_HEAD.replace("name: dev", "name: nope") + "  grantTypes: [client_credentials]\n", "serverRef"),
    (CLIENT_HEAD + "  grantTypes: [client_credentials]\n---\n" + CLIENT_HEAD
     + "  grantTypes: [client_credentials]\n", "defined twice"),
    ("apiVersion: clientreg.dev/v1alpha1\nkind: OAuthClient\nmetadata: {name: x}\nspec: {grantTypes: "
     "[client_credentials]}\n", "spec.serverRef"),
])
def test_bad_input_is_named_and_changes_nothing(server: DevServer, tmp_path: Path, clients: str,
                                                 words: str) -> None:
    folder, state = write_folder(tmp_path / "f", server.issuer, clients=clients), tmp_path / "state"
    result = CliRunner().invoke(main, ["apply", "-f", str(folder), "--state-dir", str(state)])
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert "Traceback" not in result.output
    assert dev(server, "clients") == []
    assert not list(state.rglob("*.json"))


def test_unreachable_server(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder, state = write_folder(tmp_path / "f", f"http://127.0.0.1:{port}"), tmp_path / "state"
    result = CliRunner().invoke(main, ["apply", "-f", str(folder), "--state-dir", str(state)])
    assert result.exit_code == 5, result.output
    assert "Traceback" not in result.output and f"127.0.0.1:{port}" in result.output


def test_discover_and_check_server(server: DevServer, tmp_path: Path) -> None:
    found = json.loads(run("discover", server.issuer).output)
    assert found["server"]["issuer"] == server.issuer and found["server"]["registration_endpoint"]
    (tmp_path / "iat").write_text(IAT)
    report = json.loads(run("check-server", server.issuer, "--initial-access-token-file", tmp_path / "iat",
                            "-o", "json").output)
    results = {c["feature"]: c["result"] for c in report["checks"]}
    assert results["registration (RFC 7591)"] == "yes"
    assert results["initial access token required"] == "yes"
    assert results["read (RFC 7592)"] == "yes" and results["update (RFC 7592)"] == "yes"
    assert results["delete (RFC 7592)"] == "yes"
    assert results["RAT rotation on update"] == "yes"
    assert results["token with issued credentials"] == "yes"
    assert dev(server, "clients") == []  # the throwaway clients are gone
