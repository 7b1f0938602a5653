"""``examples/pulumi`` run the way its README says: a copy of the project folder, its own virtualenv with
clientreg installed from a wheel built by ``scripts/build-wheel``, ``pulumi login file://…`` and
``pulumi up`` in the folder (the real CLI and Python language host), against the dev AS.

up → refresh after drift at the AS → preview shows the drifted property → up heals → rotate → adopt
(take over) a client registered elsewhere → destroy; the backend's files hold no plaintext secret.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr
from support.elsewhere import register_elsewhere
from support.pulumi_project import SECRET_SIG, ProjectRun, plain

from clientreg import rfc7592
from clientreg.devserver import DevServer, DevServerSettings
from clientreg.http import HttpClient

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "pulumi"
RESOURCE_TYPE = "pulumi-python:dynamic/clientreg:OAuthClient"
IAT = "iat-of-the-example-project-test"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """clientreg's wheel, built the documented way from this checkout."""
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([str(ROOT / "scripts" / "build-wheel"), str(out)], capture_output=True, text=True,
                           timeout=600, check=True, env={**_env_without_venv(), "PYTHON": sys.executable})
    return Path(built.stdout.strip().splitlines()[-1])


def _env_without_venv() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def make_venv(project: Path, wheel: Path) -> None:
    """README.md's two commands: ``python -m venv venv`` and ``venv/bin/pip install -r requirements.txt
    "<wheel>[pulumi]"``. So that pip downloads nothing, the new venv sees the test environment's
    packages (the effect of ``--system-site-packages``, which would name the base interpreter's, not this
    venv's) and pip runs with ``--no-index``: it installs clientreg from the wheel and finds the rest."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "venv"], cwd=project, check=True, timeout=120)
    venv_python = project / "venv" / "bin" / "python"
    purelib = subprocess.run([str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # A bare path in a .pth adds the folder to sys.path without running its own .pth files, so the test
    # environment's editable install of clientreg (a /work/main import hook) stays out: the wheel's wins.
    (Path(purelib) / "_test_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(project / "venv" / "bin" / "pip"), "install", "--quiet", "--no-index",
                    "-r", "requirements.txt", f"{wheel}[pulumi]"],
                   cwd=project, check=True, timeout=300, env=_env_without_venv())


@pytest.fixture
def dev_as() -> Iterator[DevServer]:
    # Registration access tokens kept across PUTs, so the test can play "someone edits the client at the AS".
    with DevServer(DevServerSettings(initial_access_token=IAT, rotate_registration_access_token=False)) as server:
        yield server


@pytest.fixture
def http() -> Iterator[HttpClient]:
    client = HttpClient()
    yield client
    client.close()


def exists_at(server: DevServer, client_id: str) -> bool:
    return client_id in httpx.get(f"{server.dev_url}/clients", timeout=10).json()


def edit_tenants(project: Path, change: Any) -> None:
    """Edit the project's tenants.yaml as a user would (``change`` mutates the parsed document)."""
    path = project / "tenants.yaml"
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def client_entry(document: dict[str, Any], tenant: str, client: str) -> dict[str, Any]:
    entry: dict[str, Any] = next(c for t in document["tenants"] if t["name"] == tenant
                                 for c in t["clients"] if c["name"] == client)
    return entry


def assert_no_plaintext(run: ProjectRun, seen: list[str]) -> None:
    stored = run.state_text()
    for value in seen:
        assert value and value not in stored
    for name, resource in run.resources(RESOURCE_TYPE).items():
        for key in ("client_secret", "registration_access_token", "record"):
            assert set(resource["outputs"][key]) == {SECRET_SIG, "ciphertext"}, (name, key)
        for key in ("initial_access_token", "adopt_registration_access_token"):
            if key in resource["inputs"]:
                assert set(resource["inputs"][key]) == {SECRET_SIG, "ciphertext"}, (name, key)


def test_the_example_project_runs_as_its_readme_says(
        pulumi_bin: Path, wheel: Path, dev_as: DevServer, http: HttpClient, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("venv", "__pycache__", "Pulumi.*.yaml"))
    # The example's issuer is the README's `clientreg dev-server` on :9400; this test's AS listens elsewhere.
    edit_tenants(project, lambda doc: [t.update(issuer=dev_as.issuer) for t in doc["tenants"]])
    make_venv(project, wheel)
    run = ProjectRun(project, tmp_path / "pulumi")
    run.init()
    for tenant in ("acme", "globex"):
        run.config_secret(f"iat-{tenant}", IAT)

    # --- up: every client of every tenant registered
    run("up", "--yes")
    out = run.outputs()
    ids = {key.removesuffix("/client_id"): value for key, value in out.items() if key.endswith("/client_id")}
    assert set(ids) == {"acme/portal", "acme/billing", "globex/portal"}
    assert all(exists_at(dev_as, client_id) for client_id in ids.values())
    assert out["acme/token_endpoint"] == dev_as.token_endpoint
    state = run.resources(RESOURCE_TYPE, show_secrets=True)
    assert {r["outputs"]["status"] for r in state.values()} == {"InSync"}
    # The status says the state the run left, never the action it took ("InSync" next to "registering...").
    assert all(r["outputs"]["status_message"].endswith("matches its spec") for r in state.values())
    portal = state["acme-portal"]["outputs"]
    uri, rat = portal["registration_client_uri"], SecretStr(plain(portal["registration_access_token"]))
    seen = [IAT, rat.get_secret_value(), *(plain(out[f"{key}/client_secret"]) for key in ids)]
    assert_no_plaintext(run, seen)

    # --- drift: someone renames the client at the AS. refresh records it; preview shows the property.
    live = rfc7592.read(http, uri, rat).metadata
    rfc7592.update(http, uri, rat, ids["acme/portal"], {**live, "client_name": "Renamed at the AS"})
    run("refresh", "--yes")
    drifted = run.resources(RESOURCE_TYPE)["acme-portal"]["outputs"]
    assert drifted["status"] == "DriftAtServer" and "client_name" in drifted["status_message"]
    preview = run("preview", "--diff").stdout
    changed = [line for line in preview.splitlines() if "client_name" in line]
    assert any("Renamed at the AS" in line and "ACME portal" in line and "=>" in line for line in changed), preview
    assert "initial_access_token" not in "".join(line for line in preview.splitlines() if line.lstrip()[:1] in "~+-")

    # --- up heals it in place: same client, the declared name back at the AS
    run("up", "--yes")
    assert rfc7592.read(http, uri, rat).metadata["client_name"] == "ACME portal"
    healed = run.resources(RESOURCE_TYPE)["acme-portal"]["outputs"]
    assert healed["status"] == "InSync" and healed["client_id"] == ids["acme/portal"]
    assert "to update" not in run("preview").stdout

    # --- rotate: a rotation_trigger on billing registers a successor; the old client keeps its grace period
    edit_tenants(project, lambda doc: client_entry(doc, "acme", "billing").update(rotation_trigger="2026-q4"))
    run("up", "--yes")
    rotated = run.outputs()
    assert rotated["acme/billing/client_id"] != ids["acme/billing"]
    assert exists_at(dev_as, ids["acme/billing"]) and exists_at(dev_as, rotated["acme/billing/client_id"])
    billing = run.resources(RESOURCE_TYPE)["acme-billing"]["outputs"]
    assert billing["retiring_client_ids"] == [ids["acme/billing"]]
    seen.append(plain(rotated["acme/billing/client_secret"]))

    # --- take over a client registered elsewhere (the dynamic provider's import): adopt_* arguments
    legacy = register_elsewhere(dev_as.registration_endpoint, IAT,
                                {"client_name": "Legacy", "grant_types": ["client_credentials"], "response_types": []})
    legacy_rat = legacy.registration_access_token.get_secret_value()
    run.config_secret("rat-globex-legacy", legacy_rat)
    edit_tenants(project, lambda doc: next(t for t in doc["tenants"] if t["name"] == "globex")["clients"].append(
        {"name": "legacy", "client_name": "Globex legacy batch", "grant_types": ["client_credentials"],
         "response_types": [], "adopt_client_id": legacy.client_id,
         "adopt_registration_client_uri": legacy.registration_client_uri}))
    adopted = run("up", "--yes").stdout
    assert run.outputs()["globex/legacy/client_id"] == legacy.client_id
    assert rfc7592.read(http, legacy.registration_client_uri, legacy.registration_access_token).metadata[
        "client_name"] == "Globex legacy batch"
    # Said as an adoption, not as a change of the program's spec.
    assert "adopted client" in adopted and "spec changed" not in adopted, adopted
    seen += [legacy_rat, plain(run.outputs()["globex/legacy/client_secret"])]
    assert_no_plaintext(run, seen)

    # --- destroy: deleted at the AS, except Globex's portal (deletion_policy: Orphan), which is said to stay
    destroyed = run("destroy", "--yes").stdout
    assert not exists_at(dev_as, ids["acme/portal"]) and not exists_at(dev_as, rotated["acme/billing/client_id"])
    assert not exists_at(dev_as, ids["acme/billing"]) and not exists_at(dev_as, legacy.client_id)
    assert exists_at(dev_as, ids["globex/portal"])
    orphan_lines = [line for line in destroyed.splitlines() if ids["globex/portal"] in line]
    assert any("kept at the AS (deletion_policy='Orphan')" in line for line in orphan_lines), destroyed
    assert run.resources(RESOURCE_TYPE) == {}
    assert_no_plaintext(run, seen)
