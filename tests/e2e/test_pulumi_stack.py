"""The clientreg Pulumi provider driven by the real Pulumi engine (Automation API, file backend).

One backend per module; one stack per scenario, each a chain of engine operations against one
authorization server: the dev AS (the docs' quick start) and node oidc-provider (rotating RATs,
expiring secrets). Assertions are about what the AS holds and what the state file holds, never
about timings.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pulumi
import pytest
from clientreg_pulumi import OAuthClient
from pulumi import automation as auto
from pydantic import SecretStr
from support.pulumi_engine import ensure_pulumi, inline_stack, pulumi_env

from clientreg import rfc7591, rfc7592
from clientreg.devserver import DevServer, DevServerSettings
from clientreg.http import HttpClient
from clientreg.record import RegistrationRecord
from clientreg.tokens import client_credentials_token

pytestmark = pytest.mark.e2e

RESOURCE_TYPE = "pulumi-python:dynamic/clientreg:OAuthClient"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_LIFETIME = 3600
# The pulumi:pulumi:Stack resource is created with the first up and deleted by destroy.
STACK = 1


@pytest.fixture(scope="module")
def state_dir(pulumi_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pulumi-provider")


@pytest.fixture(scope="module")
def http() -> Iterator[HttpClient]:
    client = HttpClient()
    yield client
    client.close()


# --- helpers -------------------------------------------------------------------------------------------

def all_state_text(state_dir: Path) -> str:
    # History and .bak checkpoints count: a plaintext secret in any of them is a leak.
    return "\n".join(p.read_text(errors="replace") for p in (state_dir / "backend").rglob("*") if p.is_file())


def pulumi_stack_export(stack: auto.Stack, state_dir: Path) -> dict[str, Any]:
    """What `pulumi stack export` prints, secrets as stored. (The Automation API's export_stack adds
    --show-secrets, which would decrypt them: it proves nothing about the state.)"""
    deployment: dict[str, Any] = json.loads(pulumi_cli(stack, state_dir, "stack", "export"))["deployment"]
    return deployment


def pulumi_cli(stack: auto.Stack, state_dir: Path, *argv: str) -> str:
    """Run the pulumi CLI on the stack as a user would; its stdout."""
    env = {**os.environ, **pulumi_env(state_dir)}
    cli = Path(ensure_pulumi()) / "pulumi"
    result = subprocess.run([str(cli), *argv, "--stack", stack.name], cwd=stack.workspace.work_dir,
                            env=env, capture_output=True, text=True, check=True, timeout=120)
    return result.stdout


def clients_in_state(stack: auto.Stack) -> dict[str, dict[str, Any]]:
    deployment = stack.export_stack().deployment or {}
    return {r["urn"].rsplit("::", 1)[1]: r for r in deployment.get("resources", []) if r["type"] == RESOURCE_TYPE}


def assert_no_plaintext(stack: auto.Stack, state_dir: Path, values: list[str]) -> None:
    deployment = pulumi_stack_export(stack, state_dir)
    exported = json.dumps(deployment)
    on_disk = all_state_text(state_dir)
    for value in values:
        assert value and value not in exported and value not in on_disk
    resources = [r for r in deployment.get("resources", []) if r["type"] == RESOURCE_TYPE]
    for resource in resources:
        name = resource["urn"]
        outputs, inputs = resource["outputs"], resource["inputs"]
        for key in ("client_secret", "registration_access_token", "record"):
            assert set(outputs[key]) == {SECRET_SIG, "ciphertext"}, (name, key)
        assert isinstance(outputs["client_id"], str)
        for key in ("initial_access_token", "adopt_registration_access_token"):
            if key in inputs:
                assert set(inputs[key]) == {SECRET_SIG, "ciphertext"}, (name, key)
        # The pickled provider is stored readable on purpose: prove it holds a class reference only.
        blob = base64.b64decode(outputs["__provider"])
        assert b"clientreg_pulumi.provider" in blob and len(blob) < 200
        for value in values:
            assert value.encode() not in blob


def _without_same(counts: Mapping[Any, int] | None) -> dict[str, int]:
    # Keys are OpType members (a str enum) or plain strings depending on the call: compare as text.
    named = {str(getattr(kind, "value", kind)): count for kind, count in (counts or {}).items()}
    return {kind: count for kind, count in named.items() if kind != "same"}


def changes(summary: auto.UpdateSummary) -> dict[str, int]:
    return _without_same(summary.resource_changes)


def preview_changes(stack: auto.Stack) -> dict[str, int]:
    return _without_same(stack.preview().change_summary)


def exists_at_dev(server: DevServer, client_id: str) -> bool:
    return client_id in httpx.get(f"{server.dev_url}/clients", timeout=10).json()


def token_works(http: HttpClient, outputs: Mapping[str, auto.OutputValue], prefix: str) -> bool:
    record = RegistrationRecord(client_id=outputs[f"{prefix}_client_id"].value,
                                client_secret=SecretStr(outputs[f"{prefix}_client_secret"].value),
                                token_endpoint=outputs[f"{prefix}_token_endpoint"].value)
    return bool(client_credentials_token(http, record).access_token.get_secret_value())


def export_client(prefix: str, client: OAuthClient) -> None:
    for name in ("client_id", "client_secret", "registration_access_token", "registration_client_uri",
                 "token_endpoint", "retiring_client_ids", "status"):
        pulumi.export(f"{prefix}_{name}", getattr(client, name))


# --- the dev AS: the quick start of docs/pulumi.md ------------------------------------------------------

def test_dev_as_lifecycle(state_dir: Path, http: HttpClient) -> None:
    iat = secrets.token_urlsafe(18)
    # RATs kept across PUTs, so that the test can play "someone edits the client at the AS".
    server = DevServer(DevServerSettings(initial_access_token=iat, rotate_registration_access_token=False)).start()
    knobs: dict[str, Any] = {"client_name": "Web", "rotation_trigger": None}

    def program() -> None:
        token = pulumi.Config().get_secret("iat") or iat
        web = OAuthClient("web", issuer=server.issuer, client_name=knobs["client_name"],
                          redirect_uris=["https://app.example.com/cb"], initial_access_token=token)
        worker = OAuthClient("worker", issuer=server.issuer, client_name="Worker",
                             grant_types=["client_credentials"], initial_access_token=iat,
                             rotation_trigger=knobs["rotation_trigger"], grace_period="1h")
        pulumi.export("client_id", web.client_id)
        pulumi.export("client_secret", web.client_secret)
        export_client("web", web)
        export_client("worker", worker)

    stack = inline_stack("clientreg-provider", "dev-as", program, state_dir)
    stack.set_config("iat", auto.ConfigValue(iat, secret=True))
    try:
        up = stack.up()
        assert changes(up.summary) == {"create": 2 + STACK}
        out = up.outputs
        assert out["client_id"].secret is False and out["client_secret"].secret is True
        web_id, worker_id = out["web_client_id"].value, out["worker_client_id"].value
        assert exists_at_dev(server, web_id) and exists_at_dev(server, worker_id)
        assert token_works(http, out, "worker")
        secrets_seen = [iat, out["web_client_secret"].value, out["web_registration_access_token"].value,
                        out["worker_client_secret"].value, out["worker_registration_access_token"].value]
        assert_no_plaintext(stack, state_dir, secrets_seen)
        assert preview_changes(stack) == {}

        # Someone renames the client at the AS: refresh shows it, up puts it back.
        uri, rat = out["web_registration_client_uri"].value, SecretStr(out["web_registration_access_token"].value)
        current = rfc7592.read(http, uri, rat).metadata
        rfc7592.update(http, uri, rat, web_id, {**current, "client_name": "Renamed at the AS"})
        refresh = stack.refresh()
        assert changes(refresh.summary) == {"update": 1}
        assert clients_in_state(stack)["web"]["outputs"]["status"] == "DriftAtServer"
        assert preview_changes(stack) == {"update": 1}
        healed = stack.up()
        assert changes(healed.summary) == {"update": 1}
        assert rfc7592.read(http, uri, rat).metadata["client_name"] == "Web"
        assert healed.outputs["web_client_id"].value == web_id

        # A changed argument is an in-place RFC 7592 update, not a replacement.
        knobs["client_name"] = "Web v2"
        assert preview_changes(stack) == {"update": 1}  # not a replacement
        renamed = stack.up()
        assert renamed.outputs["web_client_id"].value == web_id
        assert rfc7592.read(http, uri, rat).metadata["client_name"] == "Web v2"

        # A new rotation trigger: new credentials now, the old client kept for its grace period.
        knobs["rotation_trigger"] = "2026-q4"
        rotated = stack.up()
        assert changes(rotated.summary) == {"update": 1}
        new_worker_id = rotated.outputs["worker_client_id"].value
        assert new_worker_id != worker_id
        assert rotated.outputs["worker_retiring_client_ids"].value == [worker_id]
        assert exists_at_dev(server, worker_id) and token_works(http, rotated.outputs, "worker")
        secrets_seen += [rotated.outputs["worker_client_secret"].value,
                         rotated.outputs["worker_registration_access_token"].value]
        assert_no_plaintext(stack, state_dir, secrets_seen)
        assert preview_changes(stack) == {}

        destroy = stack.destroy()
        assert changes(destroy.summary) == {"delete": 2 + STACK}
        for client_id in (web_id, worker_id, new_worker_id):
            assert not exists_at_dev(server, client_id)
        assert clients_in_state(stack) == {}
        assert_no_plaintext(stack, state_dir, secrets_seen)
    finally:
        _destroy_quietly(stack)
        server.stop()


def test_validation_failures_name_the_argument(state_dir: Path) -> None:
    def program() -> None:
        OAuthClient("bad", issuer="https://auth.example.com", client_name="Bad",
                    redirect_uris=["http://app.example.com/cb"])

    stack = inline_stack("clientreg-provider", "invalid", program, state_dir)
    with pytest.raises(auto.CommandError) as caught:
        stack.preview()
    message = str(caught.value)
    assert "property redirect_uris" in message and "plain http is allowed only for loopback" in message
    assert "redirect_uris[0]: 'http://app.example.com/cb'" in message
    assert clients_in_state(stack) == {}


# --- examples/pulumi: clients for several tenants from YAML -------------------------------------------

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "pulumi"


def test_tenants_example(state_dir: Path) -> None:
    import importlib.util

    import yaml

    spec = importlib.util.spec_from_file_location("clientreg_tenants_example", EXAMPLE_DIR / "__main__.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)  # the __main__ guard keeps it from provisioning on import
    document = yaml.safe_load((EXAMPLE_DIR / "tenants.yaml").read_text())
    iat = secrets.token_urlsafe(18)
    with DevServer(DevServerSettings(initial_access_token=iat)) as server:
        for tenant in document["tenants"]:
            tenant["issuer"] = server.issuer  # the YAML's own values, pointed at this test's AS

        stack = inline_stack("clientreg-provider", "tenants", lambda: example.provision(document), state_dir)
        try:
            for tenant in document["tenants"]:
                stack.set_config(f"iat-{tenant['name']}", auto.ConfigValue(iat, secret=True))
            up = stack.up()
            expected = sum(len(t["clients"]) for t in document["tenants"])
            assert changes(up.summary) == {"create": expected + STACK}
            ids = {key.removesuffix("/client_id"): value.value for key, value in up.outputs.items()
                   if key.endswith("/client_id")}
            assert set(ids) == {"acme/portal", "acme/billing", "globex/portal"}
            assert all(up.outputs[f"{key}/client_secret"].secret for key in ids)
            assert all(exists_at_dev(server, client_id) for client_id in ids.values())
            assert up.outputs["acme/token_endpoint"].value == server.token_endpoint
            assert_no_plaintext(stack, state_dir, [iat, *(up.outputs[f"{k}/client_secret"].value for k in ids)])

            stack.destroy()
            assert not exists_at_dev(server, ids["acme/portal"]) and not exists_at_dev(server, ids["acme/billing"])
            assert exists_at_dev(server, ids["globex/portal"])  # deletion_policy: Orphan
        finally:
            _destroy_quietly(stack)


# --- node oidc-provider: rotating RATs, expiring secrets, adoption, out-of-band deletion ---------------

def test_oidc_provider_lifecycle(state_dir: Path, http: HttpClient) -> None:
    from support.oidc_provider import running_oidc_provider

    with running_oidc_provider(secret_expires_in=SECRET_LIFETIME) as peer:
        assert peer.initial_access_token is not None
        iat = peer.initial_access_token
        elsewhere = rfc7591.register(http, peer.registration_endpoint,
                                     {"client_name": "Legacy batch", "grant_types": ["client_credentials"],
                                      "response_types": []}, initial_access_token=SecretStr(iat))
        assert elsewhere.registration_access_token and elsewhere.registration_client_uri
        knobs: dict[str, Any] = {"rotate_before": None}

        def program() -> None:
            legacy = OAuthClient(
                "legacy", issuer=peer.issuer, client_name="Legacy batch (managed)",
                grant_types=["client_credentials"], response_types=[],
                adopt_client_id=elsewhere.client_id,
                adopt_registration_client_uri=elsewhere.registration_client_uri,
                adopt_registration_access_token=elsewhere.registration_access_token.get_secret_value())  # type: ignore[union-attr]
            api = OAuthClient("api", issuer=peer.issuer, client_name="API", grant_types=["client_credentials"],
                              response_types=[], initial_access_token=iat, rotate_before=knobs["rotate_before"])
            export_client("legacy", legacy)
            export_client("api", api)

        stack = inline_stack("clientreg-provider", "oidc-provider", program, state_dir)
        try:
            up = stack.up()
            assert changes(up.summary) == {"create": 2 + STACK}
            out = up.outputs
            # Adopted, not registered again: same client, now with the declared metadata (PUT, RAT rotated).
            assert out["legacy_client_id"].value == elsewhere.client_id
            legacy_rat = SecretStr(out["legacy_registration_access_token"].value)
            assert legacy_rat.get_secret_value() != elsewhere.registration_access_token.get_secret_value()
            assert rfc7592.read(http, elsewhere.registration_client_uri, legacy_rat).metadata["client_name"] == \
                "Legacy batch (managed)"
            assert token_works(http, out, "legacy") and token_works(http, out, "api")
            secrets_seen = [iat, elsewhere.registration_access_token.get_secret_value(),
                            out["legacy_client_secret"].value, legacy_rat.get_secret_value(),
                            out["api_client_secret"].value, out["api_registration_access_token"].value]
            assert_no_plaintext(stack, state_dir, secrets_seen)

            # Deleted at the AS behind Pulumi's back. This AS answers 401 for a deleted client, as for a token
            # someone rotated with a PUT; its token endpoint answers invalid_client for the stored credentials,
            # which proves the client gone (clientreg.liveness): refresh drops it, and the next up registers anew.
            api_id = out["api_client_id"].value
            rfc7592.delete(http, out["api_registration_client_uri"].value,
                           SecretStr(out["api_registration_access_token"].value))
            stack.refresh()
            assert "api" not in clients_in_state(stack), "a client proven gone stays in the state"
            again = stack.up()
            assert changes(again.summary) == {"create": 1}
            api_id = again.outputs["api_client_id"].value
            assert api_id != out["api_client_id"].value and token_works(http, again.outputs, "api")

            # The secrets expire in an hour: with two hours of warning the next up rotates.
            knobs["rotate_before"] = "2h"
            assert preview_changes(stack) == {"update": 1}
            rotated = stack.up()
            new_api_id = rotated.outputs["api_client_id"].value
            assert new_api_id != api_id
            assert rotated.outputs["api_retiring_client_ids"].value == [api_id]
            assert token_works(http, rotated.outputs, "api")
            secrets_seen += [again.outputs["api_client_secret"].value, rotated.outputs["api_client_secret"].value,
                             rotated.outputs["api_registration_access_token"].value]
            assert_no_plaintext(stack, state_dir, secrets_seen)

            stack.destroy()
            assert clients_in_state(stack) == {}
            for uri, rat in ((rotated.outputs["legacy_registration_client_uri"].value,
                              rotated.outputs["legacy_registration_access_token"].value),
                             (rotated.outputs["api_registration_client_uri"].value,
                              rotated.outputs["api_registration_access_token"].value)):
                with pytest.raises(Exception) as gone:
                    rfc7592.read(http, uri, SecretStr(rat))
                assert type(gone.value).__name__ in {"CredentialsRejected", "ClientGone"}
        finally:
            _destroy_quietly(stack)


def _destroy_quietly(stack: auto.Stack) -> None:
    """Leave no stack behind when an assertion failed halfway (the AS goes away with the test anyway)."""
    try:
        if clients_in_state(stack):
            stack.destroy()
    except auto.CommandError:
        pass
