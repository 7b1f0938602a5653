"""The ``import_`` resource option on the dynamic provider's OAuthClient, through the real engine.

The engine's import reads a resource with no inputs, which Pulumi's dynamic-provider host answers with a raw
``KeyError: '__provider'``; OAuthClient carries the option out as an adoption instead (RFC 7592 needs the
client's registration client URI and access token, which DCR cannot look up by client ID).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pulumi
import pytest
from clientreg_pulumi import OAuthClient
from pulumi import automation as auto
from pydantic import SecretStr
from support.elsewhere import register_elsewhere
from support.pulumi_engine import export_stack_encrypted, inline_stack

from clientreg import rfc7592
from clientreg.devserver import DevServer, DevServerSettings
from clientreg.http import HttpClient

pytestmark = pytest.mark.e2e

IAT = "iat-of-the-import-option-test"


@pytest.fixture
def dev_as() -> Iterator[DevServer]:
    with DevServer(DevServerSettings(initial_access_token=IAT)) as server:
        yield server


LEGACY = {"client_name": "Legacy", "grant_types": ["client_credentials"], "response_types": []}


def test_import_option_adopts_the_client_with_its_rfc7592_credentials(
        pulumi_bin: Path, dev_as: DevServer, tmp_path: Path) -> None:
    legacy = register_elsewhere(dev_as.registration_endpoint, IAT, LEGACY)
    rat = legacy.registration_access_token.get_secret_value()

    def program() -> None:
        client = OAuthClient("legacy", issuer=dev_as.issuer, client_name="Legacy, managed",
                             grant_types=["client_credentials"], response_types=[],
                             adopt_registration_client_uri=legacy.registration_client_uri,
                             adopt_registration_access_token=pulumi.Output.secret(rat),
                             opts=pulumi.ResourceOptions(import_=legacy.client_id))
        pulumi.export("client_id", client.client_id)

    stack = inline_stack("clientreg-import", "option", program, tmp_path)
    try:
        before = set(httpx.get(f"{dev_as.dev_url}/clients", timeout=10).json())
        up = stack.up()
        assert up.outputs["client_id"].value == legacy.client_id
        assert set(httpx.get(f"{dev_as.dev_url}/clients", timeout=10).json()) == before  # nothing registered
        stored = export_stack_encrypted(stack)
        (resource,) = [r for r in stored["resources"] if r["type"].endswith("clientreg:OAuthClient")]
        assert resource["id"] == legacy.client_id
        assert rat not in str(stored)
        # Adopted, then the declared metadata laid over it (the AS may have rotated the token on that PUT).
        http = HttpClient()
        try:
            current = rfc7592.read(http, legacy.registration_client_uri, SecretStr(_rat_of(stack)))
        finally:
            http.close()
        assert current.metadata["client_name"] == "Legacy, managed"
    finally:
        stack.destroy()


def _rat_of(stack: auto.Stack) -> str:
    deployment = stack.export_stack().deployment or {}
    (resource,) = [r for r in deployment["resources"] if r["type"].endswith("clientreg:OAuthClient")]
    value = resource["outputs"]["registration_access_token"]
    return str(value["plaintext"]).strip('"') if isinstance(value, dict) else str(value)


def test_import_option_without_credentials_says_what_dcr_needs(
        pulumi_bin: Path, dev_as: DevServer, tmp_path: Path) -> None:
    legacy = register_elsewhere(dev_as.registration_endpoint, IAT, LEGACY)

    def program() -> None:
        OAuthClient("legacy", issuer=dev_as.issuer, client_name="Legacy", grant_types=["client_credentials"],
                    opts=pulumi.ResourceOptions(import_=legacy.client_id))

    stack = inline_stack("clientreg-import", "no-credentials", program, tmp_path)
    with pytest.raises(auto.CommandError) as caught:
        stack.up()
    message = str(caught.value)
    assert f"importing client {legacy.client_id} needs its RFC 7592 credentials" in message
    assert "adopt_registration_access_token" in message
    assert "KeyError" not in message and "Traceback" not in message
