"""What the dynamic provider tells a Pulumi user, as a pulumi-auth0 / pulumi-keycloak user tried it: an
adoption said as such (not "spec changed"), a destroy that kept the client at the AS saying so, drift
shown where ``preview --diff`` looks, and a missing kubernetes extra named as the fix.

The engine-driven proof is tests/e2e/test_pulumi_example_project.py; these pin each message down.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
from clientreg_pulumi import OAuthClientProvider
from pulumi.dynamic import ReadResult
from pulumi.runtime import rpc
from pydantic import SecretStr
from support.elsewhere import register_elsewhere

from clientreg import rfc7592
from clientreg.devserver import DevServer, DevServerSettings
from clientreg.http import HttpClient

IAT = "iat-for-the-pulumi-message-tests"
LEGACY = {"client_name": "Legacy", "redirect_uris": ["https://legacy.example.com/cb"]}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def steady_as() -> Iterator[DevServer]:
    # Keeps its RATs: the test plays "someone edits the client at the AS" with the provider's own token.
    with DevServer(DevServerSettings(initial_access_token=IAT, rotate_registration_access_token=False)) as server:
        yield server


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    lines: list[str] = []
    for level in ("info", "warn"):
        monkeypatch.setattr(pulumi.log, level, lambda msg, *_, **__: lines.append(msg))
    return lines


def program_inputs(server: DevServer, **overrides: Any) -> dict[str, Any]:
    return {"issuer": server.issuer, "initial_access_token": IAT, "client_name": "Web",
            "redirect_uris": ["https://app.example.com/cb"], **overrides}


def rename_at_the_as(outs: dict[str, Any], name: str) -> None:
    http = HttpClient()
    try:
        rat = SecretStr(outs["registration_access_token"])
        live = rfc7592.read(http, outs["registration_client_uri"], rat).metadata
        rfc7592.update(http, outs["registration_client_uri"], rat, outs["client_id"], {**live, "client_name": name})
    finally:
        http.close()


class _Request:
    """The fields of the engine's ReadRequest the SDK's dynamic-provider host reads."""

    def __init__(self, inputs: dict[str, Any]) -> None:
        self.inputs = asyncio.run(rpc.serialize_properties(inputs, {}))


def Read(provider: OAuthClientProvider, id_: str, outs: dict[str, Any], request: _Request) -> ReadResult:
    """Called like the SDK host's ``Read``: a method of that name holding the engine's ``request``."""
    return provider.read(id_, outs)


# --- drift, where `preview --diff` looks ----------------------------------------------------------------

def test_refresh_puts_drifted_values_into_the_inputs_so_preview_marks_them(steady_as: DevServer) -> None:
    provider = OAuthClientProvider()
    declared = program_inputs(steady_as)
    created = provider.create(declared)
    assert created.outs is not None
    request = _Request({**declared, "__provider": "pickled"})
    assert Read(provider, created.id, created.outs, request).inputs is None  # nothing drifted: inputs stay

    rename_at_the_as(created.outs, "Renamed at the AS")
    refreshed = Read(provider, created.id, created.outs, request)
    assert refreshed.outs is not None and refreshed.inputs is not None
    assert refreshed.outs["status"] == "DriftAtServer" and "client_name" in refreshed.outs["status_message"]
    # The old inputs, the drifted argument at its live value: the engine shows `live => declared` from these.
    assert refreshed.inputs["client_name"] == "Renamed at the AS"
    assert {k: v for k, v in refreshed.inputs.items() if k != "client_name"} == \
        {k: v for k, v in declared.items() if k != "client_name"}  # the IAT kept (the engine re-marks it secret)
    assert "__provider" not in refreshed.inputs  # the SDK host adds its own


def test_refresh_without_the_engines_request_still_reports_drift_in_the_outputs(steady_as: DevServer) -> None:
    provider = OAuthClientProvider()
    created = provider.create(program_inputs(steady_as))
    assert created.outs is not None
    rename_at_the_as(created.outs, "Renamed again")
    refreshed = provider.read(created.id, created.outs)
    assert refreshed.inputs is None
    assert refreshed.outs is not None and refreshed.outs["status"] == "DriftAtServer"


# --- what a run says ------------------------------------------------------------------------------------

def test_a_new_client_is_in_sync_and_its_log_names_it_once(steady_as: DevServer, logged: list[str]) -> None:
    created = OAuthClientProvider().create(program_inputs(steady_as))
    assert created.outs is not None
    # The status says the state after the run; what the run did is in the log.
    assert created.outs["status"] == "InSync" and "registering" not in created.outs["status_message"]
    (said,) = logged
    assert "registering a new client" in said and said.count(created.id) == 1



def test_adoption_is_reported_as_adoption_not_as_a_spec_change(steady_as: DevServer, logged: list[str]) -> None:
    elsewhere = register_elsewhere(steady_as.registration_endpoint, IAT, LEGACY)
    created = OAuthClientProvider().create(program_inputs(
        steady_as, client_name="Legacy, managed", redirect_uris=["https://legacy.example.com/cb"],
        adopt_client_id=elsewhere.client_id, adopt_registration_client_uri=elsewhere.registration_client_uri,
        adopt_registration_access_token=elsewhere.registration_access_token.get_secret_value()))
    assert created.outs is not None and created.outs["status"] == "InSync"
    said = "\n".join(logged)
    assert "adopted client" in said and "client_name" in said and "spec changed" not in said


def test_destroy_of_an_orphan_client_says_it_was_kept_at_the_as(steady_as: DevServer, logged: list[str]) -> None:
    provider = OAuthClientProvider()
    created = provider.create(program_inputs(steady_as, deletion_policy="Orphan"))
    assert created.outs is not None
    logged.clear()
    provider.delete(created.id, created.outs)
    (said,) = logged
    assert "kept at the AS (deletion_policy='Orphan')" in said and "removed from the stack only" in said


# --- the kubernetes extra --------------------------------------------------------------------------------

def test_the_provider_works_without_the_kubernetes_package_until_a_secret_is_asked_for(
        steady_as: DevServer) -> None:
    # A fresh interpreter in which `import kubernetes` fails, as after `pip install '<wheel>[pulumi]'`.
    script = f"""
import sys
sys.modules["kubernetes"] = None
from clientreg_pulumi import OAuthClientError, OAuthClientProvider
provider = OAuthClientProvider()
created = provider.create({program_inputs(steady_as)!r})
print("created", created.outs["status"])
try:
    provider.create({program_inputs(steady_as, client_name="With a Secret", kubernetes_secret={"name": "web"},
                                    kubernetes_secret_owner="pulumi:p/s/web")!r})
except OAuthClientError as exc:
    print("refused", exc)
assert "kubernetes" not in [m.split(".")[0] for m in sys.modules if sys.modules[m] is not None]
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("", "provider", "operator"))}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "created InSync" in result.stdout
    (refused,) = [line for line in result.stdout.splitlines() if line.startswith("refused")]
    assert "kubernetes_secret needs the kubernetes extra" in refused and "[pulumi,kubernetes]" in refused
    assert "Traceback" not in result.stdout


# --- the import_ option -----------------------------------------------------------------------------------

def test_the_import_option_becomes_an_adoption_and_says_what_dcr_needs() -> None:
    from clientreg_pulumi.resource import import_as_adoption

    opts = pulumi.ResourceOptions(import_="s6BhdRkqt3", protect=True)
    adopted_opts, client_id = import_as_adoption("legacy", opts, None, "https://as.example/register/s6", "rat")
    assert client_id == "s6BhdRkqt3" and adopted_opts.import_ is None and adopted_opts.protect is True
    assert opts.import_ == "s6BhdRkqt3"  # the caller's options are left as they were
    with pytest.raises(pulumi.RunError, match="needs its RFC 7592 credentials"):
        import_as_adoption("legacy", opts, None, None, None)
    with pytest.raises(pulumi.RunError, match="name different clients"):
        import_as_adoption("legacy", opts, "another-client", "https://as.example/register/s6", "rat")
