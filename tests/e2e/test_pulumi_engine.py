"""Smoke test of the real Pulumi engine, offline: the CLI built from source, a local file backend,
an inline Automation API program and a dynamic provider run by ``python -m pulumi.dynamic``.

It proves what the clientreg Pulumi provider relies on: secret outputs of a dynamic resource stay
encrypted in state (also after a refresh), an unchanged program previews clean, destroy really
deletes, and an exception raised by the provider reaches the Automation API caller with its text.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi import automation as auto
from support.pulumi_engine import export_stack_encrypted, inline_stack
from support.pulumi_fixture_provider import Token, record_path

pytestmark = pytest.mark.e2e

SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270"
DYNAMIC_TYPE = "pulumi-python:dynamic:Resource"
# The change kinds that would mean a preview or refresh found drift.
CHANGES = {"create", "update", "delete", "replace", "create-replacement", "delete-replaced"}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    folder = tmp_path / "remote"
    folder.mkdir()
    return folder


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "pulumi"


def all_state_text(state_dir: Path) -> str:
    # The file backend also keeps history and .bak checkpoints: a plaintext secret in any of them
    # is as much a leak as one in the live checkpoint.
    return "\n".join(p.read_text(errors="replace") for p in (state_dir / "backend").rglob("*") if p.is_file())


def dynamic_resources(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in deployment.get("resources", []) if r["type"] == DYNAMIC_TYPE]


def assert_token_encrypted(stack: auto.Stack, state_dir: Path, token: str) -> None:
    # What state holds: `pulumi stack export` without --show-secrets, and every file of the backend.
    stored = export_stack_encrypted(stack)
    assert token not in json.dumps(stored)
    assert token not in all_state_text(state_dir)
    (resource,) = dynamic_resources(stored)
    # The secret sig marks a Pulumi secret; its ciphertext comes from the passphrase provider.
    assert set(resource["outputs"]["token"]) == {SECRET_SIG, "ciphertext"}
    # The pickled provider is a secret too (serialize_as_secret_always), whatever it captured.
    assert set(resource["outputs"]["__provider"]) == {SECRET_SIG, "ciphertext"}
    assert resource["outputs"]["greeting"] == "hello alpha"

    # The Automation API's export_stack() runs `stack export --show-secrets`: it decrypts, but must
    # still flag the value as a secret, so nothing downstream prints it by accident.
    (shown,) = dynamic_resources(stack.export_stack().deployment)
    assert shown["outputs"]["token"] == {SECRET_SIG: SECRET_SIG_VALUE, "plaintext": json.dumps(token)}


def test_up_preview_refresh_destroy(pulumi_bin: Path, store: Path, state_dir: Path) -> None:
    def program() -> None:
        token = Token("tok", label="alpha", store_dir=str(store))
        pulumi.export("greeting", token.greeting)
        pulumi.export("token", token.token)

    stack = inline_stack("engine-smoke", "dev", program, state_dir)
    started = time.monotonic()

    up = stack.up()
    assert up.summary.result == "succeeded"
    assert up.outputs["greeting"].value == "hello alpha"
    assert up.outputs["greeting"].secret is False
    assert up.outputs["token"].secret is True
    token = up.outputs["token"].value
    remote = json.loads(record_path(str(store), "alpha").read_text())
    assert token == remote["token"] and len(token) >= 24
    assert_token_encrypted(stack, state_dir, token)

    preview = stack.preview()
    assert not CHANGES & preview.change_summary.keys(), preview.change_summary

    refresh = stack.refresh()
    assert refresh.summary.result == "succeeded"
    assert not CHANGES & (refresh.summary.resource_changes or {}).keys(), refresh.summary.resource_changes
    # Refresh rewrites outputs from the provider's read(): the secret flag must survive it.
    assert_token_encrypted(stack, state_dir, token)
    outputs = stack.outputs()
    assert outputs["token"].secret is True and outputs["token"].value == token

    destroy = stack.destroy()
    elapsed = time.monotonic() - started
    assert destroy.summary.result == "succeeded"
    assert not record_path(str(store), "alpha").exists()
    assert dynamic_resources(export_stack_encrypted(stack)) == []
    assert stack.outputs() == {}
    print(f"up/preview/refresh/destroy cycle: {elapsed:.1f}s")


def test_provider_exception_reaches_caller(pulumi_bin: Path, store: Path, state_dir: Path) -> None:
    reason = "registration refused by the server: redirect_uris must use https"

    def program() -> None:
        Token("tok", label="beta", store_dir=str(store), fail_with=reason)

    stack = inline_stack("engine-smoke", "failing", program, state_dir)
    with pytest.raises(auto.CommandError) as caught:
        stack.up()
    message = str(caught.value)
    print(f"what the Automation API caller sees:\n{message}")
    assert reason in message
    assert "ValueError" in message
    assert not record_path(str(store), "beta").exists()
    assert dynamic_resources(export_stack_encrypted(stack)) == []
